"""Structured channel pruning (Torch-Pruning), AMC's least-squares reconstruction, and
fine-grained magnitude masks.

Channels are ranked by weight magnitude: Torch-Pruning's group L1 importance, the mean over
every coupled layer of the weights tied to the channel (producing filters, consuming input
slices, BN scales; on a residual stream all layers adding into it), with index mappings for
concatenations handled by the library (Li et al. 2017, generalized). Torch-Pruning then
removes the channels from every coupled layer, so the result is a smaller dense model, not a
masked one.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping

import torch
import torch_pruning as tp
from torch import nn
from torch.nn.utils import parametrize

from search.compression.graph import WEIGHTED, dependency_graph
from spaces.compression import LayerTable


def prune_channels(model: nn.Module, table: LayerTable, kept: Mapping[int, int]
                   ) -> dict[int, list[int]]:
    """Remove channels in place so group ``g`` keeps ``kept[g]`` channels (largest L1 first).

    Returns the kept channel indices of each pruned group (in the original numbering).
    ``model`` may have blocks of ``table`` replaced by the identity already: their channels
    then do not count in the importance of the groups that pass through them.
    """
    example = torch.zeros(1, *table.input_shape)
    modules = dict(model.named_modules())
    importance = tp.importance.GroupMagnitudeImportance(p=1, normalizer=None)
    # A group led from inside a removed block (``remove_blocks``) is gone with it; groups
    # that pass through one are found on the model as it is now.
    to_prune = {g.index: int(kept[g.index]) for g in table.groups
                if g.index in kept and int(kept[g.index]) < g.channels
                and g.leader in modules}
    if not to_prune:
        return {}
    dg = dependency_graph(model, example)
    result: dict[int, list[int]] = {}
    for g in table.groups:
        if g.index not in to_prune:
            continue
        k = to_prune[g.index]
        if k < 1:
            raise ValueError(f"group {g.index} ({g.leader}) must keep at least one channel")
        leader = modules[g.leader]
        fn = tp.prune_conv_out_channels if isinstance(leader, nn.Conv2d) \
            else tp.prune_linear_out_channels
        with torch.no_grad():
            score = importance(dg.get_pruning_group(leader, fn, idxs=list(range(g.channels))))
        order = torch.argsort(score, descending=True, stable=True)
        keep_idx = sorted(order[:k].tolist())
        remove = sorted(order[k:].tolist())
        group = dg.get_pruning_group(leader, fn, idxs=remove)
        group.prune()
        result[g.index] = keep_idx
    return result


# ---- least-squares reconstruction (AMC, after He et al. 2017) ---------------------------------
# The original model's layer outputs on the calibration images are the same for every policy a
# search scores, so they are kept per (model, images, layers, weight versions): recomputing them
# was most of a search step's time. Weak keys: the cache dies with the model.
_REFERENCE_OUTPUTS: weakref.WeakKeyDictionary[nn.Module, dict[tuple, dict[str, torch.Tensor]]] = \
    weakref.WeakKeyDictionary()


def _outputs(model: nn.Module, names: list[str], x: torch.Tensor) -> dict[str, torch.Tensor]:
    store: dict[str, torch.Tensor] = {}
    modules = dict(model.named_modules())
    handles = [modules[n].register_forward_hook(
        lambda _m, _i, out, n=n: store.__setitem__(n, out.detach())) for n in names]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    return store


def _reference_outputs(model: nn.Module, names: list[str], x: torch.Tensor
                       ) -> dict[str, torch.Tensor]:
    """``_outputs`` of the unpruned model, cached; other images, or any change of its
    parameters or buffers (a new tensor version, or new values written through ``.data``,
    which keeps the version: hence the checksums), miss the cache."""
    tensors = (*model.parameters(), *model.buffers())
    versions = tuple((t.data_ptr(), t._version, float(t.detach().double().sum()))
                     for t in tensors)
    key = (x.data_ptr(), tuple(x.shape), x._version, float(x.double().sum()), tuple(names),
           versions)
    per_model = _REFERENCE_OUTPUTS.setdefault(model, {})
    if key not in per_model:
        per_model.clear()  # one entry per model: a search uses one set of images
        per_model[key] = _outputs(model, names, x)
    return per_model[key]


def _patches(m: nn.Module, x: torch.Tensor, y: torch.Tensor, points: int,
             gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of (unfolded input, output) at ``points`` random positions per image."""
    if isinstance(m, nn.Linear):
        return x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)
    cols = nn.functional.unfold(x, m.kernel_size, m.dilation, m.padding, m.stride)
    n, d, positions = cols.shape
    pick = torch.randint(positions, (n, min(points, positions)), generator=gen)
    xs = torch.gather(cols, 2, pick.unsqueeze(1).expand(n, d, pick.shape[1]))
    ys = y.reshape(n, y.shape[1], -1)
    ys = torch.gather(ys, 2, pick.unsqueeze(1).expand(n, y.shape[1], pick.shape[1]))
    return xs.permute(0, 2, 1).reshape(-1, d), ys.permute(0, 2, 1).reshape(-1, y.shape[1])


@torch.no_grad()
def reconstruct(pruned: nn.Module, original: nn.Module, table: LayerTable,
                pruned_groups: Mapping[int, list[int]], x: torch.Tensor, *,
                points: int = 10, ridge: float = 1e-3, seed: int = 0) -> list[str]:
    """Refit every dense layer whose inputs lost channels so its outputs match the original
    model's on ``x`` (least squares with a small ridge), in forward order so each fit sees the
    already refitted layers before it. Returns the names of the refitted layers.

    One forward pass of the pruned model does all fits: a pre-hook on each layer refits it
    from the input it is about to see, before it computes (the same fits, in the same order,
    as one partial forward pass per layer, at a fraction of the cost).
    """
    gen = torch.Generator().manual_seed(seed)
    modules = dict(pruned.named_modules())
    channels = {g.index: g.channels for g in table.groups}
    # Dense layers whose outputs are either untouched or the whole pruned group (a layer that
    # feeds only part of a group, through a concatenation, is left as it is).
    todo = [op for op in table.ops if op.kind in ("conv", "linear") and op.name in modules
            and op.in_group in pruned_groups and isinstance(modules[op.name], WEIGHTED)
            and getattr(modules[op.name], "groups", 1) == 1
            and (op.out_group not in pruned_groups or op.c_out == channels[op.out_group])]
    if not todo:
        return []
    modes = (pruned.training, original.training)
    pruned.eval()
    original.eval()
    done: list[str] = []

    def refit(op_name: str, out_group: int | None, m: nn.Module, inp: tuple) -> None:
        if op_name in done:  # a layer called twice in one pass is fitted once
            return
        y_ref = targets[op_name]
        if out_group in pruned_groups:  # its outputs lost channels too
            y_ref = y_ref[:, pruned_groups[out_group]]
        if y_ref.shape[1] != m.weight.shape[0]:
            return  # channels coupled through a shuffle or split: no 1:1 target
        xs, ys = _patches(m, inp[0].detach(), y_ref, points, gen)
        if m.bias is not None:
            ys = ys - m.bias.detach()
        a = xs.T @ xs
        a += ridge * a.diagonal().mean().clamp_min(1e-12) * torch.eye(a.shape[0])
        w = torch.linalg.solve(a, xs.T @ ys).T  # (out, in * k * k)
        m.weight.data.copy_(w.reshape(m.weight.shape))
        done.append(op_name)

    handles = []
    try:
        targets = _reference_outputs(original, [op.name for op in todo], x)
        for op in todo:
            m = modules[op.name]
            handles.append(m.register_forward_pre_hook(
                lambda mod, inp, n=op.name, g=op.out_group: refit(n, g, mod, inp)))
        pruned(x)
    finally:
        for h in handles:
            h.remove()
        pruned.train(modes[0])
        original.train(modes[1])
    return done


# ---- fine-grained magnitude pruning -----------------------------------------------------------
class Mask(nn.Module):
    """Weight parametrization ``w * mask``: pruned weights stay zero while fine-tuning."""

    def __init__(self, mask: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("mask", mask.to(torch.bool))

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return w * self.mask


def magnitude_mask(weight: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Keep the ``round(n * (1 - sparsity))`` largest-magnitude weights (ties by position)."""
    n = weight.numel()
    keep = int(n * (1.0 - float(sparsity)) + 0.5)
    flat = weight.detach().abs().flatten()
    mask = torch.zeros(n, dtype=torch.bool)
    if keep > 0:
        mask[torch.argsort(flat, descending=True, stable=True)[:keep]] = True
    return mask.reshape(weight.shape)


def apply_sparsity(module: nn.Module, sparsity: float) -> None:
    if sparsity <= 0:
        return
    parametrize.register_parametrization(module, "weight",
                                         Mask(magnitude_mask(module.weight, sparsity)))
