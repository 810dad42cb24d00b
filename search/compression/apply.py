"""Apply a compression policy (an architecture of a ``CompressionSpace``) to a model.

Order: replace dropped blocks by the identity (``depth``), remove channels (structured
pruning, ranked on the model without those blocks), optionally refit the next layers by least
squares, zero small weights (fine-grained sparsity), attach weight formats (bits, binary,
shared; soft weight sharing retrains the model on ``calib`` under its mixture prior first),
then recalibrate batch norm. The result runs as is, fine-tunes, and exports.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from search.compression.bn import recalibrate_bn
from search.compression.data import Split
from search.compression.graph import remove_blocks
from search.compression.prune import apply_sparsity, prune_channels, reconstruct
from search.compression.quantize import apply_format
from search.compression.soft_sharing import soft_share
from spaces.compression import CompressionSpace


@dataclass
class Compressed:
    model: nn.Module
    kept: dict[int, int]  # group -> channels kept
    kept_indices: dict[int, list[int]] = field(default_factory=dict)
    reconstructed: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)  # blocks replaced by the identity


def apply_policy(base: nn.Module, space: CompressionSpace, arch: Mapping[str, Any], *,
                 calib: Split | None = None, recalibrate: bool = True,
                 least_squares: bool = False, calib_samples: int = 512,
                 seed: int = 0) -> Compressed:
    """A compressed copy of ``base`` (``base`` is not modified).

    ``calib`` (training images) feeds batch-norm recalibration and the least-squares fits;
    both are skipped without it.
    """
    arch = space.validate(arch)
    model = copy.deepcopy(base).eval()
    kept = space.kept_channels(arch)
    removed = space.removed_blocks(arch)
    remove_blocks(model, removed)
    indices = prune_channels(model, space.table, kept)
    refit: list[str] = []
    if least_squares and indices and calib is not None:
        x = calib.x[: min(len(calib), 256)]
        refit = reconstruct(model, base, space.table, indices, x, seed=seed)
    modules = dict(model.named_modules())
    soft: list[tuple[nn.Module, int]] = []
    gone = space.removed_ops(arch)
    for op in space.table.weighted():
        if op.name in gone:
            continue
        m = modules[op.name]
        apply_sparsity(m, float(arch.get(f"sparsity:{op.name}", 0.0)))
        bits = arch.get(f"bits:{op.name}")
        share = arch.get(f"share:{op.name}")
        if share is not None and space.soft_share is not None:
            soft.append((m, int(share)))
            share = None
        apply_format(m, bits=None if bits is None else int(bits),
                     share=None if share is None else int(share))
    if soft:
        if calib is None:
            raise ValueError("soft weight sharing retrains the model: it needs training data")
        soft_share(model, soft, calib, space.soft_share, seed=seed)
    if recalibrate and calib is not None:
        recalibrate_bn(model, calib, max_samples=calib_samples)
    return Compressed(model.eval(), kept, indices, refit, removed)
