"""The search loop: budgets, cache, failures, hidden metrics, determinism, resume, executors."""

from __future__ import annotations

import pytest

from agents.base import TrialState
from search.loop import ResumeState, SearchLoop, run_search
from search.sinks import MemorySink
from search.spec import SpecError, parse_spec
from tests.loop_helpers import SpyAgent, job, register_test_components

register_test_components()


def run(spec_dict, **kwargs) -> MemorySink:
    sink = MemorySink()
    run_search(parse_spec(spec_dict), sink, **kwargs)
    return sink


def test_budget_counts_distinct_architectures_and_repeats_are_cached():
    # every third proposal of "echo" repeats an earlier architecture
    sink = run(job(agent={"name": "echo"}, budget={"evaluations": 60}))
    fresh = [t for t in sink.trials if not t.cached]
    assert len(fresh) == 60
    assert len({t.arch_key for t in fresh}) == 60
    assert [t.evaluation_index for t in fresh] == list(range(1, 61))
    cached = [t for t in sink.trials if t.cached]
    assert len(cached) >= 25, "expected every third proposal to be a repeat"
    first = {t.arch_key: t for t in fresh}
    for t in cached:
        assert t.metrics == first[t.arch_key].metrics
        assert t.reward == first[t.arch_key].reward
    assert sink.status == "succeeded"


def test_same_seed_same_trials_other_seed_differs():
    a = run(job(agent={"name": "evolution"}, seed=3))
    b = run(job(agent={"name": "evolution"}, seed=3))
    c = run(job(agent={"name": "evolution"}, seed=4))
    assert [t.arch_key for t in a.trials] == [t.arch_key for t in b.trials]
    assert [t.arch_key for t in a.trials] != [t.arch_key for t in c.trials]


def test_hidden_columns_never_reach_the_agent():
    SpyAgent.told.clear()
    sink = run(job(agent={"name": "spy"}, budget={"evaluations": 20}))
    assert SpyAgent.told and all(set(r.metrics) == {"val_acc"} for r in SpyAgent.told)
    rec = sink.trials[0]
    assert "test_acc" in rec.recorded and "test_acc" not in rec.metrics


def test_failed_trials_are_recorded_and_the_job_goes_on():
    sink = run(job(evaluator={"name": "flaky", "options": {"fail_ops": ["avg_pool_3x3"]}},
                   budget={"evaluations": 40}))
    failed = [t for t in sink.trials if t.state is TrialState.FAILED]
    done = [t for t in sink.trials if t.state is TrialState.COMPLETE]
    assert failed and done
    assert all("simulated training crash" in t.error for t in failed)
    assert sink.status == "succeeded"


def test_job_whose_trials_keep_failing_ends_failed_with_reason():
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    sink = run(job(evaluator={"name": "flaky", "options": {"fail_ops": ops}},
                   budget={"evaluations": 100, "max_failures": 5}))
    assert sink.status == "failed"
    assert "5 trials failed in a row" in sink.reason and "simulated training crash" in sink.reason
    assert len(sink.trials) == 5


def test_missing_device_measurement_is_invalid_never_zero():
    spec = job(profilers=[{"name": "lut:edgegpu"}],
               objectives=[{"metric": "val_acc"},
                           {"metric": "edgegpu_latency", "direction": "min"}],
               budget={"evaluations": 80})
    sink = run(spec)
    invalid = [t for t in sink.trials if t.state is TrialState.INVALID]
    assert invalid, "about 20% of NB201 cells have no edge-GPU measurement"
    assert all("edgegpu_latency" in t.error and "edgegpu_latency" not in t.metrics
               for t in invalid)
    assert all(t.metrics["edgegpu_latency"] > 0 for t in sink.trials
               if t.state is TrialState.COMPLETE)


def test_rejecting_constraint_prunes_before_evaluation():
    spec = job(profilers=[{"name": "lut:pixel3"}],
               constraints=[{"metric": "pixel3_latency", "max": 12.0, "reject": True}],
               budget={"evaluations": 40})
    sink = run(spec)
    pruned = [t for t in sink.trials if t.state is TrialState.PRUNED]
    assert pruned
    assert all(t.metrics["pixel3_latency"] > 12.0 and "val_acc" not in t.metrics
               for t in pruned)


def test_mnas_reward_is_computed_from_profiled_latency():
    spec = job(profilers=[{"name": "lut:pixel3"}],
               objectives=[{"metric": "val_acc"},
                           {"metric": "pixel3_latency", "direction": "min"}],
               reward={"kind": "mnas", "accuracy": "val_acc", "latency": "pixel3_latency",
                       "target": 10.0, "w": -0.07})
    sink = run(spec)
    t = next(t for t in sink.trials if t.state is TrialState.COMPLETE)
    expected = t.metrics["val_acc"] * (t.metrics["pixel3_latency"] / 10.0) ** -0.07
    assert t.reward == pytest.approx(expected)


def test_resume_from_checkpoint_continues_exactly():
    spec_dict = job(agent={"name": "evolution"}, budget={"evaluations": 40},
                    executor={"batch_size": 4})
    full = run(spec_dict)

    class StopAfter(MemorySink):
        def should_stop(self) -> bool:
            return self.checkpoints >= 3

    first = StopAfter()
    run_search(parse_spec(spec_dict), first)
    assert first.status == "cancelled"
    # A crash after the checkpoint lost the agent's update but kept two stored trials.
    stored = [t for t in first.trials if t.trial_id <= first.last_checkpoint["last_trial_id"]]
    second = MemorySink()
    run_search(parse_spec(spec_dict), second,
               resume=ResumeState(first.last_checkpoint, stored))
    combined = stored + second.trials
    assert [t.arch_key for t in combined] == [t.arch_key for t in full.trials]
    assert [t.trial_id for t in combined] == [t.trial_id for t in full.trials]


def test_resume_replays_trials_stored_after_the_checkpoint():
    spec_dict = job(agent={"name": "random"}, budget={"evaluations": 12},
                    executor={"batch_size": 4})
    full = run(spec_dict)
    checkpoint = None

    class Capture(MemorySink):
        def on_checkpoint(self, state):
            nonlocal checkpoint
            super().on_checkpoint(state)
            if self.checkpoints == 1:
                checkpoint = state

    run_search(parse_spec(spec_dict), Capture())
    # Stored: the first batch (checkpointed) and two trials of the second (in flight at crash).
    stored = full.trials[:6]
    second = MemorySink()
    run_search(parse_spec(spec_dict), second, resume=ResumeState(checkpoint, stored))
    assert [t.trial_id for t in second.trials] == [6, 7, 8, 9, 10, 11]
    assert [t.arch_key for t in stored + second.trials] == [t.arch_key for t in full.trials]


def test_wall_clock_budget_stops_the_job():
    sink = run(job(budget={"evaluations": 10_000_000, "seconds": 0.5}))
    assert sink.status == "succeeded"
    assert 0 < len(sink.trials) < 10_000_000


def test_component_errors_name_the_job_field(tmp_path):
    spec = parse_spec(job(profilers=[{"name": "csv",
                                      "options": {"path": str(tmp_path / "nope.csv")}}]))
    with pytest.raises(SpecError) as err:
        SearchLoop(spec, MemorySink())
    assert err.value.field == "profilers[0].options.path"  # checked before any is built


@pytest.mark.ray
def test_ray_executor_matches_local_and_records_failures(ray_session):
    spec_dict = job(agent={"name": "evolution"},
                    evaluator={"name": "flaky", "options": {"fail_ops": ["avg_pool_3x3"]}},
                    budget={"evaluations": 40}, executor={"name": "ray", "batch_size": 8})
    on_ray = run(spec_dict)
    local = run({**spec_dict, "executor": {"name": "local", "batch_size": 8}})
    assert [(t.arch_key, t.state, t.reward) for t in on_ray.trials] == \
        [(t.arch_key, t.state, t.reward) for t in local.trials]
    assert any(t.state is TrialState.FAILED for t in on_ray.trials)
    assert all(t.node and t.node != "local" for t in on_ray.trials
               if not t.cached and t.state is TrialState.COMPLETE)


@pytest.mark.ray
def test_ray_worker_death_fails_its_trials_and_the_job_goes_on(ray_session):
    spec_dict = job(evaluator={"name": "flaky", "options": {"fail_ops": ["none"],
                                                             "die": True}},
                    budget={"evaluations": 16}, executor={"name": "ray", "batch_size": 8,
                                                          "chunk_size": 1})
    sink = run(spec_dict)
    dead = [t for t in sink.trials if t.state is TrialState.FAILED]
    assert dead and sink.status == "succeeded"
    assert any(t.state is TrialState.COMPLETE for t in sink.trials)
