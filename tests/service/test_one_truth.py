"""The service's answers follow the one definition (search/trials.py): random trial sets run
through the SQL sink on a real database give the loop's best trial, front and hypervolume in
the job document, ``/pareto``, ``/hypervolume``, the dashboard's series and results.json."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from search.loop import run_search
from search.sinks import MemorySink
from search.spec import parse_spec
from search.trials import better_best
from service import crud
from service.core.security import Principal
from service.dashboard import queries
from service.models import Job
from service.queue import claim_job
from service.sink import SqlSink
from tests.service.conftest import auth
from tests.test_trials import OUTCOMES, oracle
from tests.trial_helpers import register, scripted_spec

register()


def _run_on_db(app: Any, spec_doc: dict[str, Any]) -> str:
    """The job run by the worker's parts (claim, SQL sink, results writer), in this thread."""
    state = app.state.lightsearch
    db = state.db
    spec = parse_spec(spec_doc)
    with db.write_session() as session:
        user = crud.get_user(session, "alice")
        job = crud.create_job(session, Principal(user.id, user.name), spec)
    claim = claim_job(db, "prop-worker", 60)
    assert claim is not None and claim.job_id == job.id
    sink = SqlSink(db, claim, spec, artifact_root=state.settings.artifact_dir,
                   write_results=True)
    try:
        run_search(spec, sink)
    finally:
        sink.close()
    return job.id


@settings(max_examples=25, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(outcomes=OUTCOMES, seed=st.integers(0, 50), batch=st.integers(1, 4))
def test_sink_api_dashboard_and_results_file_agree_with_the_loop(
        client: Any, app: Any, tokens: dict[str, str], outcomes: list[dict[str, Any]],
        seed: int, batch: int) -> None:
    doc = scripted_spec(outcomes, seed=seed, batch_size=batch)
    memory = MemorySink()
    summary = run_search(parse_spec(doc), memory)
    best, front, _ = oracle(memory.trials)
    assert (summary.best.trial_id if summary.best else None) == best

    job_id = _run_on_db(app, doc)
    h = auth(tokens["alice"])
    job = client.get(f"/api/v1/jobs/{job_id}", headers=h).json()
    pareto = client.get(f"/api/v1/jobs/{job_id}/pareto", headers=h).json()
    hv = client.get(f"/api/v1/jobs/{job_id}/hypervolume", headers=h).json()
    artifact = client.get(f"/api/v1/jobs/{job_id}/artifacts/results.json", headers=h)
    results = json.loads(artifact.content)
    with app.state.lightsearch.db.reading() as session:  # the dashboard's own query
        series = queries.series(session, session.get(Job, job_id))

    assert (job["best"]["trial_id"] if job["best"] else None) == best
    assert {t["trial_id"] for t in pareto["data"]} == front
    assert (results["best"]["trial_id"] if results["best"] else None) == best
    assert {t["trial_id"] for t in results["pareto_front"]} == front
    if best is not None:  # the dashboard's best-reward line ends at the job's best
        assert series["best"][-1][1] == job["best"]["reward"]
    else:
        assert series["best"] == []
    if summary.reference is None:
        assert job["hypervolume"] is None and job["hypervolume_reference"] is None
        assert results["hypervolume"] is None and hv["data"] == []
    else:
        point = list(summary.reference.point)
        assert job["hypervolume_reference"]["point"] == point == hv["reference"]
        assert results["hypervolume"]["reference"] == point
        for value in (job["hypervolume"], results["hypervolume"]["value"],
                      hv["data"][-1]["value"] if hv["data"] else 0.0):
            assert value == pytest.approx(summary.hypervolume, abs=1e-12)
    assert job["status"] == summary.status


def test_dashboard_best_series_uses_the_one_rule() -> None:
    """``better_best`` works on database rows (duck-typed): a violator never leads."""
    class Row:
        def __init__(self, trial_id: int, reward: float, recorded: dict[str, Any]) -> None:
            self.trial_id, self.reward, self.recorded = trial_id, reward, recorded
            self.state, self.cached = "complete", False

    violator = Row(0, 9.0, {"constraint_violations": ["x"]})
    fine = Row(1, 1.0, {})
    assert not better_best(violator, None) and better_best(fine, None)
