"""No silent stall: agents reach their budget, a job short of it ends 'exhausted', the loop
warns of repeats; Pareto mode's reward is computed by the loop and recorded by its name."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from agents.base import AGENT_REWARD
from search.loop import REPEAT_WINDOW, SearchLoop
from search.objectives import mnas_reward
from search.sinks import MemorySink
from search.spec import parse_spec
from tests.loop_helpers import job, register_test_components

register_test_components()
README_EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "nb201_val_acc.json"


def run(spec: dict) -> tuple[SearchLoop, MemorySink]:
    sink = MemorySink()
    loop = SearchLoop(parse_spec(spec), sink)
    loop.summary = loop.run()
    return loop, sink


def test_readme_example_reaches_its_budget_with_the_default_cap():
    """examples/nb201_val_acc.json (mnas, budget 200) once stalled at 105 evaluations."""
    spec = json.loads(README_EXAMPLE.read_text())
    loop, sink = run(spec)
    assert loop.summary.status == "succeeded", loop.summary.reason
    assert loop.summary.evaluations == spec["budget"]["evaluations"] == 200
    # Restricted sampling: every proposal is a new architecture.
    assert loop.summary.proposals == 200
    assert sum(t.cached for t in sink.trials) == 0


def test_a_job_short_of_its_budget_ends_exhausted_and_the_loop_warns(caplog):
    spec = job(agent={"name": "repeater"}, budget={"evaluations": 10, "max_proposals": 80})
    with caplog.at_level(logging.WARNING, logger="search.loop"):
        loop, sink = run(spec)
    assert loop.summary.status == "exhausted"
    assert loop.summary.evaluations == 3 and loop.summary.proposals == 80
    assert loop.summary.reason.startswith("3 of 10 evaluations reached")
    assert sink.status == "exhausted" and sink.reason == loop.summary.reason
    warned = [r for r in caplog.records if "repeated evaluated architectures" in r.message]
    assert len(warned) == 1  # once, not once per batch
    assert loop.repeat_rate > 0.9 and len(loop._recent) == REPEAT_WINDOW


def two_objective_job(**agent_options) -> dict:
    return job(agent={"name": "mnas", "options": {"batch_size": 4, **agent_options}},
               profilers=[{"name": "lut:pixel3"}],
               objectives=[{"metric": "val_acc", "direction": "max"},
                           {"metric": "pixel3_latency", "direction": "min"}],
               reward={"kind": "mnas", "accuracy": "val_acc", "latency": "pixel3_latency",
                       "target": 10.0, "w": -0.07},
               budget={"evaluations": 24})


def test_pareto_mode_records_the_reward_the_agent_learned_from():
    loop, sink = run(two_objective_job(pareto=True))
    targeted = [t for t in sink.trials if "latency_target" in t.info]
    assert len(targeted) >= 16  # all but the first batch, drawn before any latency was seen
    for t in targeted:
        if t.state.value != "complete":
            continue
        acc, lat = t.metrics["val_acc"], t.metrics["pixel3_latency"]
        target = t.info["latency_target"]
        assert t.metrics[AGENT_REWARD] == pytest.approx(
            mnas_reward(acc, lat, target, mode="hard"))
        # The trial's reward is still the job's (target 10 ms, soft, w = -0.07).
        assert t.reward == pytest.approx(mnas_reward(acc, lat, 10.0, w=-0.07))


def test_without_pareto_the_agent_gets_the_jobs_reward_only():
    loop, sink = run(two_objective_job())
    assert not loop.agent.pareto
    assert all(AGENT_REWARD not in t.metrics and "latency_target" not in t.info
               for t in sink.trials)
    assert loop.agent.updates == 24 // 4
