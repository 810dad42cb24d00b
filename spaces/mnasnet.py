"""MnasNet's factorized hierarchical search space (Tan et al., CVPR 2019), built into PyTorch.

The network is a stem, a sequence of blocks and a classifier head. The skeleton fixes each
block's base filters, base number of layers and stride; per block the agent chooses

- ``b{i}_op``: the layer type (regular conv, depthwise-separable, MBConv with expansion 1/3/6,
  fire, shuffle; ResNet basic/bottleneck and dense units can be enabled by the ``ops`` option),
- ``b{i}_kernel``: 3 or 5,
- ``b{i}_se``: squeeze-and-excitation ratio 0 or 0.25,
- ``b{i}_skip``: ``none`` or ``identity`` (a residual on every layer whose shapes match),
- ``b{i}_layers``: layers relative to the base (-1, 0, +1),
- ``b{i}_width``: a width multiplier of the base filters (0.75, 1.0, 1.25).

All layers of a block share its choices (the factorization that keeps the space small while
letting blocks differ); the first layer of a block applies its stride.

Input size and classes come from the dataset: ``build_model(arch, input_shape, num_classes)``.
A block's stride 2 is applied only while the feature map is at least 4 pixels on its shorter
side, so the same space fits 8x8 digits, 28x28 MNIST and 224x224 images; the stem has stride 2
only for inputs of 64 pixels and more. This module imports torch only to build a model, so the
space itself can be validated in a torch-free process.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

from spaces.base import Architecture, Categorical, InvalidArchitecture, Space

if TYPE_CHECKING:
    from torch import nn

#: op name -> (block class name in spaces.blocks, extra constructor arguments)
OP_TABLE: dict[str, tuple[str, dict[str, Any]]] = {
    "conv": ("PlainConv", {}),
    "sep": ("DepthwiseSeparable", {}),
    "mbconv1": ("InvertedResidual", {"expand_ratio": 1}),
    "mbconv3": ("InvertedResidual", {"expand_ratio": 3}),
    "mbconv6": ("InvertedResidual", {"expand_ratio": 6}),
    "fire": ("Fire", {}),
    "shuffle": ("ShuffleUnit", {}),
    "resnet": ("BasicResidual", {}),
    "bottleneck": ("Bottleneck", {}),
    "dense": ("DenseUnit", {}),
}
DEFAULT_OPS: tuple[str, ...] = ("conv", "sep", "mbconv1", "mbconv3", "mbconv6", "fire",
                                "shuffle")
#: (base filters, base layers, stride): a compact MnasNet-like skeleton for small images.
DEFAULT_BLOCKS: tuple[tuple[int, int, int], ...] = (
    (16, 1, 2), (24, 2, 2), (40, 2, 2), (80, 2, 1), (96, 1, 1),
)
SKIPS: tuple[str, ...] = ("none", "identity")
CHANNEL_DIVISOR = 8


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a built network: everything its latency depends on (the LUT key)."""

    op: str  # an OP_TABLE name, or "stem" / "head"
    cin: int
    cout: int
    stride: int
    kernel: int
    se: float
    residual: bool
    height: int  # input feature map
    width: int

    def key(self) -> str:
        return (f"{self.op}|{self.cin}|{self.cout}|s{self.stride}|k{self.kernel}|se{self.se:g}"
                f"|r{int(self.residual)}|{self.height}x{self.width}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _make_divisible(value: float, divisor: int = CHANNEL_DIVISOR) -> int:
    """Same rule as ``spaces.blocks.make_divisible`` (kept here to stay torch-free)."""
    out = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


def _out_size(size: int, stride: int) -> int:
    return (size + stride - 1) // stride


class MnasNetSpace(Space):
    """The factorized hierarchical space over a block skeleton (see the module docstring)."""

    name = "mnasnet"

    def __init__(
        self,
        blocks: Sequence[Mapping[str, int] | Sequence[int]] = DEFAULT_BLOCKS,
        ops: Sequence[str] = DEFAULT_OPS,
        kernels: Sequence[int] = (3, 5),
        se_ratios: Sequence[float] = (0.0, 0.25),
        skips: Sequence[str] = SKIPS,
        layer_deltas: Sequence[int] = (-1, 0, 1),
        widths: Sequence[float] = (0.75, 1.0, 1.25),
        stem: int = 16,
        head: int = 128,
        shuffle_groups: int = 2,
        dropout: float = 0.0,
    ) -> None:
        self.blocks = tuple(self._parse_block(i, b) for i, b in enumerate(blocks))
        if not self.blocks:
            raise ValueError("blocks: the skeleton needs at least one block")
        unknown = [o for o in ops if o not in OP_TABLE]
        if unknown or not ops:
            raise ValueError(f"ops: unknown op(s) {unknown or '(none given)'}; valid ops: "
                             f"{', '.join(OP_TABLE)}")
        for name, values in (("kernels", kernels), ("se_ratios", se_ratios), ("skips", skips),
                             ("layer_deltas", layer_deltas), ("widths", widths)):
            if not values:
                raise ValueError(f"{name}: needs at least one value")
            if len(set(values)) != len(values):
                raise ValueError(f"{name}: repeated values {list(values)}")
        if any(k not in (1, 3, 5, 7) for k in kernels):
            raise ValueError(f"kernels: each must be 1, 3, 5 or 7, got {list(kernels)}")
        if any(not 0.0 <= r <= 1.0 for r in se_ratios):
            raise ValueError(f"se_ratios: each must be in [0, 1], got {list(se_ratios)}")
        if any(s not in SKIPS for s in skips):
            raise ValueError(f"skips: each must be one of {list(SKIPS)}, got {list(skips)}")
        if any(w <= 0 for w in widths):
            raise ValueError(f"widths: each must be > 0, got {list(widths)}")
        for name, v in (("stem", stem), ("head", head), ("shuffle_groups", shuffle_groups)):
            if int(v) != v or v < 1:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.ops, self.kernels = tuple(ops), tuple(int(k) for k in kernels)
        self.se_ratios, self.skips = tuple(float(r) for r in se_ratios), tuple(skips)
        self.layer_deltas = tuple(int(d) for d in layer_deltas)
        self.widths = tuple(float(w) for w in widths)
        self.stem, self.head = int(stem), int(head)
        self.shuffle_groups, self.dropout = int(shuffle_groups), float(dropout)
        self._decisions: tuple[Categorical, ...] = tuple(
            d for i in range(len(self.blocks)) for d in (
                Categorical(f"b{i}_op", self.ops),
                Categorical(f"b{i}_kernel", self.kernels),
                Categorical(f"b{i}_se", self.se_ratios),
                Categorical(f"b{i}_skip", self.skips),
                Categorical(f"b{i}_layers", self.layer_deltas),
                Categorical(f"b{i}_width", self.widths),
            ))

    @staticmethod
    def _parse_block(i: int, block: Mapping[str, int] | Sequence[int]) -> tuple[int, int, int]:
        if isinstance(block, Mapping):
            try:
                values = (block["filters"], block["layers"], block["stride"])
            except KeyError as err:
                raise ValueError(f"blocks[{i}]: missing {err.args[0]!r} (needs filters, "
                                 f"layers, stride)") from None
        else:
            values = tuple(block)
            if len(values) != 3:
                raise ValueError(f"blocks[{i}]: expected (filters, layers, stride), "
                                 f"got {block!r}")
        filters, layers, stride = (int(v) for v in values)
        if filters < 1 or layers < 1:
            raise ValueError(f"blocks[{i}]: filters and layers must be >= 1, got {block!r}")
        if stride not in (1, 2):
            raise ValueError(f"blocks[{i}]: stride must be 1 or 2, got {stride}")
        return filters, layers, stride

    @property
    def decisions(self) -> Sequence[Categorical]:
        return self._decisions

    def to_config(self) -> dict[str, Any]:
        return {
            "blocks": [{"filters": f, "layers": n, "stride": s} for f, n, s in self.blocks],
            "ops": list(self.ops), "kernels": list(self.kernels),
            "se_ratios": list(self.se_ratios), "skips": list(self.skips),
            "layer_deltas": list(self.layer_deltas), "widths": list(self.widths),
            "stem": self.stem, "head": self.head, "shuffle_groups": self.shuffle_groups,
            "dropout": self.dropout,
        }

    # ---- structure ----------------------------------------------------------------------
    def block_channels(self, arch: Mapping[str, Any], i: int) -> int:
        return _make_divisible(self.blocks[i][0] * float(arch[f"b{i}_width"]))

    def block_layers(self, arch: Mapping[str, Any], i: int) -> int:
        return self.blocks[i][1] + int(arch[f"b{i}_layers"])

    def check(self, arch: Architecture) -> None:
        cin = self.stem
        for i in range(len(self.blocks)):
            n = self.block_layers(arch, i)
            if n < 1:
                raise InvalidArchitecture(
                    f"b{i}_layers = {arch[f'b{i}_layers']} leaves block {i} with {n} layers "
                    f"(base {self.blocks[i][1]}); a block needs at least 1",
                    decision=f"b{i}_layers")
            cout = self.block_channels(arch, i)
            g = self.shuffle_groups
            if arch[f"b{i}_op"] == "shuffle" and (cin % g or cout % g):
                raise InvalidArchitecture(
                    f"b{i}_op = 'shuffle' needs channels divisible by shuffle_groups={g}; "
                    f"block {i} goes {cin} -> {cout} channels", decision=f"b{i}_op")
            cin = cout

    def describe(self, arch: Architecture) -> str:
        parts = []
        for i in range(len(self.blocks)):
            skip = "+id" if arch[f"b{i}_skip"] == "identity" else ""
            se = f"-se{arch[f'b{i}_se']:g}" if arch[f"b{i}_se"] else ""
            parts.append(f"{arch[f'b{i}_op']}k{arch[f'b{i}_kernel']}{se}{skip}"
                         f"x{self.block_layers(arch, i)}@{self.block_channels(arch, i)}")
        return " ".join(parts)

    def layer_plan(self, arch: Mapping[str, Any],
                   input_shape: Sequence[int]) -> list[LayerSpec]:
        """Stem, every layer and the head with the shapes they see: what ``build_model``
        builds, and the units a latency look-up table is keyed on."""
        arch = self.validate(arch)
        channels, height, width = _check_input_shape(input_shape)
        stem_stride = 2 if min(height, width) >= 64 else 1
        plan = [LayerSpec("stem", channels, self.stem, stem_stride, 3, 0.0, False, height,
                          width)]
        height, width = _out_size(height, stem_stride), _out_size(width, stem_stride)
        cin = self.stem
        for i, (_, _, stride) in enumerate(self.blocks):
            op, cout = arch[f"b{i}_op"], self.block_channels(arch, i)
            kernel, se = int(arch[f"b{i}_kernel"]), float(arch[f"b{i}_se"])
            residual = arch[f"b{i}_skip"] == "identity"
            if stride == 2 and min(height, width) < 4:
                stride = 1
            for j in range(self.block_layers(arch, i)):
                s = stride if j == 0 else 1
                # The identity shortcut only exists where shapes match: keep keys canonical.
                res = residual and s == 1 and cin == cout
                plan.append(LayerSpec(op, cin, cout, s, kernel, se, res, height, width))
                height, width, cin = _out_size(height, s), _out_size(width, s), cout
        plan.append(LayerSpec("head", cin, self.head, 1, 1, 0.0, False, height, width))
        return plan

    def build_model(self, arch: Mapping[str, Any], input_shape: Sequence[int],
                    num_classes: int) -> nn.Module:
        """The PyTorch network of ``arch`` for inputs ``(C, H, W)`` and ``num_classes``."""
        from torch import nn

        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        plan = self.layer_plan(arch, input_shape)
        layers = [build_layer(spec, self.shuffle_groups) for spec in plan[:-1]]
        head = plan[-1]
        return nn.Sequential(
            nn.Sequential(*layers),
            build_layer(head, self.shuffle_groups),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Dropout(self.dropout) if self.dropout > 0 else nn.Identity(),
            nn.Linear(self.head, int(num_classes)),
        )


def _check_input_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    try:
        c, h, w = (int(v) for v in input_shape)
    except (TypeError, ValueError):
        raise ValueError(f"input_shape must be (channels, height, width), "
                         f"got {input_shape!r}") from None
    if min(c, h, w) < 1:
        raise ValueError(f"input_shape must be positive, got {tuple(input_shape)}")
    return c, h, w


def build_layer(spec: LayerSpec, shuffle_groups: int = 2) -> nn.Module:
    """One layer of a plan as a module (the stem and head are conv-BN-ReLU)."""
    from spaces import blocks

    if spec.op in ("stem", "head"):
        return blocks.ConvBNAct(spec.cin, spec.cout, spec.kernel, spec.stride)
    cls_name, extra = OP_TABLE[spec.op]
    if spec.op == "shuffle":
        extra = {**extra, "groups": shuffle_groups}
    cls = getattr(blocks, cls_name)
    return cls(spec.cin, spec.cout, kernel=spec.kernel, stride=spec.stride, se_ratio=spec.se,
               residual=spec.residual, **extra)


def build_model(arch: Mapping[str, Any], input_shape: Sequence[int], num_classes: int,
                space: MnasNetSpace | None = None) -> nn.Module:
    """The network of ``arch`` in ``space`` (default: the default MnasNet space)."""
    return (space or MnasNetSpace()).build_model(arch, input_shape, num_classes)
