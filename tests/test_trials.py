"""One definition of the best trial, the Pareto front and the hypervolume (search/trials.py):
random trial sets (failures, invalids, NaN, infinities, pruned trials, repeats, constraint
violations, ties) give the same answer in the loop, the incremental standing, results.json
and a brute-force reading of the documented rule. The service's path (sink, API, dashboard)
runs the same property in tests/service/test_one_truth.py."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents.base import TrialState
from search.loop import SearchLoop
from search.pareto import hypervolume
from search.results import build_results
from search.sinks import MemorySink, TrialRecord
from search.spec import parse_spec
from search.trials import (
    HvReference,
    KnownValues,
    Standing,
    best_trial,
    pareto_front,
    partial_reference,
)
from tests.trial_helpers import KINDS, register, scripted_spec

register()

OUTCOME = st.fixed_dictionaries({
    "kind": st.sampled_from(("ok",) * 6 + KINDS),
    "acc": st.integers(0, 4), "lat": st.integers(0, 4),  # few values: ties are common
    "mem": st.integers(5, 9),  # above 7 breaks the constraint
})
OUTCOMES = st.lists(OUTCOME, min_size=1, max_size=14)


def oracle(trials: list[TrialRecord]) -> tuple[int | None, set[int], list[tuple[float, float]]]:
    """The documented rule, written out by brute force."""
    ok = [t for t in trials if t.state is TrialState.COMPLETE and not t.cached
          and not t.recorded.get("constraint_violations")]
    ranked = [t for t in ok if t.reward is not None and math.isfinite(t.reward)]
    best = max(ranked, key=lambda t: (t.reward, -t.trial_id)) if ranked else None
    pts = [(t.trial_id, t.metrics["acc"], t.metrics["lat"]) for t in ok
           if all(math.isfinite(t.metrics.get(m, math.nan)) for m in ("acc", "lat"))]
    front = {i for i, a, lat in pts
             if not any(a2 >= a and l2 <= lat and (a2 > a or l2 < lat) for _, a2, l2 in pts)}
    values = [(a, lat) for i, a, lat in pts if i in front]
    return (best.trial_id if best else None), front, values


def run_memory(spec_doc: dict[str, Any]) -> tuple[Any, MemorySink, Any]:
    spec = parse_spec(spec_doc)
    sink = MemorySink()
    loop = SearchLoop(spec, sink)
    return spec, sink, loop.run()


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(outcomes=OUTCOMES, seed=st.integers(0, 50), batch=st.integers(1, 4))
def test_every_path_names_the_same_best_trial_front_and_hypervolume(
        outcomes: list[dict[str, Any]], seed: int, batch: int) -> None:
    spec, sink, summary = run_memory(scripted_spec(outcomes, seed=seed, batch_size=batch))
    trials = sink.trials
    best, front, values = oracle(trials)

    # the loop
    assert (summary.best.trial_id if summary.best else None) == best
    assert set(summary.front) == front
    # results.json (the export step reads the same two functions)
    doc = build_results(spec, trials, status=summary.status, reference=summary.reference)
    assert (doc["best"]["trial_id"] if doc["best"] else None) == best
    assert {t["trial_id"] for t in doc["pareto_front"]} == front
    assert (best_trial(trials).trial_id if best_trial(trials) else None) == best
    assert {t.trial_id for t in pareto_front(trials, spec.objectives)} == front
    # a fresh fold of the records (what the sink does, also after a resume)
    standing = Standing(spec.objectives, summary.reference)
    for t in sorted(trials, key=lambda r: r.trial_id):
        standing.add(t)
    assert (standing.best.trial_id if standing.best else None) == best
    assert set(standing.front_ids()) == front
    # the hypervolume: one value, from the one fixed reference point
    if summary.reference is None:
        assert not front and summary.hypervolume is None and doc["hypervolume"] is None
    else:
        expected = hypervolume(np.array(values).reshape(-1, 2), list(summary.reference.point),
                               ["max", "min"]) if values else 0.0
        assert summary.hypervolume == pytest.approx(expected, abs=1e-12)
        assert standing.hypervolume == pytest.approx(expected, abs=1e-12)
        assert doc["hypervolume"]["value"] == pytest.approx(expected, abs=1e-12)
        assert doc["hypervolume"]["reference"] == list(summary.reference.point)


def test_the_rule_as_documented_on_a_hand_made_set() -> None:
    """Violators, repeats, NaN and infinite rewards never count; ties go to the earliest."""
    def rec(i: int, state: str = "complete", reward: float | None = 1.0, acc: float = 1.0,
            lat: float = 1.0, **kw: Any) -> TrialRecord:
        return TrialRecord(i, {}, str(i), TrialState(state), reward,
                           {"acc": acc, "lat": lat}, **kw)

    trials = [
        rec(0, reward=5.0, acc=5, lat=5, recorded={"constraint_violations": ["mem=9 > max 7"]}),
        rec(1, reward=3.0, acc=3, lat=2),
        rec(2, reward=3.0, acc=3, lat=2),  # a tie: both on the front, the earlier is best
        rec(3, reward=9.0, acc=9, lat=9, cached=True),  # a repeat
        rec(4, reward=math.nan, acc=4, lat=math.nan),  # NaN: neither best nor front
        rec(5, state="failed", reward=None),
        rec(6, state="pruned", reward=None, acc=8, lat=0),
        rec(7, reward=math.inf, acc=2, lat=1),  # infinite reward: no score, on the front
    ]
    objectives = parse_spec(scripted_spec([{"kind": "ok", "acc": 0, "lat": 0, "mem": 5}])
                            ).objectives
    assert best_trial(trials).trial_id == 1
    assert [t.trial_id for t in pareto_front(trials, objectives)] == [1, 2, 7]


def test_hypervolume_is_stable_while_nothing_improves() -> None:
    """Worse trials arriving after the reference is fixed add nothing and take nothing away
    (with the old observed-worst reference, each of them lowered the number)."""
    good = [{"kind": "ok", "acc": a, "lat": a, "mem": 5} for a in (2, 3, 4)]
    worse = [
        {"kind": "ok", "acc": -10 * (i + 1), "lat": 10 * (i + 1), "mem": 5} for i in range(9)]
    spec, sink, summary = run_memory(scripted_spec(good + worse, batch_size=3))
    assert summary.reference is not None and summary.reference.source == "first batch,first batch"
    standing = Standing(spec.objectives, summary.reference)
    values = []
    for t in sorted(sink.trials, key=lambda r: r.trial_id):
        standing.add(t)
        values.append(standing.hypervolume)
    first_good = max(i for i, t in enumerate(sorted(sink.trials, key=lambda r: r.trial_id))
                     if t.metrics.get("acc", -1) >= 2)
    after = [v for v in values[first_good:] if v is not None]
    assert after and all(v == after[0] for v in after)  # flat once the good ones are in
    assert all(b >= a for a, b in zip(values[1:], values[2:], strict=False)
               if a is not None and b is not None)
    # The history has one point per evaluation that changed it, indexed by evaluations.
    evals = [e for _, e, _ in standing.hv_history]
    assert evals == sorted(set(evals)) and max(evals) <= summary.evaluations
    assert summary.hypervolume == after[0]


def test_reference_from_the_spec_and_from_tables() -> None:
    outcomes = [{"kind": "ok", "acc": 3, "lat": 1, "mem": 5}]
    _, _, summary = run_memory(scripted_spec(outcomes, reference=[0.0, 10.0]))
    assert summary.reference == HvReference((0.0, 10.0), "spec,spec", None)
    assert summary.hypervolume == pytest.approx(3 * 9)
    objectives = parse_spec(scripted_spec(outcomes)).objectives
    acc = KnownValues(["a", "b", "c"], {"acc": np.array([1.0, 5.0, np.nan])})
    lat = KnownValues(["c", "b", "a"], {"lat": np.array([0.5, 2.0, 4.0])})
    point, source, true_front = partial_reference(objectives, [acc, lat])
    # rows measured in both: a (1, 4) and b (5, 2); the reference is their worst
    assert point == [1.0, 4.0] and source == ["table", "table"]
    assert true_front == pytest.approx((5 - 1) * (4 - 2))


def test_single_objective_jobs_have_no_hypervolume() -> None:
    doc = scripted_spec([{"kind": "ok", "acc": 3, "lat": 1, "mem": 5}])
    doc["objectives"] = doc["objectives"][:1]
    spec, sink, summary = run_memory(doc)
    assert summary.hypervolume is None and summary.reference is None
    assert build_results(spec, sink.trials, status="succeeded")["hypervolume"] is None
    with pytest.raises(ValueError, match="two or more objectives"):
        parse_spec({**doc, "objectives": [{"metric": "acc", "reference": 0.0}]})
