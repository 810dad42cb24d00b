"""Shared pieces of the agent tests: small synthetic spaces, deterministic rewards, a driver.

The driver plays the search loop's part (ask a batch, tell it back in a different order, with
some trials failing) without the loop, so agent tests do not depend on ``search/``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from agents.registry import AGENTS
from spaces.base import Architecture, Categorical, Continuous, Decision, Space

# Small options so that every agent updates several times within a few dozen trials.
FAST_OPTIONS: dict[str, dict[str, Any]] = {
    "evolution": {"population_size": 6, "sample_size": 2},
    "tpe": {"n_startup_trials": 5},
    "nsga2": {"population_size": 6},
    "mnas": {"batch_size": 4},
    "reinforce": {"batch_size": 4},
    "amc": {"warmup": 4, "hidden1": 32, "hidden2": 32, "batch_size": 16},
    "rllib": {"episodes_per_update": 4, "model": {"fcnet_hiddens": [32]}},
}

# Named variants of a registered agent, run by the contract suites as agents of their own:
# name -> (registry name, options). "amc" itself is the default variant ("budget", penalty).
AGENT_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "amc:paper": ("amc", {"variant": "paper"}),
    "amc:budget_clip": ("amc", {"variant": "budget", "constraint": "clip"}),
    "amc:largest_first": ("amc", {"variant": "budget", "order": "largest_first"}),
}


def registry_name(name: str) -> str:
    """The registry entry behind an agent or variant name."""
    return AGENT_VARIANTS.get(name, (name, {}))[0]


TWO_OBJECTIVES = (Objective("acc", "max"), Objective("latency", "min"))


class ToySpace(Space):
    """Categorical decisions with mixed JSON-able choices, one of them a single choice."""

    name = "toy"

    def __init__(self) -> None:
        self._decisions: tuple[Decision, ...] = (
            Categorical("op", ("conv", "pool", "skip")),
            Categorical("width", (16, 32, 64, 128)),
            Categorical("fixed", (7,)),
            Categorical("flag", (True, False)),
            Categorical("kernel", (1, 3, 5, 7, 9)),
        )

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions


class MixedSpace(ToySpace):
    """ToySpace plus continuous decisions (compression ratios)."""

    name = "mixed"

    def __init__(self) -> None:
        super().__init__()
        self._decisions = self._decisions + (
            Continuous("ratio", 0.0, 0.9),
            Continuous("bits", 2.0, 8.0),
        )


class MatchSpace(Space):
    """``n`` decisions x ``k`` choices: the toy problem with a hidden target."""

    name = "match"

    def __init__(self, n: int = 6, k: int = 5) -> None:
        self._decisions = tuple(Categorical(f"d{i}", tuple(range(k))) for i in range(n))

    @property
    def decisions(self) -> Sequence[Decision]:
        return self._decisions


def synthetic_reward(space: Space, arch: Architecture) -> float:
    """Deterministic, arch-dependent reward: a weighted sum of the encoded decisions."""
    return float(sum((i + 1) * v for i, v in enumerate(space.encode(arch))))


def contract_result(space: Space, proposal: Proposal, count: int) -> TrialResult:
    """The ``count``-th result of a run: mostly COMPLETE, some FAILED/INVALID/PRUNED."""
    reward = synthetic_reward(space, proposal.arch)
    metrics = {"acc": reward, "latency": 1.0 + sum(abs(v) for v in space.encode(proposal.arch))}
    if count % 5 == 4:
        return TrialResult(TrialState.FAILED, error="worker died")
    if count % 7 == 6:
        return TrialResult(TrialState.INVALID, error="metric not measured")
    if count % 11 == 10:
        return TrialResult(TrialState.PRUNED, metrics={"latency": metrics["latency"]})
    return TrialResult(TrialState.COMPLETE, reward=reward, metrics=metrics)


def make_agent(
    name: str,
    space: Space,
    seed: int = 0,
    objectives: Sequence[Objective] = (),
    options: Mapping[str, Any] | None = None,
    fast: bool = True,
) -> Agent:
    """An agent from the registry (or a variant of ``AGENT_VARIANTS``); ``fast`` applies
    ``FAST_OPTIONS`` under the variant's options and ``options``."""
    name, variant = AGENT_VARIANTS.get(name, (name, {}))
    opts = dict(FAST_OPTIONS.get(name, {})) if fast else {}
    opts.update(variant)
    opts.update(options or {})
    return AGENTS.create(name, space, options=opts, objectives=objectives, seed=seed)


def drive(
    agent: Agent,
    n_trials: int,
    result_fn: Callable[[Proposal, int], TrialResult],
    batch_size: int = 3,
    start: int = 0,
) -> list[Proposal]:
    """Ask ``batch_size`` at once, tell them back in reverse order; returns the proposals."""
    proposals: list[Proposal] = []
    count = start
    while len(proposals) < n_trials:
        batch = [agent.ask() for _ in range(min(batch_size, n_trials - len(proposals)))]
        proposals.extend(batch)
        for p in reversed(batch):
            agent.tell(p.trial_id, result_fn(p, count))
            count += 1
    return proposals


def best_reward(agent: Agent, reward_fn: Callable[[Architecture], float], budget: int,
                batch_size: int = 1) -> float:
    """Best reward seen within ``budget`` trials (every trial COMPLETE)."""
    rewards: list[float] = []

    def result(p: Proposal, _: int) -> TrialResult:
        rewards.append(reward_fn(p.arch))
        return TrialResult(TrialState.COMPLETE, reward=rewards[-1])

    drive(agent, budget, result, batch_size=batch_size)
    return max(rewards)
