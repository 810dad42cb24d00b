"""The one interface every agent implements: ask for a proposal, tell its result.

Life cycle of a trial, as the search loop drives it::

    proposal = agent.ask()            # any number may be in flight at once
    ... profilers and evaluator score proposal.arch (elsewhere, maybe on Ray) ...
    agent.tell(proposal.trial_id, TrialResult(...))

The loop may answer a proposal from its cache (an architecture already evaluated); the agent
is told the same way and cannot tell the difference. ``state_dict``/``load_state_dict`` capture
everything needed to continue exactly where the agent stood (RNG state, pending proposals,
learned weights): a job resumes after a crash from the last checkpoint.
"""

from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from spaces.base import Architecture, Space

Direction = Literal["max", "min"]
#: An agent that learns from a reward of its own (e.g. MnasNet's Pareto mode, with a latency
#: target per proposal) describes it in ``Proposal.info["reward"]`` as a job reward spec; the
#: search loop computes it with the job's reward functions and records it, and tells it back,
#: as this metric. Agents never import the search package.
AGENT_REWARD = "agent_reward"


class TrialState(enum.StrEnum):
    """Failure is a state, not an exception path."""

    RUNNING = "running"
    COMPLETE = "complete"
    FAILED = "failed"  # the evaluation raised or its worker died
    INVALID = "invalid"  # the architecture cannot be built or a metric was not measured
    PRUNED = "pruned"  # stopped early by a scheduler or rejected by a hard constraint


@dataclass(frozen=True)
class Objective:
    """A metric the job optimizes, with its direction."""

    metric: str
    direction: Direction = "max"

    def __post_init__(self) -> None:
        if self.direction not in ("max", "min"):
            raise ValueError(f"direction must be 'max' or 'min', got {self.direction!r}")

    def better(self, a: float, b: float) -> bool:
        return a > b if self.direction == "max" else a < b


@dataclass
class Proposal:
    """What ``ask`` returns: an architecture to evaluate and the agent's note about it.

    ``info`` is recorded with the trial (e.g. the latency target a Pareto-aware controller
    drew for this proposal); the loop interprets one key only, ``reward`` (see
    ``AGENT_REWARD``).
    """

    trial_id: int
    arch: Architecture
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrialResult:
    """What ``tell`` receives.

    ``reward`` is the job's scalar reward (None unless COMPLETE). ``metrics`` holds only what
    the agent may see: the search signal and profiler outputs, never held-out test figures.
    """

    state: TrialState
    reward: float | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.state is TrialState.COMPLETE and self.reward is not None


class Agent(ABC):
    """Base class of search agents (baselines, RL controllers, library samplers).

    Subclasses take their options as keyword arguments, validate them in ``__init__`` and
    raise ``ValueError`` naming the option at fault.
    """

    name: ClassVar[str] = "agent"
    #: True when the agent handles continuous decisions (e.g. AMC's DDPG).
    supports_continuous: ClassVar[bool] = False
    #: True when the agent optimizes several objectives itself rather than the scalar reward.
    multi_objective: ClassVar[bool] = False

    def __init__(
        self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0
    ) -> None:
        self.space = space
        self.objectives = tuple(objectives)
        self.seed = int(seed)

    @abstractmethod
    def ask(self) -> Proposal:
        """Propose the next architecture. May be called again before earlier tells."""

    @abstractmethod
    def tell(self, trial_id: int, result: TrialResult) -> None:
        """Report the result of a proposal made by ``ask``; each trial is told once."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume (picklable; may hold numpy arrays or tensors)."""

    @abstractmethod
    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a state produced by ``state_dict`` of an agent built with the same options."""

    # ---- optional hooks (no-ops by default) ---------------------------------------------
    def close(self) -> None:
        """Release resources (library studies, threads) when the job ends."""


def welford_add(stats: Sequence[float], value: float) -> list[float]:
    """Running ``[count, mean, M2]`` of rewards with ``value`` added (Welford's update): the
    agents that standardize rewards by everything told so far keep it in their checkpoints."""
    n, mean, m2 = stats
    n += 1
    delta = value - mean
    mean += delta / n
    return [n, mean, m2 + delta * (value - mean)]
