"""Where results leave the search loop: the service stores them, the CLI writes JSON.

``search/`` never imports ``service/``; the service passes its own sink (SQL rows, agent
checkpoints) into the same loop the CLI and the tests drive with the in-memory sink.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from agents.base import TrialState
from search.trials import HvReference
from spaces.base import Architecture


@dataclass
class TrialRecord:
    """One trial as it is stored: the proposal, every metric, and how it ended.

    ``metrics`` are those the agent saw; ``recorded`` are kept for the user only (e.g.
    ``test_acc``). ``cached`` trials were answered from the job's cache and cost no budget.
    """

    trial_id: int
    arch: Architecture
    arch_key: str
    state: TrialState
    reward: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    recorded: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    cached: bool = False
    evaluation_index: int | None = None  # 1-based count of distinct evaluations so far
    duration_s: float = 0.0
    node: str | None = None  # where it ran (Ray node id or 'local')
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["state"] = self.state.value
        return d


class ResultSink:
    """Receives the loop's events. Every hook is optional (a no-op by default)."""

    def on_start(self, spec: dict[str, Any]) -> None:
        """The job starts (or resumes)."""

    def on_trial(self, record: TrialRecord) -> None:
        """A trial ended (complete, failed, invalid, pruned, or answered from cache)."""

    def on_reference(self, reference: HvReference) -> None:
        """The job's hypervolume reference point is fixed (at the start, or after the first
        batch with a counting trial); on a resume it is announced again before any trial."""

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        """The loop state after an agent update, in step with the trials told so far."""

    def on_end(self, status: str, reason: str | None = None) -> None:
        """The job ended: 'succeeded', 'failed', 'cancelled' or 'exhausted' (stopped short
        of the budget: the agent kept proposing architectures already evaluated)."""

    def device_link(self) -> Any:
        """Remote devices the job may measure on (``search.profilers.remote.DeviceLink``);
        None where there are none (the service's sink gives its device queue)."""
        return None

    def should_stop(self) -> bool:
        """Polled between batches: True ends the job 'cancelled' (e.g. a user's cancel)."""
        return False


class MemorySink(ResultSink):
    """Keeps everything in memory: for tests, benchmarks and the CLI."""

    def __init__(self) -> None:
        self.trials: list[TrialRecord] = []
        self.checkpoints: int = 0
        self.last_checkpoint: dict[str, Any] | None = None
        self.status: str | None = None
        self.reason: str | None = None
        self.reference: HvReference | None = None

    def on_trial(self, record: TrialRecord) -> None:
        self.trials.append(record)

    def on_reference(self, reference: HvReference) -> None:
        self.reference = reference

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        self.checkpoints += 1
        self.last_checkpoint = state

    def on_end(self, status: str, reason: str | None = None) -> None:
        self.status, self.reason = status, reason


class FanOutSink(ResultSink):
    """Sends every event to several sinks (e.g. SQL rows and a progress bar)."""

    def __init__(self, *sinks: ResultSink) -> None:
        self.sinks = sinks

    def on_start(self, spec: dict[str, Any]) -> None:
        for s in self.sinks:
            s.on_start(spec)

    def on_trial(self, record: TrialRecord) -> None:
        for s in self.sinks:
            s.on_trial(record)

    def on_reference(self, reference: HvReference) -> None:
        for s in self.sinks:
            s.on_reference(reference)

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        for s in self.sinks:
            s.on_checkpoint(state)

    def device_link(self) -> Any:
        return next((link for s in self.sinks if (link := s.device_link()) is not None), None)

    def on_end(self, status: str, reason: str | None = None) -> None:
        for s in self.sinks:
            s.on_end(status, reason)

    def should_stop(self) -> bool:
        return any(s.should_stop() for s in self.sinks)
