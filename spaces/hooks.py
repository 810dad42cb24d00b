"""One forward pass to observe a model: hooks on, eval mode, no gradients, and everything put
back afterwards (Net2Net's batch-norm matching and the compression graph's layer walk)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn


def forward_with_hooks(model: nn.Module, example: torch.Tensor,
                       hooks: Iterable[torch.utils.hooks.RemovableHandle]) -> None:
    """Run ``example`` through ``model`` once in eval mode without gradients, with ``hooks``
    attached; the hooks are removed and the model's training mode restored even on error."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
