"""Protocols of the parts the search loop composes: profilers, evaluators, sinks.

Profilers are cheap (table look-ups, FLOPs counts, latency predictors) and run in the loop
process before evaluation, so a candidate can be rejected on a budget before it is trained.
Evaluators are expensive and run wherever the executor puts them (in-process or on Ray); they
must be picklable and cheap to construct, loading heavy state lazily on first use.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from spaces.base import Architecture, Space

if TYPE_CHECKING:
    from search.trials import KnownValues


class MetricNotMeasured(LookupError):
    """A device or table has no measurement for this architecture (blank or -1): never 0."""


class ProfileFailed(RuntimeError):
    """This one profile failed (a remote device timed out): the trial fails, the job goes on."""


@dataclass
class Evaluation:
    """What an evaluator returns.

    ``metrics`` may reach the agent (the search signal); ``recorded`` is kept in the results
    only (held-out test accuracy, training curves) and never reaches the agent.
    """

    metrics: dict[str, float]
    recorded: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)  # name -> file path


class Profiler(ABC):
    """Measures or predicts the cost of an architecture on a device."""

    name: str = "profiler"
    #: True for a profiler whose figures are produced elsewhere (a remote device): the loop
    #: collects them after the batch's evaluations, so the device measures while the
    #: executor trains. Its metrics then end a trial only after its evaluation.
    deferred: bool = False

    @abstractmethod
    def metrics(self) -> list[str]:
        """Names of the metrics ``profile`` returns (when measured)."""

    @abstractmethod
    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        """Metrics for one architecture; raise ``MetricNotMeasured`` where there is none."""

    def describe(self) -> dict[str, Any]:
        """Provenance recorded with results and model cards (device, units, version)."""
        return {"name": self.name, "metrics": self.metrics()}

    def known_values(self, space: Space) -> KnownValues | None:
        """Every value of its metrics over the whole space, when a table holds them (fixes a
        job's hypervolume reference point and its true front); None otherwise."""
        return None

    def attach(self, sink: Any) -> None:
        """Called once by the loop with its result sink, before the first profile: a
        profiler that needs what the sink offers (``device_link``) takes it here."""

    def begin_batch(self, archs: list[Architecture], space: Space) -> None:
        """Called with a batch's new architectures before they are profiled one by one: a
        profiler whose work runs elsewhere (remote devices) can queue it all at once."""


class Evaluator(ABC):
    """Scores an architecture on the task (table look-up, proxy training, fine-tuning)."""

    name: str = "evaluator"
    #: Capability: ``"module:function"`` that rebuilds a trial's model and writes its
    #: deployable files, ``(spec, trial, out_dir, *, name=None, measure_latency=True) ->
    #: search.export.ExportResult``; ``None`` for evaluators with no model to ship (table
    #: look-ups). The finalize step and ``lightsearch export`` read it from the class.
    model_exporter: ClassVar[str | None] = None

    @abstractmethod
    def signal_metrics(self) -> list[str]:
        """Names of the metrics the agent may see."""

    @abstractmethod
    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        """Evaluate one architecture; raise to mark the trial failed (the job goes on)."""

    def known_values(self, space: Space) -> KnownValues | None:
        """Every value of its signal metrics over the whole space, when a table holds them;
        None otherwise (see ``Profiler.known_values``)."""
        return None

    def close(self) -> None:
        """Release what the job held (e.g. a shared early-stopping actor) when it ends."""


def is_measured(value: Any) -> bool:
    """Blank (NaN/None) and -1 mean 'not measured' in the device tables."""
    if value is None:
        return False
    try:
        number = float(value)
    except (TypeError, ValueError):
        return False
    return not (math.isnan(number) or number == -1.0)


def clean_metrics(values: Mapping[str, Any]) -> dict[str, float]:
    return {k: float(v) for k, v in values.items()}
