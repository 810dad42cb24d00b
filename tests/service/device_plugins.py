"""An evaluator for the remote-device tests, registered through ``LIGHTSEARCH_PLUGINS``:
``svc-params`` scores a built model by its parameter count (real, and cheap)."""

from __future__ import annotations

from search.base import Evaluation, Evaluator
from search.registry import EVALUATORS
from spaces.base import Architecture, Space
from spaces.registry import Entry, NoOptions


class ParamsEvaluator(Evaluator):
    name = "svc-params"

    def signal_metrics(self) -> list[str]:
        return ["params_k"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        model = space.build_model(arch, (1, 28, 28), 10)  # type: ignore[attr-defined]
        return Evaluation({"params_k": sum(p.numel() for p in model.parameters()) / 1e3})


if "svc-params" not in EVALUATORS:
    EVALUATORS.register(Entry("svc-params", "tests.service.device_plugins:ParamsEvaluator",
                              NoOptions, "Test only: parameters of the built model."))
