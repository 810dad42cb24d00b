"""The remote profiler in the loop, without the service: a batch's candidates are queued at
once (``begin_batch``), results come back through the link, a failed or timed-out
measurement fails its trial only, and a job without a link fails at the door.

The link here is an in-memory stand-in for the service's queue (the service's own link is
tested in tests/service/test_devices*.py); what is under test is the profiler and the loop."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from search.base import ProfileFailed
from search.loop import SearchLoop
from search.profilers.remote import DeviceLink, Ticket
from search.sinks import MemorySink
from search.spec import JobSpec, SpecError
from tests.models.conftest import tiny_space_options


class MemoryLink(DeviceLink):
    """Answers each submission when waited for; fails the models listed in ``fail``."""

    def __init__(self, fail_every: int = 0) -> None:
        self.events: list[str] = []  # "submit" / "wait", in order
        self.fail_every = fail_every
        self.tables: dict[str, Any] = {}

    def check(self, device: str) -> None:
        if device != "loop":
            raise ValueError(f"device {device!r} is not registered")

    def submit(self, device: str, models: Sequence[bytes], options: dict[str, Any]) -> Ticket:
        assert all(m.startswith(b"\x08") for m in models)  # ONNX protobuf: ir_version first
        self.events.append("submit")
        return Ticket(self.events.count("submit"))

    def wait(self, ticket: Ticket, timeout_s: float) -> dict[str, Any]:
        self.events.append("wait")
        if self.fail_every and ticket.id % self.fail_every == 0:
            raise ProfileFailed(f"no result within {timeout_s:g} s")
        ms = float(ticket.id)
        return {"models": [{"min_ms": ms, "median_ms": ms, "spread": 0.0, "fastest_ms": ms,
                            "energy_mj": 2 * ms}], "device": {"cpu": "memory"}}

    def load_table(self, device: str, key: str) -> dict[str, Any] | None:
        return self.tables.get(key)

    def save_table(self, device: str, key: str, table: dict[str, Any]) -> None:
        self.tables[key] = table


class LinkSink(MemorySink):
    def __init__(self, link: DeviceLink | None) -> None:
        super().__init__()
        self.link = link

    def device_link(self) -> DeviceLink | None:
        return self.link


def spec(profiler: str = "remote:loop", budget: int = 6) -> JobSpec:
    import tests.service.device_plugins  # noqa: F401 - registers svc-params

    return JobSpec.model_validate({
        "name": "remote-loop", "space": {"name": "mnasnet", "options": tiny_space_options()},
        "agent": {"name": "random"}, "evaluator": {"name": "svc-params"},
        "profilers": [{"name": profiler, "options": {"input_shape": [1, 16, 16],
                                                     "timeout_s": 5}}],
        "objectives": [{"metric": "params_k", "direction": "min"},
                       {"metric": "loop_latency_ms", "direction": "min"}],
        "budget": {"evaluations": budget}, "executor": {"name": "local", "batch_size": 3},
        "seed": 3})


def test_a_batch_is_queued_at_once_and_metrics_come_back() -> None:
    link = MemoryLink()
    sink = LinkSink(link)
    loop = SearchLoop(spec(), sink)
    summary = loop.run()
    assert summary.status == "succeeded"
    assert summary.evaluations == 6
    # each batch of three is queued before the loop waits for its first result
    assert link.events == ["submit"] * 3 + ["wait"] * 3 + ["submit"] * 3 + ["wait"] * 3
    trials = [t for t in sink.trials if not t.cached]
    assert {t.metrics["loop_latency_ms"] for t in trials} == {1.0, 2.0, 3.0, 4.0, 5.0, 6.0}
    assert all(t.metrics["loop_energy_mj"] == 2 * t.metrics["loop_latency_ms"] for t in trials)
    assert loop.profilers[0].describe()["device"] == {"cpu": "memory"}


def test_the_device_measures_while_the_executor_trains() -> None:
    """Measurements are queued before the batch's evaluations and collected after them, so
    a device works while the executor trains; a constraint on a device metric then ends the
    trial after its evaluation (pruned, with the evaluation's metrics kept)."""
    link = MemoryLink()
    sink = LinkSink(link)
    job = spec(budget=3).model_dump()
    job["constraints"] = [{"metric": "loop_latency_ms", "max": 2.5, "reject": True}]
    loop = SearchLoop(JobSpec.model_validate(job), sink)
    evaluate = loop.evaluator.evaluate

    def logged(*args: Any, **kwargs: Any) -> Any:
        link.events.append("evaluate")
        return evaluate(*args, **kwargs)

    loop.evaluator.evaluate = logged  # type: ignore[method-assign]
    summary = loop.run()
    assert summary.status == "succeeded"
    assert link.events == ["submit"] * 3 + ["evaluate"] * 3 + ["wait"] * 3
    by_latency = {t.metrics["loop_latency_ms"]: t for t in sink.trials}
    assert by_latency[3.0].state.value == "pruned"
    assert "constraint violated" in by_latency[3.0].error
    assert "params_k" in by_latency[3.0].metrics  # evaluated before the device answered
    assert by_latency[1.0].state.value == by_latency[2.0].state.value == "complete"


def test_a_failed_measurement_fails_its_trial_not_the_job() -> None:
    link = MemoryLink(fail_every=2)
    sink = LinkSink(link)
    summary = SearchLoop(spec(budget=6), sink).run()
    assert summary.status == "succeeded"
    failed = [t for t in sink.trials if t.state.value == "failed"]
    assert len(failed) == 3 and all("remote:loop: no result within 5 s" in t.error
                                    for t in failed)
    assert all("loop_latency_ms" in t.metrics for t in sink.trials if t.state.value ==
               "complete")


def test_without_a_link_or_device_the_job_fails_at_the_door() -> None:
    with pytest.raises(SpecError, match=r"profilers\[0\].*submit this job to a LightSearch"):
        SearchLoop(spec(), LinkSink(None))
    with pytest.raises(SpecError, match=r"profilers\[0\].*'rpi4' is not registered"):
        SearchLoop(spec("remote:rpi4"), LinkSink(MemoryLink()))
