"""A scripted job for the one-definition tests: an agent that draws from a small pool of
NAS-Bench-201 cells (so repeats happen) and an evaluator whose outcome per cell is given in
the spec (complete, failed, NaN, infinite, missing metric, pruned), registered only in tests.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pydantic import Field

from agents.base import Proposal
from agents.random_search import RandomSearch
from search.base import Evaluation, Evaluator
from spaces.base import Architecture, Space
from spaces.registry import Entry, NoOptions

KINDS = ("ok", "fail", "nan_acc", "nan_lat", "inf_acc", "missing", "pruned")


class PoolOptions(NoOptions):
    pool: list[dict[str, str]] = Field(..., min_length=1)


class PoolAgent(RandomSearch):
    """Random draws from ``pool`` (with repeats)."""

    name = "pool"

    def __init__(self, space: Space, *, pool: list[dict[str, str]], **kwargs: Any) -> None:
        super().__init__(space, **kwargs)
        self.pool = pool

    def ask(self) -> Proposal:
        trial_id = self._next_id
        self._next_id += 1
        self._pending.add(trial_id)
        return Proposal(trial_id, dict(self.pool[int(self._rng.integers(len(self.pool)))]), {})


class ScriptOptions(NoOptions):
    outcomes: dict[str, dict[str, Any]] = Field(default_factory=dict)


class ScriptedEvaluator(Evaluator):
    """``outcomes[arch key] = {"kind", "acc", "lat", "mem"}`` (see ``KINDS``)."""

    name = "scripted"

    def __init__(self, outcomes: dict[str, dict[str, Any]]) -> None:
        self.outcomes = outcomes

    def signal_metrics(self) -> list[str]:
        return ["acc", "lat", "mem"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        o = self.outcomes[space.key(arch)]
        kind = o["kind"]
        if kind == "fail":
            raise RuntimeError("scripted failure")
        metrics = {"acc": float(o["acc"]), "lat": float(o["lat"]), "mem": float(o["mem"])}
        if kind == "nan_acc":
            metrics["acc"] = math.nan
        elif kind == "nan_lat":
            metrics["lat"] = math.nan
        elif kind == "inf_acc":
            metrics["acc"] = math.inf
        elif kind == "missing":
            del metrics["acc"]
        return Evaluation(metrics, recorded={"pruned": True} if kind == "pruned" else {})


def register() -> None:
    from agents.registry import AGENTS
    from search.registry import EVALUATORS

    if "pool" not in AGENTS:
        AGENTS.register(Entry("pool", "tests.trial_helpers:PoolAgent", PoolOptions))
    if "scripted" not in EVALUATORS:
        EVALUATORS.register(Entry("scripted", "tests.trial_helpers:ScriptedEvaluator",
                                  ScriptOptions))


def scripted_spec(outcomes: list[dict[str, Any]], *, seed: int = 0, batch_size: int = 3,
                  reference: list[float] | None = None) -> dict[str, Any]:
    """A two-objective job (acc max, lat min; constraint mem <= 7) over one cell per
    outcome, budget: every cell, proposals: three per cell."""
    from spaces.registry import SPACES

    space = SPACES.create("nb201")
    rng = np.random.default_rng(12345)
    pool, by_key = [], {}
    while len(pool) < len(outcomes):
        arch = space.sample(rng)
        key = space.key(arch)
        if key not in by_key:
            by_key[key] = outcomes[len(pool)]
            pool.append(arch)
    objectives = [{"metric": "acc", "direction": "max"}, {"metric": "lat", "direction": "min"}]
    if reference is not None:
        for o, r in zip(objectives, reference, strict=True):
            o["reference"] = r
    return {
        "name": "scripted", "space": {"name": "nb201"},
        "agent": {"name": "pool", "options": {"pool": pool}},
        "evaluator": {"name": "scripted", "options": {"outcomes": by_key}},
        "objectives": objectives,
        "constraints": [{"metric": "mem", "max": 7}],
        "budget": {"evaluations": len(outcomes), "max_proposals": 3 * len(outcomes),
                   "max_failures": 10_000},
        "executor": {"name": "local", "batch_size": batch_size}, "seed": seed,
    }
