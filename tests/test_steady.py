"""Steady mode (``executor.mode = "steady"``): proposals stay in flight and each finished
evaluation is replaced at once. Budgets, repeats, failures, stops and resume after a crash,
on the local executor and on Ray."""

from __future__ import annotations

import time

import pytest

from agents.base import TrialState
from search.loop import ResumeState, run_search
from search.sinks import MemorySink, TrialRecord
from search.spec import SpecError, parse_spec
from tests.loop_helpers import job, register_test_components

register_test_components()


def steady(executor: dict | None = None, **overrides) -> dict:
    return job(**overrides, executor={"mode": "steady", "batch_size": 4, **(executor or {})})


def run(spec_dict, sink: MemorySink | None = None, **kwargs) -> MemorySink:
    sink = sink or MemorySink()
    run_search(parse_spec(spec_dict), sink, **kwargs)
    return sink


def assert_exact_budget(trials: list[TrialRecord], budget: int) -> None:
    """Exactly ``budget`` distinct evaluations, none twice, each trial id stored once, every
    proposal up to the last answered, and repeats carry their evaluation's result."""
    ids = [t.trial_id for t in trials]
    assert len(ids) == len(set(ids)) and sorted(ids) == list(range(len(ids)))
    fresh = [t for t in trials if not t.cached and t.evaluation_index is not None]
    assert len(fresh) == budget
    assert len({t.arch_key for t in fresh}) == budget
    assert sorted(t.evaluation_index for t in fresh) == list(range(1, budget + 1))
    first = {t.arch_key: t for t in fresh}
    for t in trials:
        if t.cached:
            assert t.arch_key in first and t.state is first[t.arch_key].state
            assert t.reward == first[t.arch_key].reward


# ---- spec ----------------------------------------------------------------------------------
def test_mode_is_checked_in_the_spec():
    assert parse_spec(job()).executor.mode == "batch"
    with pytest.raises(SpecError) as err:
        parse_spec(job(executor={"mode": "async"}))
    assert err.value.field == "executor.mode"
    with pytest.raises(SpecError) as err:
        parse_spec(job(executor={"name": "ray", "mode": "steady", "chunk_size": 4}))
    assert err.value.field == "executor.chunk_size" and "steady" in err.value.message
    assert parse_spec(job(executor={"name": "ray", "mode": "steady", "chunk_size": 1}))


# ---- local executor ------------------------------------------------------------------------
def test_steady_local_job_reaches_exactly_its_budget_with_repeats_answered():
    # "echo" repeats every third proposal: some wait on an evaluation in flight, some hit
    # the cache; neither is evaluated or counted.
    sink = run(steady(agent={"name": "echo"}, budget={"evaluations": 60}))
    assert sink.status == "succeeded" and "budget of 60" in sink.reason
    assert_exact_budget(sink.trials, 60)
    assert sum(t.cached for t in sink.trials) >= 25
    assert sink.last_checkpoint["in_flight"] == []
    assert sink.checkpoints >= 60  # one per round: every result is checkpointed


def test_steady_keeps_batch_size_proposals_in_flight():
    sizes = []

    class Watch(MemorySink):
        def on_checkpoint(self, state):
            super().on_checkpoint(state)
            sizes.append(sum(len(f["proposals"]) for f in state["in_flight"]))

    run(steady(budget={"evaluations": 30}), Watch())
    assert max(sizes) == 4 and sizes[0] == 4
    assert sizes[:27] == [4] * 27  # full until the budget is all in flight, then drained
    assert sizes[-1] == 0


def test_steady_local_is_deterministic_for_a_seed():
    a = run(steady(agent={"name": "evolution"}, seed=3))
    b = run(steady(agent={"name": "evolution"}, seed=3))
    assert [(t.trial_id, t.arch_key) for t in a.trials] == \
        [(t.trial_id, t.arch_key) for t in b.trials]


def test_failed_trials_are_recorded_and_the_steady_job_goes_on():
    sink = run(steady(evaluator={"name": "flaky", "options": {"fail_ops": ["avg_pool_3x3"]}},
                      budget={"evaluations": 40}))
    failed = [t for t in sink.trials if t.state is TrialState.FAILED]
    assert failed and all("simulated training crash" in t.error for t in failed)
    assert sink.status == "succeeded"
    assert len([t for t in sink.trials if not t.cached]) == 40


def test_steady_job_whose_trials_keep_failing_ends_failed_and_drains():
    ops = ["none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3"]
    sink = run(steady(evaluator={"name": "flaky", "options": {"fail_ops": ops}},
                      budget={"evaluations": 100, "max_failures": 5}))
    assert sink.status == "failed" and "trials failed in a row" in sink.reason
    # asking stops at 5 failures; the 3 still in flight finish and are recorded
    assert len(sink.trials) == 8 and sink.last_checkpoint["in_flight"] == []


def test_steady_job_stops_at_its_time_budget():
    sink = run(steady(budget={"evaluations": 10_000_000, "seconds": 0.5}))
    assert sink.status == "succeeded" and "time budget" in sink.reason
    assert 0 < len(sink.trials) < 10_000_000
    assert sink.last_checkpoint["in_flight"] == []  # what was in flight finished, recorded


def test_cancel_stops_a_steady_job_leaving_in_flight_trials_unrecorded():
    class StopAfter(MemorySink):
        def should_stop(self) -> bool:
            return self.checkpoints >= 5

    sink = StopAfter()
    summary = run_search(parse_spec(steady(budget={"evaluations": 50})), sink)
    assert sink.status == "cancelled" and summary.status == "cancelled"
    assert len(sink.trials) == 4  # one result per round, the first round only asked
    assert summary.evaluations == len([t for t in sink.trials if not t.cached])


class Crash(Exception):
    pass


class CrashingSink(MemorySink):
    """The process 'dies' at the sink's ``at``-th trial or checkpoint: that one and all
    after it are never stored."""

    def __init__(self, at: int) -> None:
        super().__init__()
        self.at, self.events = at, 0

    def _event(self) -> None:
        self.events += 1
        if self.events >= self.at:
            raise Crash

    def on_trial(self, record):
        self._event()
        super().on_trial(record)

    def on_checkpoint(self, state):
        self._event()
        super().on_checkpoint(state)


def crash_and_resume(spec_dict: dict, at: int) -> tuple[MemorySink, MemorySink]:
    first = CrashingSink(at)
    with pytest.raises(Crash):
        run(spec_dict, first)
    resume = ResumeState(first.last_checkpoint, list(first.trials))
    second = run(spec_dict, resume=resume)
    stored = {t.trial_id for t in first.trials}
    assert not stored & {t.trial_id for t in second.trials}, "a trial was stored twice"
    return first, second


# Every point of a stretch of events: trials in flight at the checkpoint stored or not,
# a repeat stored without the evaluation it waited on, trials answered at once after the
# checkpoint (replayed), a crash just before a checkpoint.
@pytest.mark.parametrize("at", range(30, 46))
def test_steady_resume_after_a_crash_loses_and_repeats_nothing(at):
    spec_dict = steady(agent={"name": "echo"}, budget={"evaluations": 40})
    full = run(spec_dict)
    first, second = crash_and_resume(spec_dict, at)
    assert first.last_checkpoint["in_flight"], "the crash must hit trials in flight"
    combined = first.trials + second.trials
    assert second.status == "succeeded"
    assert_exact_budget(combined, 40)
    # Locally deterministic: the resumed job continues exactly as the uninterrupted one.
    by_id = sorted(combined, key=lambda t: t.trial_id)
    assert [(t.trial_id, t.arch_key, t.cached, t.evaluation_index) for t in by_id] == \
        [(t.trial_id, t.arch_key, t.cached, t.evaluation_index)
         for t in sorted(full.trials, key=lambda t: t.trial_id)]


def test_steady_checkpoint_resumed_in_batch_mode_is_refused():
    first = CrashingSink(at=4)
    with pytest.raises(Crash):
        run(steady(), first)
    with pytest.raises(ValueError, match="steady"):
        run(job(executor={"batch_size": 4}),
            resume=ResumeState(first.last_checkpoint, list(first.trials)))


# ---- Ray ---------------------------------------------------------------------------------
@pytest.mark.ray
def test_steady_ray_job_reaches_exactly_its_budget_and_records_failures(ray_session):
    spec_dict = steady({"name": "ray", "batch_size": 6}, agent={"name": "echo"},
                       evaluator={"name": "flaky", "options": {"fail_ops": ["avg_pool_3x3"]}},
                       budget={"evaluations": 40})
    sink = run(spec_dict)
    assert sink.status == "succeeded"
    # failed evaluations count but are not cached: a repeat of one is evaluated again
    evaluations = [t for t in sink.trials if not t.cached and t.evaluation_index]
    assert sorted(t.evaluation_index for t in evaluations) == list(range(1, 41))
    ok = [t for t in evaluations if t.state is not TrialState.FAILED]
    assert len({t.arch_key for t in ok}) == len(ok)
    assert any(t.state is TrialState.FAILED and "simulated training crash" in t.error
               for t in sink.trials)
    assert all(t.node and t.node != "local" for t in ok)
    ids = sorted(t.trial_id for t in sink.trials)
    assert ids == list(range(len(ids)))


@pytest.mark.ray
def test_steady_ray_worker_death_fails_its_trial_and_the_job_goes_on(ray_session):
    sink = run(steady({"name": "ray", "batch_size": 6},
                      evaluator={"name": "flaky", "options": {"fail_ops": ["none"],
                                                               "die": True}},
                      budget={"evaluations": 16}))
    assert sink.status == "succeeded"
    assert any(t.state is TrialState.FAILED for t in sink.trials)
    assert any(t.state is TrialState.COMPLETE for t in sink.trials)


@pytest.mark.ray
def test_steady_ray_cancel_stops_in_flight_trials(ray_session):
    class StopSoon(MemorySink):
        def __init__(self) -> None:
            super().__init__()
            self.started = time.monotonic()

        def should_stop(self) -> bool:
            return self.checkpoints >= 3

    sink = StopSoon()
    summary = run_search(parse_spec(steady(
        {"name": "ray", "batch_size": 4},
        evaluator={"name": "flaky", "options": {"fail_ops": [], "delay_s": 0.3}},
        budget={"evaluations": 200})), sink)
    assert sink.status == "cancelled"
    assert len(sink.trials) < 20 and time.monotonic() - sink.started < 30
    assert summary.evaluations == len([t for t in sink.trials if not t.cached])


@pytest.mark.ray
@pytest.mark.parametrize("at", [15, 16, 17])
def test_steady_ray_resume_after_a_crash_loses_and_repeats_nothing(ray_session, at):
    spec_dict = steady({"name": "ray", "batch_size": 4}, agent={"name": "echo"},
                       budget={"evaluations": 30})
    first, second = crash_and_resume(spec_dict, at)
    assert first.last_checkpoint["in_flight"]
    assert second.status == "succeeded"
    assert_exact_budget(first.trials + second.trials, 30)
