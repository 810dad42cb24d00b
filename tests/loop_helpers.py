"""Evaluators and agents that exercise the loop's edge cases (registered only in tests)."""

from __future__ import annotations

import os
import time
from typing import Any

from agents.base import TrialResult
from agents.random_search import RandomSearch
from search.base import Evaluation, Evaluator
from search.evaluators.tabular import TabularEvaluator
from spaces.base import Architecture, Space
from spaces.registry import Entry, NoOptions


class FlakyOptions(NoOptions):
    fail_ops: list[str] = ["avg_pool_3x3"]
    die: bool = False
    delay_s: float = 0.0


class FlakyEvaluator(Evaluator):
    """NB201 look-ups that raise for cells on a chosen op's edge 0->1 (or kill the worker),
    after ``delay_s`` (a trial that takes a while)."""

    name = "flaky"

    def __init__(self, fail_ops: list[str], die: bool = False, delay_s: float = 0.0) -> None:
        self.fail_ops = fail_ops
        self.die = die
        self.delay_s = delay_s
        self.inner = TabularEvaluator()

    def signal_metrics(self) -> list[str]:
        return ["val_acc"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        time.sleep(self.delay_s)
        if arch["edge_0_1"] in self.fail_ops:
            if self.die:
                os._exit(1)  # a worker that dies mid-trial
            raise RuntimeError(f"simulated training crash on {arch['edge_0_1']}")
        return self.inner.evaluate(arch, space, seed=seed)


class SpyAgent(RandomSearch):
    """Random search that remembers every result it was told."""

    name = "spy"
    told: list[TrialResult] = []

    def tell(self, trial_id: int, result: TrialResult) -> None:
        type(self).told.append(result)
        super().tell(trial_id, result)


class RepeaterAgent(RandomSearch):
    """Random search over only its first three proposals, then those again and again: an
    agent stuck on evaluated architectures."""

    name = "repeater"

    def ask(self):  # noqa: ANN201 - a Proposal
        proposal = super().ask()
        if proposal.trial_id >= 3:
            proposal.arch = self._first[proposal.trial_id % 3]
        else:
            self.__dict__.setdefault("_first", []).append(proposal.arch)
        return proposal


class EchoAgent(RandomSearch):
    """Random search whose every third proposal repeats an earlier one: the loop must answer
    those from its cache. (The built-in samplers now answer their own repeats.)"""

    name = "echo"

    def ask(self):  # noqa: ANN201 - a Proposal
        proposal = super().ask()
        seen: list = self.__dict__.setdefault("_seen", [])
        if proposal.trial_id % 3 == 2 and seen:
            proposal.arch = seen[int(self._rng.integers(len(seen)))]
        else:
            seen.append(proposal.arch)
        return proposal

    def state_dict(self) -> dict[str, Any]:  # its memory too: a resumed job repeats the same
        return {**super().state_dict(), "seen": [dict(a) for a in self.__dict__.get("_seen", [])]}

    def load_state_dict(self, state: Any) -> None:
        super().load_state_dict(state)
        self._seen = [dict(a) for a in state.get("seen", [])]


def register_test_components() -> None:
    from agents.registry import AGENTS, RandomOptions
    from search.registry import EVALUATORS

    if "flaky" not in EVALUATORS:
        EVALUATORS.register(Entry("flaky", "tests.loop_helpers:FlakyEvaluator", FlakyOptions))
    if "spy" not in AGENTS:
        AGENTS.register(Entry("spy", "tests.loop_helpers:SpyAgent", RandomOptions))
    if "repeater" not in AGENTS:
        AGENTS.register(Entry("repeater", "tests.loop_helpers:RepeaterAgent", RandomOptions))
    if "echo" not in AGENTS:
        AGENTS.register(Entry("echo", "tests.loop_helpers:EchoAgent", RandomOptions))


def job(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "t", "agent": {"name": "random"},
        "evaluator": {"name": "tabular", "options": {"signal": "val_acc"}},
        "budget": {"evaluations": 30}, "seed": 0,
    }
    base.update(overrides)
    return base
