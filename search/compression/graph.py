"""A model's layers and prunable channel groups, as the plain ``LayerTable`` the space uses.

Torch-Pruning's dependency graph finds which channels must be removed together (a conv's
outputs, its batch norm, a depthwise conv, the next layers' inputs, every layer on the same
residual stream); a forward pass with hooks gives execution order and output sizes for FLOPs.
The classifier's outputs are never pruned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch_pruning as tp
from torch import nn

from spaces.compression import GroupInfo, LayerTable, OpInfo

WEIGHTED = (nn.Conv2d, nn.Linear)


@dataclass
class Analysis:
    table: LayerTable
    modules: dict[str, nn.Module]
    classifier: str


def _kind(m: nn.Module) -> str:
    if isinstance(m, nn.Linear):
        return "linear"
    if isinstance(m, nn.BatchNorm2d | nn.BatchNorm1d):
        return "bn"
    assert isinstance(m, nn.Conv2d)
    if m.groups == 1:
        return "conv"
    if m.groups == m.in_channels == m.out_channels:
        return "dwconv"
    raise ValueError(f"grouped convolution {m} is not supported (only dense and depthwise)")


def forward_order(model: nn.Module, example: torch.Tensor) -> tuple[list[str], dict[str, int]]:
    """Names of conv/linear/BN modules in execution order, and each one's output H*W."""
    names = {m: n for n, m in model.named_modules()}
    order: list[str] = []
    out_hw: dict[str, int] = {}
    hooks = []

    def hook(m: nn.Module, _inp: tuple, out: torch.Tensor) -> None:
        n = names[m]
        if n not in out_hw:
            order.append(n)
            out_hw[n] = int(out.shape[2] * out.shape[3]) if out.dim() == 4 else 1

    for m in model.modules():
        if isinstance(m, WEIGHTED + (nn.BatchNorm2d, nn.BatchNorm1d)):
            hooks.append(m.register_forward_hook(hook))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return order, out_hw


def dependency_graph(model: nn.Module, example: torch.Tensor) -> tp.DependencyGraph:
    return tp.DependencyGraph().build_dependency(model, example, verbose=False)


def analyze(model: nn.Module, input_shape: tuple[int, ...]) -> Analysis:
    """Layer table of ``model`` for inputs of shape ``input_shape`` (without the batch)."""
    example = torch.zeros(1, *input_shape)
    order, out_hw = forward_order(model, example)
    modules = dict(model.named_modules())
    weighted = [n for n in order if isinstance(modules[n], WEIGHTED)]
    if not weighted:
        raise ValueError("the model has no convolution or linear layer")
    classifier = weighted[-1]
    dg = dependency_graph(model, example)
    names = {m: n for n, m in model.named_modules()}
    position = {n: i for i, n in enumerate(order)}
    groups_raw = []
    for group in dg.get_all_groups(ignored_layers=[modules[classifier]],
                                   root_module_types=WEIGHTED):
        outs, ins = set(), set()
        for dep, _ in group:
            n = names.get(dep.target.module)
            if n is None or n not in position:
                continue
            if dg.is_out_channel_pruning_fn(dep.handler):
                outs.add(n)
            else:
                ins.add(n)
        producers = [n for n in outs if isinstance(modules[n], WEIGHTED)]
        if not producers:
            continue
        leader = min(producers, key=position.__getitem__)
        groups_raw.append((position[leader], leader, outs, ins))
    groups_raw.sort()
    in_group: dict[str, int] = {}
    out_group: dict[str, int] = {}
    groups = []
    for index, (_, leader, outs, ins) in enumerate(groups_raw):
        lead = modules[leader]
        channels = lead.out_channels if isinstance(lead, nn.Conv2d) else lead.out_features
        groups.append(GroupInfo(index, int(channels), leader))
        for n in outs:
            out_group[n] = index
            if _kind(modules[n]) == "dwconv":
                in_group[n] = index
        for n in ins:
            in_group.setdefault(n, index)
    ops = []
    for n in order:
        m = modules[n]
        kind = _kind(m)
        if kind == "bn":
            ops.append(OpInfo(n, "bn", m.num_features, m.num_features,
                              out_group=out_group.get(n)))
        elif kind == "linear":
            ops.append(OpInfo(n, "linear", m.in_features, m.out_features, bias=m.bias is not None,
                              in_group=in_group.get(n), out_group=out_group.get(n)))
        else:
            ops.append(OpInfo(n, kind, m.in_channels, m.out_channels, int(m.kernel_size[0]),
                              int(m.stride[0]), out_hw[n], m.bias is not None,
                              in_group.get(n), out_group.get(n)))
    return Analysis(LayerTable(tuple(ops), tuple(groups), tuple(input_shape)), modules,
                    classifier)
