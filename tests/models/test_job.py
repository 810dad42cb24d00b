"""A whole NAS job on real models: the MnasNet space, proxy training, measured latency and
FLOPs, through the search loop; and the shipped demo job."""

from __future__ import annotations

import pytest

from agents.base import TrialState
from search.loop import run_search
from search.sinks import MemorySink
from search.spec import load_spec, parse_spec
from tests.conftest import REPO
from tests.models.conftest import tiny_space_options


def _job(**extra):
    return parse_spec({
        "name": "tiny-real",
        "space": {"name": "mnasnet", "options": tiny_space_options()},
        "agent": {"name": "random"},
        "evaluator": {"name": "train", "options": {
            "dataset": {"source": "digits", "max_samples": 300}, "epochs": 1,
            "batch_size": 32, "lr": 0.1}},
        "profilers": [
            {"name": "torch-cpu", "options": {"input_shape": [1, 8, 8], "repeats": 3}},
            {"name": "torch-analytical", "options": {"input_shape": [1, 8, 8]}},
        ],
        "objectives": [{"metric": "val_acc", "direction": "max"},
                       {"metric": "torch_latency_ms", "direction": "min"}],
        "reward": {"kind": "mnas", "accuracy": "val_acc", "latency": "torch_latency_ms",
                   "target": 1.0},
        "budget": {"evaluations": 2},
        "seed": 1,
        **extra,
    })


def test_a_real_model_job_runs_through_the_loop():
    sink = MemorySink()
    summary = run_search(_job(), sink)
    assert summary.status == "succeeded" and summary.evaluations == 2
    trials = [t for t in sink.trials if not t.cached]
    assert all(t.state is TrialState.COMPLETE for t in trials)
    for t in trials:
        assert {"val_acc", "torch_latency_ms", "flops_M", "energy_mJ_est"} <= set(t.metrics)
        assert "test_acc" in t.recorded and "test_acc" not in t.metrics
        assert t.reward is not None and t.reward > 0
    # Training is seeded per (job, architecture): a second run reproduces the accuracies.
    again = MemorySink()
    run_search(_job(), again)
    assert [t.metrics["val_acc"] for t in again.trials] == [
        t.metrics["val_acc"] for t in sink.trials]


def test_latency_budget_rejects_before_training():
    spec = _job(constraints=[{"metric": "flops_M", "max": 1e-6, "reject": True}])
    sink = MemorySink()
    run_search(spec, sink)
    assert all(t.state is TrialState.PRUNED and "val_acc" not in t.metrics
               for t in sink.trials)


def test_demo_job_file_is_valid():
    spec = load_spec(REPO / "examples" / "mnist_latency.json")
    assert spec.space.name == "mnasnet" and spec.evaluator.name == "train"
    assert {p.name for p in spec.profilers} >= {"torch-cpu"}


@pytest.mark.slow
def test_demo_job_runs_two_evaluations_locally():
    spec = load_spec(REPO / "examples" / "mnist_latency.json")
    data = spec.model_dump(mode="json")
    data["budget"] = {"evaluations": 2}
    data["executor"] = {"name": "local", "batch_size": 1}
    sink = MemorySink()
    summary = run_search(parse_spec(data), sink)
    assert summary.status == "succeeded"
    assert all(t.metrics["val_acc"] > 30 for t in sink.trials)  # 1 epoch: far above chance


def test_asha_stopped_trials_are_recorded_pruned_without_reward():
    evaluator = {"name": "train", "options": {
        "dataset": {"source": "digits", "max_samples": 300}, "epochs": 3, "batch_size": 32,
        "lr": 0.1, "asha": {"grace_period": 1, "reduction_factor": 2}}}
    sink = MemorySink()
    summary = run_search(_job(evaluator=evaluator, budget={"evaluations": 6},
                              profilers=[{"name": "torch-analytical",
                                          "options": {"input_shape": [1, 8, 8]}}],
                              objectives=[{"metric": "val_acc", "direction": "max"}],
                              reward={"kind": "objective"}), sink)
    assert summary.status == "succeeded"
    trials = [t for t in sink.trials if not t.cached]
    stopped = [t for t in trials if t.recorded.get("pruned")]
    assert stopped, "ASHA stopped no trial: the test no longer exercises pruning"
    for t in trials:
        if t.recorded.get("pruned"):
            assert t.state is TrialState.PRUNED and t.reward is None
            assert t.recorded["epochs_run"] < 3 and "stopped early" in (t.error or "")
            assert "val_acc" in t.metrics  # the partial score stays on the record
        else:
            assert t.state is TrialState.COMPLETE and t.reward is not None
            assert t.recorded["epochs_run"] == 3
    assert summary.best is not None and summary.best.state is TrialState.COMPLETE
