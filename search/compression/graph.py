"""A model's layers and prunable channel groups, as the plain ``LayerTable`` the space uses.

Torch-Pruning's dependency graph finds which channels must be removed together (a conv's
outputs, its batch norm, a depthwise conv, the next layers' inputs, every layer on the same
residual stream); a forward pass with hooks gives execution order and output sizes for FLOPs.
The classifier's outputs are never pruned.

Removable blocks (the ``depth`` control) are found by tracing each module one level deep
(torch.fx, its children as leaves): a module whose output is ``x + f(x)`` (through
activations) with ``x`` its own input, reached through identity modules only, and whose
output shape equals its input shape. Replacing such a block by the identity keeps every
other layer's shapes and leaves the shortcut path that carried its input.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass

import torch
import torch.fx
import torch_pruning as tp
from torch import nn

from spaces.compression import BlockInfo, GroupInfo, LayerTable, OpInfo
from spaces.hooks import forward_with_hooks

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
    forward_with_hooks(model, example, hooks)
    return order, out_hw


class _OneLevel(torch.fx.Tracer):
    """Traces a module's own forward only: every child module is a leaf."""

    def __init__(self, root: nn.Module) -> None:
        super().__init__()
        self._children = set(map(id, root.children()))

    def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
        return id(m) in self._children or super().is_leaf_module(m, qualname)


_ADDS = {operator.add, operator.iadd, torch.add}
_PASS = {operator.add, operator.iadd, torch.add, torch.relu, nn.functional.relu,
         nn.functional.relu6}


def _identity_shortcut(module: nn.Module) -> bool:
    """True when ``module``'s output is an add of its own input (through identity modules)
    to something, followed by nothing but more adds or activations."""
    try:
        graph = _OneLevel(module).trace(module)
    except Exception:  # data-dependent control flow, unsupported calls: not removable
        return False
    placeholders = [n for n in graph.nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        return False
    subs = dict(module.named_children())

    def source(node: torch.fx.Node) -> torch.fx.Node:
        while node.op == "call_module" and isinstance(subs.get(node.target), nn.Identity):
            node = node.args[0]
        return node

    def passthrough(node: torch.fx.Node) -> bool:
        if node.op == "call_function":
            return node.target in _PASS
        if node.op == "call_method":
            return node.target in ("add", "add_", "relu", "relu_")
        if node.op == "call_module":
            return isinstance(subs.get(node.target), nn.Identity | nn.ReLU | nn.ReLU6)
        return False

    out = next(n for n in graph.nodes if n.op == "output").args[0]
    if not isinstance(out, torch.fx.Node):
        return False
    node = out
    while passthrough(node):  # walk back from the output along the main path
        is_add = (node.op == "call_function" and node.target in _ADDS) or (
            node.op == "call_method" and node.target in ("add", "add_"))
        args = [a for a in node.args if isinstance(a, torch.fx.Node)]
        if is_add and len(args) == 2 and any(source(a) is placeholders[0] for a in args):
            return True
        if not args:
            return False
        node = args[0]
    return False


def removable_blocks(model: nn.Module, example: torch.Tensor) -> list[tuple[str, list[str]]]:
    """(name, its conv/linear/BN module names) of each block that may be replaced by the
    identity: identity shortcut, input shape = output shape, holds a weighted layer. Nested
    candidates keep only the outermost."""
    shapes: dict[str, tuple[tuple, tuple]] = {}
    names = {m: n for n, m in model.named_modules()}
    hooks = []

    def hook(m: nn.Module, inp: tuple, out: object) -> None:
        if len(inp) == 1 and isinstance(inp[0], torch.Tensor) and isinstance(out, torch.Tensor):
            shapes.setdefault(names[m], (tuple(inp[0].shape), tuple(out.shape)))

    for n, m in model.named_modules():
        if n and not isinstance(m, WEIGHTED + (nn.BatchNorm2d, nn.BatchNorm1d)) \
                and any(isinstance(c, WEIGHTED) for c in m.modules()):
            hooks.append(m.register_forward_hook(hook))
    forward_with_hooks(model, example, hooks)
    found: list[tuple[str, list[str]]] = []
    for n, _ in model.named_modules():  # outer modules before the modules inside them
        if n not in shapes or shapes[n][0] != shapes[n][1] \
                or any(n.startswith(f"{b}.") for b, _ in found):
            continue
        module = model.get_submodule(n)
        if _identity_shortcut(module):
            inner = [f"{n}.{c}" for c, m in module.named_modules()
                     if c and isinstance(m, WEIGHTED + (nn.BatchNorm2d, nn.BatchNorm1d))]
            found.append((n, inner))
    return found


def remove_blocks(model: nn.Module, blocks: list[str]) -> None:
    """Replace each named block of ``model`` by the identity, in place."""
    for name in blocks:
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent) if parent else model, child, nn.Identity())


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
    blocks = tuple(BlockInfo(n, tuple(o for o in order if o in set(inner)))
                   for n, inner in removable_blocks(model, example))
    return Analysis(LayerTable(tuple(ops), tuple(groups), tuple(input_shape), blocks), modules,
                    classifier)
