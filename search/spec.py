"""The job spec: one JSON document that says everything a search job does.

Validated eagerly and torch-free: component names are checked against the registries and
their options against each component's options model, so a bad spec fails at the door with
the field at fault and the valid choices.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from agents.registry import AGENTS
from search.registry import EVALUATORS, PROFILERS
from spaces.compression import ModelRef, TargetSpec
from spaces.registry import SPACES, Registry, UnknownName, options_error_text

#: A job's default cap on proposals (repeats included), as a multiple of its evaluations.
PROPOSALS_PER_EVALUATION = 50
MAX_PROPOSALS = 1_000_000_000
#: A bound or weight a user writes: finite, and far inside what JSON and SQL keep exactly.
Number = Annotated[float, Field(allow_inf_nan=False, ge=-1e15, le=1e15)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Component(_Strict):
    """A registered component by name, with its options."""

    name: str = Field(..., min_length=1, max_length=200)
    options: dict[str, Any] = Field(default_factory=dict)


def _check_component(registry: Registry, comp: Component) -> Component:
    entry = registry.get(comp.name)  # raises UnknownName (a ValueError) listing valid names
    try:
        entry.parse_options(comp.options)
    except ValidationError as err:
        raise ValueError(f"options of {registry.kind} {comp.name!r}: "
                         f"{options_error_text(err)}") from None
    return comp


class ObjectiveSpec(_Strict):
    metric: str = Field(..., min_length=1, max_length=200)
    direction: Literal["max", "min"] = "max"
    reference: float | None = Field(
        None, allow_inf_nan=False,
        description="This objective's value in the hypervolume's reference point (the worst "
        "value that still counts). Default: the worst value of the table the metric comes "
        "from, else the first batch's worst, widened by 10%; fixed once per job.")


class ConstraintSpec(_Strict):
    """A bound on a metric; ``reject`` skips evaluation of candidates that break it (a
    ``deferred`` profiler's metric, measured during evaluation, ends the trial after it)."""

    metric: str = Field(..., min_length=1, max_length=200)
    max: Number | None = None
    min: Number | None = None
    reject: bool = False

    @model_validator(mode="after")
    def _bounds(self) -> ConstraintSpec:
        if self.max is None and self.min is None:
            raise ValueError("a constraint needs 'max' or 'min'")
        if self.max is not None and self.min is not None and self.min > self.max:
            raise ValueError(f"min <= max must hold, got min={self.min}, max={self.max}")
        return self


class RewardSpec(_Strict):
    """How the scalar reward the agent learns from is made from the metrics.

    - ``objective``: the first objective's value (negated when it is minimized).
    - ``mnas``: MnasNet's ``ACC * (LAT / T) ** w``; ``soft`` uses ``w = alpha = beta``
      (paper: -0.07), ``hard`` uses ``alpha = 0`` below the target and ``beta = -1`` above.
    - ``weighted``: sum of ``weight * value`` over the named metrics.
    """

    kind: Literal["objective", "mnas", "weighted"] = "objective"
    accuracy: str | None = None
    latency: str | None = None
    target: float | None = Field(None, gt=0, le=1e12)
    mode: Literal["soft", "hard"] = "soft"
    w: float = Field(-0.07, le=0, ge=-10)
    weights: dict[str, Number] = Field(default_factory=dict, max_length=32)

    @model_validator(mode="after")
    def _needs(self) -> RewardSpec:
        if self.kind == "mnas":
            missing = [f for f in ("accuracy", "latency", "target") if getattr(self, f) is None]
            if missing:
                raise ValueError(f"reward kind 'mnas' needs {', '.join(missing)}")
        if self.kind == "weighted" and not self.weights:
            raise ValueError("reward kind 'weighted' needs 'weights' (metric -> weight)")
        return self


class BudgetSpec(_Strict):
    """Distinct evaluations and wall seconds; repeats answered from cache cost nothing."""

    evaluations: int = Field(100, ge=1, le=10_000_000)
    seconds: float | None = Field(None, gt=0, le=30 * 24 * 3600)
    max_proposals: int | None = Field(
        None, ge=1, le=MAX_PROPOSALS,
        description=f"Stop after this many proposals, repeats included (default "
        f"{PROPOSALS_PER_EVALUATION}x evaluations): an agent that only repeats itself ends the "
        "job 'exhausted'.",
    )
    max_failures: int | None = Field(
        None, ge=1, le=10_000_000,
        description="End the job 'failed' after this many failed trials in a row."
    )


class ExecutorSpec(_Strict):
    name: Literal["local", "ray"] = "local"
    mode: Literal["batch", "steady"] = Field(
        "batch",
        description="'batch': synchronous batches of batch_size proposals (a job is "
        "deterministic for its seed). 'steady': batch_size proposals stay in flight and each "
        "finished evaluation is replaced at once (no node waits for a batch's slowest trial; "
        "on Ray the order of results, and so the job, varies from run to run).")
    batch_size: int = Field(1, ge=1, le=4096, description="Proposals in flight at once.")
    chunk_size: int = Field(
        0, ge=0, le=4096,
        description="Evaluations per Ray task (0: spread a batch evenly over the CPUs).",
    )
    address: str | None = Field(
        None, min_length=1, max_length=500,
        description="Ray address for `lightsearch search` with name 'ray' (default "
        "RAY_ADDRESS or a local Ray). The service refuses it: jobs run on its own Ray.")

    @field_validator("chunk_size")
    @classmethod
    def _chunk_size(cls, v: int, info: ValidationInfo) -> int:
        if v > 1 and info.data.get("mode") == "steady":
            raise ValueError("mode 'steady' runs each evaluation as its own task (a chunk "
                             "would come back as a batch): set chunk_size to 0 or 1")
        return v

    @field_validator("address")
    @classmethod
    def _address(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is not None and info.data.get("name") != "ray":
            raise ValueError("a Ray address: it needs executor.name 'ray'")
        return v


class ExportSpec(_Strict):
    """Deployable files made when a ``train`` job succeeds (the service's job folder)."""

    best: bool = Field(True, description="Export the best trial: weights, TorchScript, "
                       "ONNX (checked against PyTorch), a model card.")
    pareto: bool = Field(False, description="Also export every Pareto-front trial.")
    measure_latency: bool = Field(True, description="Measure the exported files' latency "
                                  "again and record it in the model card.")


#: JSON Schema of the rule ``_compression_job`` enforces: ``model`` (required) and ``target``
#: belong to jobs of kind 'compress' only.
_KIND_RULE: dict[str, Any] = {
    "if": {"properties": {"kind": {"const": "compress"}}, "required": ["kind"]},
    "then": {"required": ["model"], "properties": {"model": {"not": {"type": "null"}}}},
    "else": {"properties": {"model": {"type": "null"}, "target": {"type": "null"}}},
}


class JobSpec(_Strict):
    """A whole search job."""

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra=_KIND_RULE)

    name: str = Field("search", min_length=1, max_length=200)
    kind: Literal["nas", "compress"] = "nas"
    model: ModelRef | None = Field(
        None, description="kind 'compress' only (required there; null or absent otherwise): "
        "the model to compress (fills the compression space's and the compress evaluator's "
        "'model' option).")
    target: TargetSpec | None = Field(
        None, description="kind 'compress' only: resource target {metric, ratio} of the "
        "space.")
    space: Component = Field(default_factory=lambda: Component(name="nb201"))
    agent: Component = Field(default_factory=lambda: Component(name="random"))
    evaluator: Component = Field(default_factory=lambda: Component(name="tabular"))
    profilers: list[Component] = Field(default_factory=list, max_length=32)
    objectives: list[ObjectiveSpec] = Field(
        default_factory=lambda: [ObjectiveSpec(metric="val_acc", direction="max")],
        min_length=1, max_length=3,
    )
    constraints: list[ConstraintSpec] = Field(default_factory=list, max_length=32)
    reward: RewardSpec = Field(default_factory=RewardSpec)
    budget: BudgetSpec = Field(default_factory=BudgetSpec)
    executor: ExecutorSpec = Field(default_factory=ExecutorSpec)
    seed: int = Field(0, ge=0, le=2**31 - 1)
    export: ExportSpec = Field(
        default_factory=ExportSpec,
        description="'train' jobs: which trials get deployable files when the job succeeds.")

    @model_validator(mode="before")
    @classmethod
    def _compression_job(cls, data: Any) -> Any:
        """A compression job's top-level ``model`` and ``target`` fill the options of the
        compression space and the compress evaluator, so the loop needs nothing special."""
        if not isinstance(data, dict):
            return data
        if data.get("kind", "nas") != "compress":
            for name in ("model", "target"):
                if data.get(name) is not None:
                    raise ValueError(f"'{name}' is only for jobs of kind 'compress'")
            return data
        if data.get("model") is None:
            raise ValueError("a job of kind 'compress' needs 'model'")
        data = dict(data)
        space = dict(data.get("space") or {"name": "compression"})
        evaluator = dict(data.get("evaluator") or {"name": "compress"})
        data.setdefault("agent", {"name": "amc"})
        for comp, fields in ((space, ("model", "target")), (evaluator, ("model",))):
            if comp.get("name") not in ("compression", "compress"):
                continue
            options = dict(comp.get("options") or {})
            for f in fields:
                if data.get(f) is not None:
                    options.setdefault(f, data[f])
            comp["options"] = options
        data["space"], data["evaluator"] = space, evaluator
        return data

    @field_validator("space")
    @classmethod
    def _space(cls, v: Component) -> Component:
        return _check_component(SPACES, v)

    @field_validator("agent")
    @classmethod
    def _agent(cls, v: Component) -> Component:
        return _check_component(AGENTS, v)

    @field_validator("evaluator")
    @classmethod
    def _evaluator(cls, v: Component) -> Component:
        return _check_component(EVALUATORS, v)

    @field_validator("profilers")
    @classmethod
    def _profilers(cls, v: list[Component]) -> list[Component]:
        for i, p in enumerate(v):
            try:
                _check_component(PROFILERS, p)
            except ValueError as err:
                raise ValueError(f"profilers[{i}]: {err}") from None
        return v

    @model_validator(mode="after")
    def _agent_space(self) -> JobSpec:
        from agents.registry import requires_target_space

        if requires_target_space(self.agent.name) and not (
                self.space.name == "compression" and self.space.options.get("target")):
            raise ValueError(f"agent.name: {self.agent.name!r} needs a compression job with a "
                             "target (kind 'compress', 'target': {metric, ratio})")
        return self

    @model_validator(mode="after")
    def _objectives(self) -> JobSpec:
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError(f"objectives repeat a metric: {names}")
        if len(names) == 1 and self.objectives[0].reference is not None:
            raise ValueError("objectives[0].reference: a hypervolume reference needs two or "
                             "more objectives")
        return self

    @property
    def max_proposals(self) -> int:
        return self.budget.max_proposals or PROPOSALS_PER_EVALUATION * self.budget.evaluations


_FIELD_PREFIX = re.compile(r"^([a-z_]+(?:\.[a-z_]+)+): ")


class SpecError(ValueError):
    """A job spec that cannot run; ``field`` is the dotted path of the field at fault."""

    def __init__(self, field: str, message: str, valid: list[str] | None = None) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message
        self.valid = valid


def field_path(loc: Any) -> str:
    """A pydantic location as users write it: ``constraints[0].max``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def spec_errors(err: ValidationError) -> list[SpecError]:
    """Turn pydantic's errors into (field, message) pairs users can read."""
    out = []
    for e in err.errors():
        loc = field_path(e["loc"])
        msg = str(e["msg"]).removeprefix("Value error, ")
        if isinstance((e.get("ctx") or {}).get("error"), UnknownName):
            loc = f"{loc}.name"
        if not loc and (m := _FIELD_PREFIX.match(msg)):  # a whole-spec check naming a field
            loc, msg = m.group(1), msg[m.end():]
        out.append(SpecError(loc, msg))
    return out


def parse_spec(data: Any) -> JobSpec:
    """Validate a decoded JSON document; raises ``SpecError`` for the first problem."""
    if not isinstance(data, dict):
        raise SpecError("", f"a job spec is a JSON object, got {type(data).__name__}")
    try:
        return JobSpec.model_validate(data)
    except ValidationError as err:
        raise spec_errors(err)[0] from None


def load_spec(path: str | Path) -> JobSpec:
    """Read and validate a job file; errors name the file and the field."""
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as err:
        raise SpecError("", f"cannot read job file {path}: {err.strerror}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise SpecError("", f"{path} is not valid JSON: {err}") from None
    return parse_spec(data)
