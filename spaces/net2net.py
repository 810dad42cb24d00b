"""Net2Net's function-preserving transformations on the MnasNet space's networks.

Chen, Goodfellow and Shlens, "Net2Net: Accelerating Learning via Knowledge Transfer" (ICLR
2016): a wider or deeper network is initialised from a trained one so that it computes the
same function, then trained on. EAS (Cai et al., AAAI 2018) drives these transformations with
an RL meta-controller; here any agent's candidate inherits from the nearest trained candidate
it can be reached from (``nearest_parent``), which leaves the agents unchanged.

- **Net2WiderNet** (``ChannelMap``): a layer gets more output units by replicating randomly
  chosen existing ones (weights, bias and batch-norm statistics copied); the next layer's
  weights for the copies of a unit are split between them. The split is ``(1 + e) / count``
  with noise ``e`` summing to zero over the copies, which breaks their symmetry and keeps the
  function exact. Channel maps are kept consistent along residual additions, depthwise
  convolutions and squeeze-excite gates, so whole blocks widen.
- **Net2DeeperNet** (``identity_init``): a new layer appended to a block computes the
  identity. With an identity shortcut its residual branch is zeroed at its last batch norm;
  without one its convolutions get identity kernels and batch norms undo their own
  normalisation (from the layer input's statistics when a sample batch is given, so train
  mode starts as the identity too). ReLUs keep the identity because a block's layers follow a
  layer of the same kind, whose output is already non-negative.

Where a block cannot be transformed exactly (fire, shuffle and dense units change width
through concatenations and group convolutions; MBConv and bottleneck layers without a
shortcut have no identity form), ``reachable`` says no and the candidate trains from scratch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from spaces.hooks import forward_with_hooks
from spaces.mnasnet import MnasNetSpace

if TYPE_CHECKING:
    import torch
    from torch import nn

#: ops whose layers widen exactly (their channel maps thread through every sub-layer)
WIDEN_OPS = frozenset({"conv", "sep", "mbconv1", "mbconv3", "mbconv6", "resnet", "bottleneck"})
#: ops whose added layers start as the identity without an identity shortcut
DEEPEN_PLAIN_OPS = frozenset({"conv", "sep", "resnet"})
#: with an identity shortcut every op can start as the identity (its branch zeroed)
SE_GATE_BIAS = 40.0  # sigmoid(40) = 1 - 4e-18: a squeeze-excite gate that passes everything


class Net2NetError(ValueError):
    """The child cannot be reached from the parent by exact widening and deepening."""


# ---- which parents a child can inherit from (torch-free) -----------------------------------
def reachable(space: MnasNetSpace, parent: Mapping[str, Any], child: Mapping[str, Any],
              input_shape: Sequence[int]) -> bool:
    """True when ``child`` is ``parent`` made wider and/or deeper by exact transformations."""
    try:
        _plan_pairs(space, parent, child, input_shape)
    except Net2NetError:
        return False
    return True


def distance(space: MnasNetSpace, parent: Mapping[str, Any], child: Mapping[str, Any]) -> int:
    """How much the child adds: layers added plus channels added over all blocks."""
    return sum(space.block_layers(child, i) - space.block_layers(parent, i)
               + space.block_channels(child, i) - space.block_channels(parent, i)
               for i in range(len(space.blocks)))


def nearest_parent(space: MnasNetSpace, child: Mapping[str, Any],
                   candidates: Iterable[Mapping[str, Any]],
                   input_shape: Sequence[int]) -> Mapping[str, Any] | None:
    """The reachable candidate that adds the least (the first such on ties), or None."""
    best, best_d = None, None
    child = space.validate(child)
    for cand in candidates:
        if space.key(cand) == space.key(child) or not reachable(space, cand, child, input_shape):
            continue
        d = distance(space, cand, child)
        if best_d is None or d < best_d:
            best, best_d = cand, d
    return best


def _plan_pairs(space: MnasNetSpace, parent: Mapping[str, Any], child: Mapping[str, Any],
                input_shape: Sequence[int]) -> list[tuple[int, int, int | None]]:
    """``(block, child layer index, parent layer index or None for an added layer)`` for
    every block layer, in plan order; raises ``Net2NetError`` when not reachable."""
    parent, child = space.validate(parent), space.validate(child)
    p_plan = space.layer_plan(parent, input_shape)
    c_plan = space.layer_plan(child, input_shape)
    pairs: list[tuple[int, int, int | None]] = []
    pi = ci = 1  # index 0 is the stem
    for i in range(len(space.blocks)):
        for key in ("op", "kernel", "se", "skip"):
            if parent[f"b{i}_{key}"] != child[f"b{i}_{key}"]:
                raise Net2NetError(f"block {i}: {key} differs")
        op = child[f"b{i}_op"]
        n_p, n_c = space.block_layers(parent, i), space.block_layers(child, i)
        w_p, w_c = space.block_channels(parent, i), space.block_channels(child, i)
        if n_c < n_p or w_c < w_p:
            raise Net2NetError(f"block {i} is shallower or narrower")
        for j in range(n_c):
            c_spec = c_plan[ci + j]
            if j < n_p:
                p_spec = p_plan[pi + j]
                if (p_spec.stride, p_spec.residual) != (c_spec.stride, c_spec.residual):
                    raise Net2NetError(f"block {i} layer {j}: stride or shortcut differs")
                if (p_spec.cin, p_spec.cout) != (c_spec.cin, c_spec.cout) and \
                        op not in WIDEN_OPS:
                    raise Net2NetError(f"block {i}: op {op!r} does not widen exactly")
                pairs.append((i, ci + j, pi + j))
            else:
                if not c_spec.residual and op not in DEEPEN_PLAIN_OPS:
                    raise Net2NetError(f"block {i}: op {op!r} has no identity form without "
                                       f"a shortcut")
                pairs.append((i, ci + j, None))
        pi, ci = pi + n_p, ci + n_c
    return pairs


# ---- Net2WiderNet ---------------------------------------------------------------------------
@dataclass
class ChannelMap:
    """Where each of ``new`` channels comes from (``index`` into ``old`` channels) and how
    many copies each old channel has."""

    index: torch.Tensor  # (new,) long
    counts: torch.Tensor  # (old,) float

    @classmethod
    def make(cls, old: int, new: int, gen: torch.Generator) -> ChannelMap:
        import torch

        if new < old:
            raise Net2NetError(f"cannot narrow {old} channels to {new}")
        extra = torch.randint(0, old, (new - old,), generator=gen)
        index = torch.cat([torch.arange(old), extra])
        return cls(index, torch.bincount(index, minlength=old).to(torch.float32))

    @property
    def identity(self) -> bool:
        return len(self.index) == len(self.counts)

    def split(self, rows: int, noise: float, gen: torch.Generator) -> torch.Tensor:
        """``(rows, new)`` factors for a consumer's input weights: ``(1 + e) / count`` with
        ``e`` summing to zero over the copies of each old channel (per row)."""
        import torch

        counts = self.counts[self.index]
        if noise <= 0 or self.identity:
            return (1.0 / counts).expand(rows, -1).clone()
        e = torch.randn(rows, len(self.index), generator=gen) * noise
        mean = torch.zeros(rows, len(self.counts)).index_add_(1, self.index, e)
        e = e - (mean / self.counts)[:, self.index]
        return (1.0 + e) / counts


class _Widener:
    """Copies a parent layer's parameters into the wider child layer, channel map by map."""

    def __init__(self, gen: torch.Generator, noise: float) -> None:
        self.gen, self.noise = gen, noise

    def new_map(self, old: int, new: int) -> ChannelMap:
        return ChannelMap.make(old, new, self.gen)

    def conv(self, old: nn.Conv2d, new: nn.Conv2d, cin: ChannelMap, cout: ChannelMap) -> None:
        w = old.weight.detach()
        if old.groups == 1:
            w = w[cout.index][:, cin.index]
            w = w * cin.split(w.shape[0], self.noise, self.gen)[:, :, None, None]
        elif old.groups == old.in_channels == old.out_channels:  # depthwise
            if not torch_equal(cin.index, cout.index):
                raise Net2NetError("a depthwise convolution needs one channel map")
            w = w[cout.index]
        elif not (cin.identity and cout.identity):
            raise Net2NetError("group convolutions do not widen exactly")
        new.weight.data.copy_(w)
        if old.bias is not None:
            new.bias.data.copy_(old.bias.detach()[cout.index])

    def bn(self, old: nn.BatchNorm2d, new: nn.BatchNorm2d, cmap: ChannelMap) -> None:
        for name in ("weight", "bias"):
            getattr(new, name).data.copy_(getattr(old, name).detach()[cmap.index])
        for name in ("running_mean", "running_var"):
            getattr(new, name).copy_(getattr(old, name)[cmap.index])
        new.num_batches_tracked.copy_(old.num_batches_tracked)

    def conv_bn(self, old: nn.Sequential, new: nn.Sequential, cin: ChannelMap,
                cout: ChannelMap) -> None:
        self.conv(old[0], new[0], cin, cout)
        self.bn(old[1], new[1], cout)

    def se(self, old: nn.Module, new: nn.Module, cmap: ChannelMap) -> None:
        from torch import nn

        if isinstance(old, nn.Identity):
            return
        hidden = self.new_map(old.reduce.out_channels, new.reduce.out_channels)
        self.conv(old.reduce, new.reduce, cmap, hidden)
        self.conv(old.expand, new.expand, hidden, cmap)

    def linear(self, old: nn.Linear, new: nn.Linear, cin: ChannelMap) -> None:
        w = old.weight.detach()[:, cin.index]
        new.weight.data.copy_(w * cin.split(w.shape[0], self.noise, self.gen))
        new.bias.data.copy_(old.bias.detach())

    def block(self, old: nn.Module, new: nn.Module, cin: ChannelMap, cout: ChannelMap) -> None:
        """One block of ``spaces.blocks`` (widening ops, or any op at unchanged width)."""
        from torch import nn

        from spaces import blocks as b

        if cin.identity and cout.identity and _same_shapes(old, new):
            new.load_state_dict(old.state_dict())
            return
        if isinstance(old, b.PlainConv):
            self.conv_bn(old.conv, new.conv, cin, cout)
            self.se(old.se, new.se, cout)
        elif isinstance(old, b.DepthwiseSeparable):
            self.conv_bn(old.depthwise, new.depthwise, cin, cin)
            self.se(old.se, new.se, cin)
            self.conv_bn(old.pointwise, new.pointwise, cin, cout)
        elif isinstance(old, b.InvertedResidual):
            hidden = cin
            if not isinstance(old.expand, nn.Identity):
                hidden = self.new_map(old.depthwise[0].in_channels,
                                      new.depthwise[0].in_channels)
                self.conv_bn(old.expand, new.expand, cin, hidden)
            self.conv_bn(old.depthwise, new.depthwise, hidden, hidden)
            self.se(old.se, new.se, hidden)
            self.conv_bn(old.project, new.project, hidden, cout)
        elif isinstance(old, b.BasicResidual):
            mid = self.new_map(old.conv1[0].out_channels, new.conv1[0].out_channels)
            self.conv_bn(old.conv1, new.conv1, cin, mid)
            self.conv_bn(old.conv2, new.conv2, mid, cout)
            self.se(old.se, new.se, cout)
            self._shortcut(old, new, cin, cout)
        elif isinstance(old, b.Bottleneck):
            mid1 = self.new_map(old.reduce[0].out_channels, new.reduce[0].out_channels)
            mid2 = self.new_map(old.conv[0].out_channels, new.conv[0].out_channels)
            self.conv_bn(old.reduce, new.reduce, cin, mid1)
            self.conv_bn(old.conv, new.conv, mid1, mid2)
            self.conv_bn(old.expand, new.expand, mid2, cout)
            self.se(old.se, new.se, cout)
            self._shortcut(old, new, cin, cout)
        else:
            raise Net2NetError(f"{type(old).__name__} does not widen exactly")

    def _shortcut(self, old: nn.Module, new: nn.Module, cin: ChannelMap,
                  cout: ChannelMap) -> None:
        if (old.shortcut is None) != (new.shortcut is None):
            raise Net2NetError("the projection shortcut appears or disappears")
        if old.shortcut is not None:
            self.conv_bn(old.shortcut, new.shortcut, cin, cout)


def torch_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    import torch

    return a.shape == b.shape and bool(torch.equal(a, b))


def _same_shapes(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(sa[k].shape == sb[k].shape for k in sa)


# ---- Net2DeeperNet --------------------------------------------------------------------------
def identity_init(layer: nn.Module, residual: bool) -> list[nn.BatchNorm2d]:
    """Make a freshly built block compute the identity (see the module docstring).

    Returns the batch norms that follow identity kernels: ``match_batch_stats`` can set them
    from the layer input's statistics so that train mode starts as the identity too.
    """
    import torch
    from torch import nn

    from spaces import blocks as b

    with torch.no_grad():
        if residual:
            last = {b.PlainConv: lambda m: [m.conv[1]],
                    b.DepthwiseSeparable: lambda m: [m.pointwise[1]],
                    b.InvertedResidual: lambda m: [m.project[1]],
                    b.BasicResidual: lambda m: [m.conv2[1]],
                    b.Bottleneck: lambda m: [m.expand[1]],
                    b.Fire: lambda m: [m.expand1[1], m.expand_k[1]],
                    b.ShuffleUnit: lambda m: [m.expand[1]]}
            if isinstance(layer, b.DenseUnit):
                layer.transition[2].weight.zero_()
                return []
            for bn in last[type(layer)](layer):
                bn.weight.zero_()
                bn.bias.zero_()
            return []
        if isinstance(layer, b.PlainConv):
            convs = [layer.conv]
        elif isinstance(layer, b.DepthwiseSeparable):
            convs = [layer.depthwise, layer.pointwise]
        elif isinstance(layer, b.BasicResidual):
            convs = [layer.conv1, layer.conv2]
        else:
            raise Net2NetError(f"{type(layer).__name__} has no identity form without a shortcut")
        if not isinstance(getattr(layer, "se", nn.Identity()), nn.Identity):
            layer.se.expand.weight.zero_()
            layer.se.expand.bias.fill_(SE_GATE_BIAS)
        norms = []
        for unit in convs:
            conv, bn = unit[0], unit[1]
            conv.weight.zero_()
            k = conv.kernel_size[0] // 2
            channels = torch.arange(conv.out_channels)
            in_index = torch.zeros_like(channels) if conv.groups > 1 else channels
            conv.weight[channels, in_index, k, k] = 1.0
            bn.running_mean.zero_()
            bn.running_var.fill_(1.0)
            bn.weight.fill_(float((1.0 + bn.eps) ** 0.5))
            bn.bias.zero_()
            norms.append(bn)
        return norms


def match_batch_stats(model: nn.Module, norms: Sequence[nn.BatchNorm2d],
                      sample: torch.Tensor) -> None:
    """Set each identity batch norm to undo its own normalisation of ``sample``'s
    activations there (Net2Net's treatment of batch norm): identity in eval and train mode."""
    import torch

    seen: dict[int, torch.Tensor] = {}
    hooks = [bn.register_forward_pre_hook(
        lambda m, args: seen.__setitem__(id(m), args[0].detach())) for bn in norms]
    forward_with_hooks(model, sample, hooks)
    with torch.no_grad():
        for bn in norms:
            x = seen[id(bn)]
            mean = x.mean((0, 2, 3))
            var = x.var((0, 2, 3), unbiased=False)
            bn.running_mean.copy_(mean)
            bn.running_var.copy_(var)
            bn.weight.copy_((var + bn.eps).sqrt())
            bn.bias.copy_(mean)


# ---- a whole network ------------------------------------------------------------------------
def transfer(space: MnasNetSpace, parent: Mapping[str, Any], parent_model: nn.Module,
             child: Mapping[str, Any], input_shape: Sequence[int], num_classes: int, *,
             seed: int = 0, noise: float = 0.01, sample: torch.Tensor | None = None
             ) -> nn.Module:
    """The child's network, initialised from the trained parent to compute its function.

    ``noise`` is the relative spread of the weight splits that break the symmetry of copied
    units; ``sample`` (a batch of inputs) sets the batch norms of identity layers.
    """
    import torch

    pairs = _plan_pairs(space, parent, child, input_shape)
    from spaces.isolation import seeded

    gen = torch.Generator().manual_seed(seed)
    with seeded(seed):
        model = space.build_model(child, input_shape, num_classes)
    widen = _Widener(gen, noise)
    p_layers, c_layers = parent_model[0], model[0]
    norms: list[nn.BatchNorm2d] = []
    c_plan = space.layer_plan(child, input_shape)
    with torch.no_grad():
        c_layers[0].load_state_dict(p_layers[0].state_dict())  # the stem never changes
        cmap = widen.new_map(space.stem, space.stem)
        block_maps: dict[int, ChannelMap] = {}
        for block, ci, pi in pairs:
            if pi is None:
                norms += identity_init(c_layers[ci], c_plan[ci].residual)
                continue
            if block not in block_maps:
                p_w = parent_model[0][pi].out_channels
                block_maps[block] = widen.new_map(p_w, c_layers[ci].out_channels)
            widen.block(p_layers[pi], c_layers[ci], cmap, block_maps[block])
            cmap = block_maps[block]
        head = widen.new_map(space.head, space.head)
        widen.conv_bn(parent_model[1], model[1], cmap, head)
        model[-1].load_state_dict(parent_model[-1].state_dict())
    if norms and sample is not None:
        match_batch_stats(model, norms, sample)
    return model
