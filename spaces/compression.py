"""The compression space: per-layer compression decisions over a trained model's layers.

Built from a ``LayerTable`` (plain data: the model's convolution, linear and batch-norm ops in
forward order, and its prunable channel groups, found by ``search.compression.graph``), so
this module needs neither torch nor the model. Decisions, by control:

- ``prune``: per channel group, the fraction of channels removed (structured pruning; a group
  couples every layer whose channels must go together, e.g. a residual stream).
- ``sparsity``: per layer, the fraction of weights zeroed (fine-grained magnitude pruning).
- ``bits``: per layer, the weight bit-width; 1 means binarized (XNOR-Net), 32 float.
- ``share``: per layer, weight sharing with a ``2**b``-entry codebook: k-means (Deep
  Compression) by default, or soft weight sharing (``soft_share``: retraining under a Gaussian
  mixture prior, Ullrich et al. 2017) whose ``2**b - 1`` non-zero components are the codebook.
- ``depth``: per removable block (a residual block with an identity shortcut whose input and
  output shapes match), keep it or drop it (the block becomes the identity). Each block
  removed also removes its operators' fixed cost, which channel pruning never does.

An RL agent walks the layers (``steps``); the space gives each step's static features (AMC's
state), maps an action in [0, 1] (0 = no compression, 1 = the most) to a decision value, and
``constrain`` limits a value so that a resource target stays reachable whatever the later
layers choose (AMC's resource-constrained mode). Costs are exact for this table's counting
rule: MACs of convolutions and linear layers (bias included), parameters of those and of
batch norm, weight bytes, or a fitted linear latency model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spaces.base import Architecture, Categorical, Continuous, Decision, InvalidArchitecture, Space
from spaces.paths import options_field, path_field

CONTROLS = ("prune", "sparsity", "bits", "share", "depth")
DEPTH_CHOICES = ("keep", "drop")
METRICS = ("flops", "params", "size", "latency")
OP_TYPES = {"conv": 0, "dwconv": 1, "linear": 2}


# ---- plain data describing a model ---------------------------------------------------------
@dataclass(frozen=True)
class OpInfo:
    """One convolution, linear or batch-norm op, with the channel groups that slice it."""

    name: str
    kind: Literal["conv", "dwconv", "linear", "bn"]
    c_in: int
    c_out: int
    kernel: int = 1
    stride: int = 1
    out_hw: int = 1  # output height * width (1 for linear and batch norm)
    bias: bool = False
    in_group: int | None = None  # channel group that prunes this op's inputs
    out_group: int | None = None  # channel group that prunes this op's outputs


@dataclass(frozen=True)
class GroupInfo:
    """Channels that are pruned together; ``leader`` is the first op producing them."""

    index: int
    channels: int
    leader: str


@dataclass(frozen=True)
class BlockInfo:
    """A residual block that may be removed whole: ``x + f(x)`` with an identity shortcut and
    output shape = input shape, so replacing it by the identity leaves every other layer's
    shapes unchanged. ``ops``: its convolution, linear and batch-norm ops."""

    name: str
    ops: tuple[str, ...]


@dataclass(frozen=True)
class LayerTable:
    ops: tuple[OpInfo, ...]
    groups: tuple[GroupInfo, ...]
    input_shape: tuple[int, ...] = ()
    blocks: tuple[BlockInfo, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        out = {"ops": [asdict(o) for o in self.ops], "groups": [asdict(g) for g in self.groups],
               "input_shape": list(self.input_shape)}
        if self.blocks:  # absent otherwise: tables (and cache keys) of earlier versions hold
            out["blocks"] = [{"name": b.name, "ops": list(b.ops)} for b in self.blocks]
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerTable:
        return cls(tuple(OpInfo(**o) for o in data["ops"]),
                   tuple(GroupInfo(**g) for g in data["groups"]),
                   tuple(data.get("input_shape", ())),
                   tuple(BlockInfo(b["name"], tuple(b["ops"]))
                         for b in data.get("blocks", ())))

    def weighted(self) -> list[OpInfo]:
        """Ops with a weight matrix (convolutions and linear layers), in forward order."""
        return [o for o in self.ops if o.kind != "bn"]


@dataclass(frozen=True)
class Step:
    """One step of a layer-by-layer episode: a layer and the decisions made there."""

    layer: str
    decisions: dict[str, str]  # control -> decision name
    features: tuple[float, ...]  # index, type, c_in, c_out, stride, kernel, FLOPs (raw)


@dataclass(frozen=True)
class LatencyModel:
    """Latency ~ intercept + sum over ops of coef[op] * MACs(op) (fitted to a profiler)."""

    intercept: float
    coefs: dict[str, float] = field(default_factory=dict)
    unit: str = "ms"


# ---- options (torch-free: the API validates jobs with these) ---------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


def smallest_fitting(fits_at: Callable[[float], bool], hi: float, steps: int) -> float:
    """The smallest scale in [0, ``hi``] at which ``fits_at`` holds, by ``steps`` bisections
    (``fits_at(hi)`` must hold): how scaled policies are moved just onto a target."""
    lo = 0.0
    for _ in range(steps):
        mid = 0.5 * (lo + hi)
        if fits_at(mid):
            hi = mid
        else:
            lo = mid
    return hi


class ModelRef(_Strict):
    """The model a compression job starts from.

    Exactly one of: ``reference`` (a reference network, trained inside the job on ``dataset``
    unless ``weights`` gives its state dict), ``artifact`` (a LightSearch compressed artifact,
    ``.lsz``, of an earlier job; never a pickle), or ``space`` + ``arch`` (+ ``weights``) for
    an architecture of a LightSearch space that can build torch models. ``weights``: a state
    dict as safetensors or a weights-only torch file.
    """

    reference: Literal["resnet_small", "mobilenetv2_small"] | None = None
    artifact: str | None = path_field("model", min_length=1)
    space: str | None = Field(None, min_length=1)
    arch: dict[str, Any] | None = None
    space_options: dict[str, Any] = options_field(
        "space", "space", default_factory=dict,
        description="Options of 'space' (its registry entry).")
    weights: str | None = path_field("model", min_length=1)
    dataset: Literal["digits", "mnist5k", "fashion_mnist"] = "digits"
    epochs: float = Field(10, ge=0, le=1000, description="Training epochs of a reference model.")
    width: float = Field(1.0, gt=0, le=8, description="Width multiplier of a reference model.")
    seed: int = Field(0, ge=0, le=2**31 - 1, description="Seed of data split and training.")
    limit: int | None = Field(None, ge=30, le=10_000_000,
                              description="Use only the first N samples.")

    @model_validator(mode="after")
    def _one_source(self) -> ModelRef:
        sources = [n for n in ("reference", "artifact", "space") if getattr(self, n)]
        if len(sources) != 1:
            raise ValueError("model needs exactly one of 'reference', 'artifact' or 'space', "
                             f"got {sources or 'none'}")
        if self.space and self.arch is None:
            raise ValueError("model.space needs model.arch")
        if self.weights and self.artifact:
            raise ValueError("model.weights goes with 'reference' or 'space', not 'artifact'")
        return self


class TargetSpec(_Strict):
    """A resource target: ``ratio`` of the uncompressed model's ``metric``."""

    metric: Literal["flops", "params", "size", "latency"] = "flops"
    ratio: float = Field(..., gt=0, le=1)
    profiler: str = Field(
        "cpu", min_length=1,
        description="For latency: the profiler whose measurements the latency model is fitted to.",
    )


class SoftShareOptions(_Strict):
    """Soft weight sharing for the ``share`` control (``search.compression.soft_sharing``)."""

    scope: Literal["layer", "global"] = Field(
        "layer", description="One mixture per layer, or one for every shared layer (then with "
                             "the largest codebook any layer chose).")
    epochs: float = Field(5.0, gt=0, le=100, description="Retraining epochs under the prior.")
    tau: float = Field(0.01, ge=0, le=10, description="Weight of the prior's term per weight.")
    pi_zero: float = Field(
        0.5, gt=0, lt=1, description="Fixed proportion of the zero component (pruned weights). "
        "The paper's 0.99 suits large dense layers; on small convolutional models it pruned "
        "too much (2-bit codebooks on a digits ResNet: 62.5% against 90.8% at 0.5).")
    lr: float = Field(1e-3, gt=0, le=1, description="Adam step of the weights.")
    prior_lr: float = Field(3e-3, gt=0, le=1, description="Adam step of the mixture.")


class CompressionSpaceOptions(_Strict):
    """Options of the ``compression`` space (a job's top-level ``model``/``target`` fill them)."""

    model: ModelRef | None = None
    controls: list[Literal["prune", "sparsity", "bits", "share", "depth"]] = Field(
        default_factory=lambda: ["prune"], min_length=1,
        description="'depth': one keep/drop decision per residual block with an identity "
        "shortcut (equal input and output shapes); a dropped block becomes the identity.")
    target: TargetSpec | None = None
    max_prune: float = Field(0.9, gt=0, lt=1, description="Largest channel prune ratio.")
    max_sparsity: float = Field(0.95, gt=0, lt=1, description="Largest fine-grained sparsity.")
    channel_multiple: int = Field(
        1, ge=1, le=256,
        description="Round each group's kept channels to a multiple of this (8 keeps ONNX "
        "Runtime's blocked kernels; a group narrower than it is kept whole).")
    flops_block: Annotated[int, Field(ge=1, le=256)] | Literal["auto"] = Field(
        1, description="Price FLOPs (costs, targets, agents' states) with every convolution's "
        "channels rounded up to a multiple of this, as ONNX Runtime's blocked (NCHWc) kernels "
        "compute them; 'auto': that block on the worker's CPU (16 with AVX-512, 8 with AVX2, 1 "
        "without blocked kernels). 1: plain FLOPs. Reported FLOPs stay plain.")
    bit_choices: list[Literal[32, 16, 8, 6, 4, 3, 2, 1]] = Field(
        default_factory=lambda: [8, 4, 2, 1], min_length=1)
    share_choices: list[Literal[8, 6, 5, 4, 3, 2, 1]] = Field(
        default_factory=lambda: [8, 4, 2], min_length=1)
    soft_share: SoftShareOptions | None = Field(
        None, description="Share weights by soft weight sharing instead of k-means.")

    @model_validator(mode="after")
    def _check(self) -> CompressionSpaceOptions:
        if len(set(self.controls)) != len(self.controls):
            raise ValueError(f"controls repeat an entry: {self.controls}")
        if "bits" in self.controls and "share" in self.controls:
            raise ValueError("controls: 'bits' and 'share' both set a layer's weight format; "
                             "choose one")
        if self.model is None:
            raise ValueError("model is required (or a compression job's top-level 'model')")
        return self


# ---- the space ---------------------------------------------------------------------------------
class CompressionSpace(Space):
    """Per-layer compression decisions over a ``LayerTable`` (see the module docstring)."""

    name = "compression"

    def __init__(
        self,
        table: LayerTable,
        *,
        controls: Sequence[str] = ("prune",),
        target: TargetSpec | Mapping[str, Any] | None = None,
        max_prune: float = 0.9,
        max_sparsity: float = 0.95,
        bit_choices: Sequence[int] = (8, 4, 2, 1),
        share_choices: Sequence[int] = (8, 4, 2),
        latency_model: LatencyModel | None = None,
        config: Mapping[str, Any] | None = None,
        channel_multiple: int = 1,
        soft_share: SoftShareOptions | Mapping[str, Any] | None = None,
        flops_block: int = 1,
        min_keep: Mapping[str, int] | None = None,
    ) -> None:
        unknown = sorted(set(controls) - set(CONTROLS))
        if unknown or not controls:
            raise ValueError(f"controls must be a non-empty subset of {list(CONTROLS)}, "
                             f"got {list(controls)}")
        if "bits" in controls and "share" in controls:
            raise ValueError("controls: 'bits' and 'share' both set a layer's weight format")
        if not 0 < max_prune < 1:
            raise ValueError(f"max_prune must be in (0, 1), got {max_prune}")
        if not 0 < max_sparsity < 1:
            raise ValueError(f"max_sparsity must be in (0, 1), got {max_sparsity}")
        if int(channel_multiple) < 1:
            raise ValueError(f"channel_multiple must be >= 1, got {channel_multiple}")
        self.channel_multiple = int(channel_multiple)
        if int(flops_block) < 1:
            raise ValueError(f"flops_block must be >= 1, got {flops_block}")
        self.flops_block = int(flops_block)
        self.soft_share = (SoftShareOptions.model_validate(dict(soft_share))
                           if isinstance(soft_share, Mapping) else soft_share)
        self.table = table
        self.controls = tuple(c for c in CONTROLS if c in controls)
        self.max_prune = float(max_prune)
        self.max_sparsity = float(max_sparsity)
        self.min_keep = self._check_min_keep(table, min_keep)
        # Most precise first: an action of 0 means no compression, 1 the most.
        self.bit_choices = tuple(sorted({int(b) for b in bit_choices}, reverse=True))
        self.share_choices = tuple(sorted({int(b) for b in share_choices}, reverse=True))
        self.latency_model = latency_model
        self._config = dict(config or {})
        self._ops = {o.name: o for o in table.ops}
        self._groups = {g.index: g for g in table.groups}
        self._build_steps()
        self.target = TargetSpec.model_validate(dict(target)) if isinstance(target, Mapping) \
            else target
        self.budget: float | None = None
        if self.target is not None:
            self._set_budget(self.target)

    # ---- decisions and steps ---------------------------------------------------------------
    def _build_steps(self) -> None:
        leaders = {g.leader: g for g in self.table.groups}
        decisions: list[Decision] = []
        steps: list[Step] = []
        self._decision_group: dict[str, int] = {}
        self._decision_op: dict[str, str] = {}
        self._decision_block: dict[str, BlockInfo] = {}
        first_op = {}  # a block's decision sits at the step of its first weighted layer
        if "depth" in self.controls:
            weighted = [o.name for o in self.table.weighted()]
            for b in self.table.blocks:
                inside = [n for n in weighted if n in set(b.ops)]
                if inside:
                    first_op[inside[0]] = b
            if not first_op:
                raise ValueError("controls: 'depth' removes residual blocks with an identity "
                                 "shortcut and equal input and output shapes; this model has "
                                 "none")
        for op in self.table.weighted():
            chosen: dict[str, str] = {}
            if "prune" in self.controls and op.name in leaders:
                name = f"prune:{op.name}"
                decisions.append(Continuous(name, 0.0, self._group_prune_bound(leaders[op.name])))
                chosen["prune"] = name
                self._decision_group[name] = leaders[op.name].index
            for control in ("sparsity", "bits", "share"):
                if control not in self.controls:
                    continue
                name = f"{control}:{op.name}"
                if control == "sparsity":
                    decisions.append(Continuous(name, 0.0, self.max_sparsity))
                elif control == "bits":
                    decisions.append(Categorical(name, self.bit_choices))
                else:
                    decisions.append(Categorical(name, self.share_choices))
                chosen[control] = name
                self._decision_op[name] = op.name
            if op.name in first_op:
                block = first_op[op.name]
                name = f"depth:{block.name}"
                decisions.append(Categorical(name, DEPTH_CHOICES))
                chosen["depth"] = name
                self._decision_block[name] = block
            if chosen:
                feats = (float(len(steps)), float(OP_TYPES[op.kind]), float(op.c_in),
                         float(op.c_out), float(op.stride), float(op.kernel),
                         float(self._op_cost(op, {}, "flops")))
                steps.append(Step(op.name, chosen, feats))
        if not decisions:
            raise ValueError(f"the model has nothing to compress with controls "
                             f"{list(self.controls)} (no prunable channel group or layer)")
        self._decisions = tuple(decisions)
        self._by_name = {d.name: d for d in decisions}
        self.steps: tuple[Step, ...] = tuple(steps)

    @staticmethod
    def _check_min_keep(table: LayerTable, min_keep: Mapping[str, int] | None
                        ) -> dict[str, int]:
        leaders = {g.leader: g.channels for g in table.groups}
        out = {}
        for name, kept in dict(min_keep or {}).items():
            if name not in leaders:
                raise ValueError(f"min_keep: {name!r} leads no channel group; leaders are "
                                 f"{sorted(leaders)}")
            if not 1 <= int(kept) <= leaders[name]:
                raise ValueError(f"min_keep[{name!r}] must be in [1, {leaders[name]}], "
                                 f"got {kept}")
            out[name] = int(kept)
        return out

    def _group_prune_bound(self, group: GroupInfo) -> float:
        """A group's largest prune ratio: ``max_prune``, or less where ``min_keep`` asks to
        keep more channels (e.g. a bound relative to a model this one was pruned from)."""
        floor = self.min_keep.get(group.leader)
        if floor is None:
            return self.max_prune
        return min(self.max_prune, 1.0 - floor / group.channels)

    def prune_high(self, name: str) -> float:
        """The largest ratio a ``prune:`` decision may take."""
        return self._by_name[name].high  # type: ignore[union-attr]

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions

    def to_config(self) -> dict[str, Any]:
        return dict(self._config)

    def describe(self, arch: Architecture) -> str:
        parts = []
        for step in self.steps:
            vals = [f"{c[0]}={_fmt(arch[n])}" for c, n in step.decisions.items()]
            parts.append(f"{step.layer}({','.join(vals)})")
        return " ".join(parts)

    def identity(self) -> Architecture:
        """The policy that compresses nothing."""
        return {d.name: (d.low if isinstance(d, Continuous) else d.choices[0])
                for d in self._decisions}

    def most_compressed(self) -> Architecture:
        return {d.name: (d.high if isinstance(d, Continuous) else d.choices[-1])
                for d in self._decisions}

    def bounded(self, max_prune: float) -> CompressionSpace:
        """The same space with a tighter prune bound (an agent's action bound, e.g. AMC's
        least preserve ratio); raises ``ValueError`` when the target is out of its reach."""
        return CompressionSpace(
            self.table, controls=self.controls, target=self.target,
            max_prune=min(self.max_prune, max_prune), max_sparsity=self.max_sparsity,
            bit_choices=self.bit_choices, share_choices=self.share_choices,
            latency_model=self.latency_model, config=self._config,
            channel_multiple=self.channel_multiple, soft_share=self.soft_share,
            flops_block=self.flops_block, min_keep=self.min_keep)

    def snap(self, name: str, value: Any) -> Any:
        """A ``prune:`` value moved onto the channel grid: the ratio its rounded channel count
        really removes (AMC records the preserve ratio after rounding), kept within the
        decision's bound; other decisions are returned unchanged."""
        if name not in self._decision_group:
            return value
        g = self._decision_group[name]
        exact = 1.0 - self.keep(g, value) / self._groups[g].channels
        return min(exact, self._by_name[name].high)  # type: ignore[union-attr]

    def group_of(self, name: str) -> int:
        """The channel group a ``prune:`` decision controls."""
        return self._decision_group[name]

    def action_to_value(self, name: str, action: float) -> float | int:
        """Map an action in [0, 1] (0 = no compression) to the decision's value."""
        return action_to_value(self._by_name[name], action)

    def value_to_action(self, name: str, value: Any) -> float:
        return value_to_action(self._by_name[name], value)

    # ---- costs ------------------------------------------------------------------------------
    def keep(self, group: int, ratio: float) -> int:
        """Channels kept in ``group`` when a fraction ``ratio`` is pruned (at least one),
        rounded to the nearest multiple of ``channel_multiple`` (at least one multiple; a
        group with fewer channels than that, or a count rounding past it, keeps them all)."""
        c = self._groups[group].channels
        kept = max(1, int(math.floor(c * (1.0 - float(ratio)) + 0.5)))
        m = self.channel_multiple
        if m > 1:
            kept = min(c, max(m, int(math.floor(kept / m + 0.5)) * m))
        return kept

    def removed_blocks(self, arch: Mapping[str, Any]) -> list[str]:
        """Names of the blocks ``arch`` drops (``depth`` control), in forward order."""
        return [b.name for n, b in self._decision_block.items() if arch.get(n) == "drop"]

    def removed_ops(self, arch: Mapping[str, Any]) -> set[str]:
        """Ops inside the blocks ``arch`` drops: they cost nothing."""
        return {o for n, b in self._decision_block.items() if arch.get(n) == "drop"
                for o in b.ops}

    def kept_channels(self, arch: Mapping[str, Any]) -> dict[int, int]:
        kept = {g.index: g.channels for g in self.table.groups}
        for name, g in self._decision_group.items():
            if name in arch:
                kept[g] = self.keep(g, arch[name])
        return kept

    def _op_counts(self, op: OpInfo, kept: Mapping[int, int], pad: int = 1
                   ) -> tuple[int, int, int]:
        """(c_in, c_out, weight count) of an op after structured pruning; ``pad`` > 1 rounds
        a convolution's channels that belong to a group up to a multiple of it (the padding
        of ONNX Runtime's blocked kernels; the image's channels and linear layers are not
        blocked)."""
        c_in, c_out = op.c_in, op.c_out
        if op.in_group is not None and op.in_group in kept:
            g = self._groups[op.in_group]
            c_in = op.c_in * kept[op.in_group] // g.channels
        if op.out_group is not None and op.out_group in kept:
            g = self._groups[op.out_group]
            c_out = op.c_out * kept[op.out_group] // g.channels
        if pad > 1 and op.kind in ("conv", "dwconv"):
            if op.in_group is not None:
                c_in = -(-c_in // pad) * pad
            if op.out_group is not None:
                c_out = -(-c_out // pad) * pad
        if op.kind == "dwconv":
            c_in = c_out
            weights = c_out * op.kernel * op.kernel
        elif op.kind == "conv":
            weights = c_out * c_in * op.kernel * op.kernel
        elif op.kind == "linear":
            weights = c_out * c_in
        else:
            weights = 0
        return c_in, c_out, weights

    def _op_cost(self, op: OpInfo, kept: Mapping[int, int], metric: str,
                 arch: Mapping[str, Any] | None = None, padded: bool = True) -> float:
        if metric == "flops":
            pad = self.flops_block if padded else 1
            _, c_out, weights = self._op_counts(op, kept, pad)
            bias = c_out if op.bias else 0
            return 0.0 if op.kind == "bn" else float((weights + bias) * op.out_hw)
        _, c_out, weights = self._op_counts(op, kept)
        bias = c_out if op.bias else 0
        if op.kind == "bn":
            params = 2 * c_out
            return float(params) if metric == "params" else float(params * 4)
        arch = arch or {}
        density = 1.0 - float(arch.get(f"sparsity:{op.name}", 0.0))
        nonzero = int(math.floor(weights * density + 0.5))
        if metric == "params":
            return float(nonzero + bias)
        if metric == "size":
            return float(weight_bytes(weights, nonzero, arch.get(f"bits:{op.name}"),
                                      arch.get(f"share:{op.name}"), c_out) + 4 * bias)
        raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")

    def cost(self, arch: Mapping[str, Any], metric: str, *, padded: bool = True) -> float:
        """Cost of a (possibly partial) policy; missing decisions compress nothing.

        ``flops``: multiply-adds of convolutions and linear layers (channels padded to
        ``flops_block`` unless ``padded`` is False: the search prices what ONNX Runtime
        computes, reports count what the model holds); ``params``: non-zero weights, biases
        and batch-norm affine pairs; ``size``: bytes of those stored in the chosen formats
        (float32 otherwise); ``latency``: the fitted latency model (plain FLOPs).
        """
        kept = self.kept_channels(arch)
        removed = self.removed_ops(arch)
        ops = [o for o in self.table.ops if o.name not in removed]
        if metric == "latency":
            if self.latency_model is None:
                raise ValueError("this space has no latency model: fit one to a profiler "
                                 "(search.compression.latency) before using a latency target")
            lm = self.latency_model
            return lm.intercept + sum(lm.coefs.get(o.name, 0.0)
                                      * self._op_cost(o, kept, "flops", padded=False)
                                      for o in ops)
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {metric!r}")
        return sum(self._op_cost(o, kept, metric, arch, padded) for o in ops)

    def op_costs(self, arch: Mapping[str, Any], metric: str = "flops", *,
                 padded: bool = True) -> dict[str, float]:
        """Per-op cost of a policy (``flops``, ``params`` or ``size``; 0 in removed blocks)."""
        kept = self.kept_channels(arch)
        removed = self.removed_ops(arch)
        return {o.name: 0.0 if o.name in removed
                else self._op_cost(o, kept, metric, arch, padded) for o in self.table.ops}

    def costs(self, arch: Mapping[str, Any]) -> dict[str, float]:
        out = {m: self.cost(arch, m) for m in ("flops", "params", "size")}
        if self.latency_model is not None:
            out["latency"] = self.cost(arch, "latency")
        return out

    # ---- the resource target ------------------------------------------------------------------
    def uncompressed(self, metric: str, *, padded: bool = True) -> float:
        """The reference's cost: every channel, dense float32 weights (``identity()`` is the
        least compression *allowed*, e.g. 8-bit when 32 is not a bit choice)."""
        return self.cost({}, metric, padded=padded)

    def _set_budget(self, target: TargetSpec) -> None:
        full = self.uncompressed(target.metric)
        self.budget = target.ratio * full
        least = self.cost(self.most_compressed(), target.metric)
        if least > self.budget * (1 + 1e-12):
            raise ValueError(
                f"target.ratio {target.ratio:g} of {target.metric} is out of reach with controls "
                f"{list(self.controls)}: the most compressed policy keeps {least / full:.4f} "
                "of the uncompressed (float32) model")

    def fits(self, arch: Mapping[str, Any]) -> bool:
        """True when a full policy meets the target (always true without a target)."""
        if self.target is None or self.budget is None:
            return True
        return self.cost(arch, self.target.metric) <= self.budget * (1 + 1e-9)

    def constrain(self, partial: Mapping[str, Any], name: str, value: Any) -> Any:
        """AMC's action limit: the least-compressing value at or beyond ``value`` for which
        the target is still met when every later decision compresses the most.

        ``partial`` holds the decisions already made (earlier steps); decisions absent from
        it and after ``name`` are assumed at their most compressed. Calling this at every
        step keeps the invariant "the target is reachable", so a finished episode meets it.
        """
        if self.target is None or self.budget is None:
            return value
        metric, budget = self.target.metric, self.budget * (1 + 1e-12)
        base = self.most_compressed()
        base.update(partial)

        def ok(v: Any) -> bool:
            base[name] = v
            return self.cost(base, metric) <= budget

        d = self._by_name[name]
        if ok(value):
            return value
        if isinstance(d, Categorical):
            start = d.choices.index(value)
            for choice in d.choices[start + 1:]:
                if ok(choice):
                    return choice
            return d.choices[-1]
        lo, hi = float(value), d.high
        if not ok(hi):
            return hi  # the invariant was broken by the caller; compress the most
        for _ in range(50):
            mid = 0.5 * (lo + hi)
            if ok(mid):
                hi = mid
            else:
                lo = mid
        return hi

    def meet_target(self, arch: Mapping[str, Any]) -> Architecture:
        """``arch`` moved onto the target: every decision goes the same fraction ``s`` of the
        way from its action to the most compressed one (``a + s * (1 - a)``), with the least
        ``s`` that meets the target (bisection; prune ratios on whole channels). A policy
        that meets it already, or a space without a target, comes back unchanged.

        The penalty alternative to ``constrain``: a policy whose layers overshoot is repaired
        by spreading the missing reduction over all of them, not by forcing the last ones
        to their bound."""
        full = {d.name: arch.get(d.name, self.identity()[d.name]) for d in self._decisions}
        if self.fits(full):
            return full
        actions = {n: self.value_to_action(n, v) for n, v in full.items()}

        def moved(s: float) -> Architecture:
            return {n: self.snap(n, self.action_to_value(n, a + s * (1.0 - a)))
                    for n, a in actions.items()}

        if not self.fits(moved(1.0)):
            raise ValueError("meet_target: the most compressed policy misses the target")
        return moved(smallest_fitting(lambda x: self.fits(moved(x)), 1.0, 40))

    def progress(self, partial: Mapping[str, Any], step: int) -> tuple[float, float]:
        """AMC's dynamic state at ``step``: cost reduced so far and cost of later layers,
        both as fractions of the uncompressed cost (FLOPs unless the target says otherwise)."""
        metric = self.target.metric if self.target is not None else "flops"
        if metric == "latency" and self.latency_model is None:
            metric = "flops"
        full = self.cost({}, metric) or 1.0
        reduced = (full - self.cost(partial, metric)) / full
        later = {s.layer for s in self.steps[step + 1:]} - self.removed_ops(partial)
        kept = self.kept_channels(partial)
        rest = sum(self._op_cost(self._ops[n], kept, "flops") for n in later)
        total_flops = self.cost({}, "flops") or 1.0
        return float(reduced), float(rest / total_flops)

    def check(self, arch: Architecture) -> None:
        for name, g in self._decision_group.items():
            if name in arch and self.keep(g, arch[name]) < 1:
                raise InvalidArchitecture(f"{name!r} removes every channel", decision=name)


def weight_bytes(weights: int, nonzero: int, bits: int | None, share: int | None,
                 channels: int) -> float:
    """Bytes of one layer's weights in the exported format (``search.compression.export``).

    Dense float32 by default; ``bits`` b < 32 stores b-bit integers plus one float32 scale per
    output channel (binarized: signs and XNOR-Net's per-channel mean magnitude); ``share``
    stores b-bit codebook indices plus a 2**b-entry float32 codebook. Sparse layers
    (nonzero < weights) store only the non-zero values plus a one-bit-per-weight mask.
    """
    if share is not None:
        per, extra = int(share), 4 * 2 ** int(share)
    elif bits is not None and int(bits) < 32:
        per, extra = int(bits), 4 * channels
    else:
        per, extra = 32, 0
    payload = nonzero * per / 8.0 + extra
    if nonzero < weights:
        payload += weights / 8.0
    return payload


def action_to_value(d: Decision, action: float) -> float | int:
    a = min(1.0, max(0.0, float(action)))
    if isinstance(d, Continuous):
        return d.low + a * (d.high - d.low)
    return d.choices[min(d.size - 1, int(a * d.size))]


def value_to_action(d: Decision, value: Any) -> float:
    if isinstance(d, Continuous):
        span = d.high - d.low
        return 0.0 if span == 0 else (float(value) - d.low) / span
    return (d.choices.index(value) + 0.5) / d.size


def _fmt(v: Any) -> str:
    return f"{v:.2f}" if isinstance(v, float) else str(v)
