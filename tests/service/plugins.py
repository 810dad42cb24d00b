"""Evaluators for the service tests, registered through ``LIGHTSEARCH_PLUGINS``.

Importing this module (the API and the worker do so for each name in the setting) adds:
``svc-slow`` (NB201 look-ups that take ``delay_s``, failing on chosen ops) and ``svc-fail``
(always raises). They are importable by Ray workers because the repository is on their path.
"""

from __future__ import annotations

import time

from pydantic import Field

from search.base import Evaluation, Evaluator
from search.evaluators.tabular import TabularEvaluator
from search.registry import EVALUATORS
from spaces.base import Architecture, Space
from spaces.registry import Entry, NoOptions


class SlowOptions(NoOptions):
    delay_s: float = Field(0.05, ge=0, le=60)
    fail_ops: list[str] = Field(default_factory=list)


class SlowEvaluator(Evaluator):
    """Table look-ups that take a while, like a short training run."""

    name = "svc-slow"

    def __init__(self, delay_s: float = 0.05, fail_ops: list[str] | None = None) -> None:
        self.delay_s = delay_s
        self.fail_ops = list(fail_ops or [])
        self.inner = TabularEvaluator()

    def signal_metrics(self) -> list[str]:
        return ["val_acc"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        time.sleep(self.delay_s)
        if arch["edge_0_1"] in self.fail_ops:
            raise RuntimeError(f"simulated training crash on {arch['edge_0_1']}")
        return self.inner.evaluate(arch, space, seed=seed)


class FailingEvaluator(Evaluator):
    name = "svc-fail"

    def signal_metrics(self) -> list[str]:
        return ["val_acc"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        raise RuntimeError("CUDA out of memory (simulated)")


for _entry in (
    Entry("svc-slow", "tests.service.plugins:SlowEvaluator", SlowOptions,
          "Test only: slow NB201 look-ups."),
    Entry("svc-fail", "tests.service.plugins:FailingEvaluator", NoOptions,
          "Test only: every evaluation raises."),
):
    if _entry.name not in EVALUATORS:
        EVALUATORS.register(_entry)
