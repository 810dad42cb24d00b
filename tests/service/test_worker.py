"""Jobs run by a worker against a real database (SQLite and PostgreSQL): stored trials,
counters, Pareto flags, hypervolume, failures, cancel, resume after a lost worker, Ray."""

from __future__ import annotations

import json
import time
from datetime import timedelta

import numpy as np
import pytest
from sqlalchemy import select, update

from search.pareto import pareto_front_indices
from service.models import Job, Trial, utcnow
from tests.service.conftest import auth, job_spec, wait_for

API = "/api/v1"


def _submit(client, token, **over):
    r = client.post(f"{API}/jobs", json=job_spec(**over), headers=auth(token))
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _job(client, token, job_id):
    return client.get(f"{API}/jobs/{job_id}", headers=auth(token)).json()


def _finished(client, token, job_id):
    job = _job(client, token, job_id)
    return job if job["status"] in ("succeeded", "failed", "cancelled", "exhausted") else None


def _all_trials(client, token, job_id):
    return client.get(f"{API}/jobs/{job_id}/trials", params={"limit": 1000},
                      headers=auth(token)).json()["data"]


def test_job_runs_and_everything_is_stored(client, tokens, start_worker, settings):
    tok = tokens["alice"]
    job_id = _submit(client, tok, budget={"evaluations": 60})
    start_worker()
    job = wait_for(lambda: _finished(client, tok, job_id), 120)
    assert job["status"] == "succeeded", job["reason"]
    trials = _all_trials(client, tok, job_id)
    p = job["progress"]
    assert p["evaluations"] == 60 and p["trials"] == len(trials)
    assert p["complete"] == sum(t["state"] == "complete" and not t["cached"] for t in trials)
    assert [t["trial_id"] for t in trials] == sorted({t["trial_id"] for t in trials})
    assert p["tasks_started"] == 60  # one executor task per distinct evaluation, no re-runs
    rewards = [t["reward"] for t in trials if t["reward"] is not None]
    assert job["best_reward"] == max(rewards) and job["best"]["reward"] == max(rewards)

    # Front flags agree with a from-scratch non-dominated sort of the stored trials.
    cands = [t for t in trials if t["state"] == "complete" and not t["cached"]]
    values = np.array([[t["metrics"]["val_acc"], t["metrics"]["pixel3_latency"]]
                       for t in cands])
    expected = {cands[i]["trial_id"] for i in pareto_front_indices(values, ["max", "min"])}
    front = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth(tok)).json()
    assert {t["trial_id"] for t in front["data"]} == expected
    accs = [t["metrics"]["val_acc"] for t in front["data"]]
    assert accs == sorted(accs, reverse=True)

    # The hypervolume history ends at results.json's value (same reference point).
    hv = client.get(f"{API}/jobs/{job_id}/hypervolume", headers=auth(tok)).json()
    results = json.loads(client.get(f"{API}/jobs/{job_id}/artifacts/results.json",
                                    headers=auth(tok)).content)
    assert hv["reference"] == results["hypervolume"]["reference"]
    assert hv["data"][-1]["value"] == pytest.approx(results["hypervolume"]["value"])
    assert job["hypervolume"] == pytest.approx(results["hypervolume"]["value"])
    values_hv = [pt["value"] for pt in hv["data"]]
    assert values_hv == sorted(values_hv)  # a fixed reference: never decreases
    assert len(results["trials"]) == len(trials)

    # Sorting by any metric, with paging.
    page = client.get(f"{API}/jobs/{job_id}/trials", headers=auth(tok), params={
        "sort": "pixel3_latency", "order": "desc", "limit": 5, "offset": 2}).json()
    lat = sorted((t["metrics"]["pixel3_latency"] for t in trials), reverse=True)
    assert [t["metrics"]["pixel3_latency"] for t in page["data"]] == lat[2:7]
    by_reward = client.get(f"{API}/jobs/{job_id}/trials", headers=auth(tok),
                           params={"sort": "reward", "order": "desc", "limit": 1}).json()
    assert by_reward["data"][0]["reward"] == max(rewards)
    cached = client.get(f"{API}/jobs/{job_id}/trials", headers=auth(tok),
                        params={"state": "complete"}).json()
    assert cached["count"] == sum(t["state"] == "complete" for t in trials)



def test_job_short_of_its_budget_ends_exhausted(client, tokens, start_worker):
    """A job whose proposal limit runs out before its budget ends 'exhausted' with the
    evaluations it reached, never 'succeeded'; the API filters on it."""
    tok = tokens["alice"]
    job_id = _submit(client, tok, budget={"evaluations": 40, "max_proposals": 10})
    start_worker()
    job = wait_for(lambda: _finished(client, tok, job_id), 120)
    assert job["status"] == "exhausted", job["reason"]
    reached = job["progress"]["evaluations"]
    assert 10 <= reached < 40
    assert job["reason"].startswith(f"{reached} of 40 evaluations reached")
    listed = client.get(f"{API}/jobs", params={"status": "exhausted"},
                        headers=auth(tok)).json()
    assert [j["id"] for j in listed["data"]] == [job_id]
    assert client.get(f"{API}/jobs", params={"status": "succeeded"},
                      headers=auth(tok)).json()["count"] == 0

def test_failing_trials_are_recorded_and_end_the_job(client, tokens, start_worker):
    tok = tokens["alice"]
    job_id = _submit(client, tok, evaluator={"name": "svc-fail"}, profilers=[],
                     objectives=[{"metric": "val_acc"}],
                     budget={"evaluations": 50, "max_failures": 5},
                     executor={"name": "local", "batch_size": 1})
    start_worker()
    job = wait_for(lambda: _finished(client, tok, job_id), 60)
    assert job["status"] == "failed"
    assert "5 trials failed in a row" in job["reason"]
    assert "CUDA out of memory" in job["reason"]
    trials = _all_trials(client, tok, job_id)
    assert len(trials) == 5 and all(t["state"] == "failed" for t in trials)
    assert all("CUDA out of memory" in t["error"] for t in trials)


def test_some_failures_do_not_stop_the_job(client, tokens, start_worker):
    tok = tokens["alice"]
    job_id = _submit(client, tok, evaluator={"name": "svc-slow", "options": {
        "delay_s": 0.0, "fail_ops": ["avg_pool_3x3"]}}, budget={"evaluations": 30})
    start_worker()
    job = wait_for(lambda: _finished(client, tok, job_id), 60)
    assert job["status"] == "succeeded", job["reason"]
    trials = _all_trials(client, tok, job_id)
    failed = [t for t in trials if t["state"] == "failed"]
    assert failed and all("simulated training crash" in t["error"] for t in failed)
    assert job["progress"]["failed"] == len(failed)


def test_cancel_stops_a_running_job_within_seconds(client, tokens, start_worker):
    tok = tokens["alice"]
    job_id = _submit(client, tok, evaluator={"name": "svc-slow", "options": {"delay_s": 0.3}},
                     budget={"evaluations": 1000}, executor={"name": "local", "batch_size": 4})
    start_worker()
    wait_for(lambda: _job(client, tok, job_id)["progress"]["trials"] >= 4, 60)
    start = time.monotonic()
    r = client.post(f"{API}/jobs/{job_id}/cancel", headers=auth(tok))
    assert r.status_code == 200 and r.json()["cancel_requested"]
    job = wait_for(lambda: _finished(client, tok, job_id), 30)
    elapsed = time.monotonic() - start
    assert job["status"] == "cancelled" and elapsed < 3.0, (job["status"], elapsed)
    kept = _all_trials(client, tok, job_id)
    assert len(kept) == job["progress"]["trials"] >= 4  # partial results kept
    assert client.post(f"{API}/jobs/{job_id}/cancel", headers=auth(tok)).status_code == 409


@pytest.mark.parametrize("mode", ["batch", "steady"])
def test_resume_after_a_lost_worker_matches_an_uninterrupted_run(
        client, tokens, start_worker, db, settings, mode):
    """Worker A loses its lease mid-job; worker B resumes from the checkpoint. The trials
    equal those of the same job run without interruption: none lost, none twice (steady
    mode on the local executor is deterministic too, with trials in flight at every
    checkpoint)."""
    tok = tokens["alice"]
    spec = dict(agent={"name": "evolution", "options": {"population_size": 8}},
                evaluator={"name": "svc-slow", "options": {"delay_s": 0.02}},
                budget={"evaluations": 120},
                executor={"name": "local", "batch_size": 4, "mode": mode})
    reference = _submit(client, tok, name="reference", **spec)
    a = start_worker()
    wait_for(lambda: _finished(client, tok, reference), 120)
    a.stop()

    job_id = _submit(client, tok, name="interrupted", **spec)
    a = start_worker(lease_s=3600)
    wait_for(lambda: _job(client, tok, job_id)["progress"]["trials"] >= 30, 60)
    with db.write_session() as session:  # worker A goes silent: its lease expires
        session.execute(update(Job).where(Job.id == job_id)
                        .values(heartbeat_at=utcnow() - timedelta(hours=2)))
        session.commit()
    with db.reading() as session:
        before = {t.trial_id: (t.arch_key, t.reward) for t in
                  session.scalars(select(Trial).where(Trial.job_id == job_id))}
    b = start_worker()  # claims the expired lease; A is fenced off at its next write
    job = wait_for(lambda: _finished(client, tok, job_id), 120)
    a.stop()
    b.stop()
    assert job["status"] == "succeeded" and job["attempts"] == 2 and job["resumed"] == 1
    after = {t["trial_id"]: (t["arch_key"], t["reward"]) for t in
             _all_trials(client, tok, job_id)}
    ref = {t["trial_id"]: (t["arch_key"], t["reward"]) for t in
           _all_trials(client, tok, reference)}
    assert all(after[k] == v for k, v in before.items())  # nothing committed was lost
    assert after == ref  # same trials as the uninterrupted run, each once
    assert job["progress"]["evaluations"] == 120


@pytest.mark.ray
def test_jobs_run_on_ray(client, tokens, start_worker, ray_session):
    tok = tokens["alice"]
    ids = [_submit(client, tok, name=f"ray-{i}", evaluator={
        "name": "svc-slow", "options": {"delay_s": 0.01}}, budget={"evaluations": 24},
        executor={"name": "local", "batch_size": 8}) for i in range(2)]
    start_worker(executor="ray", max_concurrent_jobs=2)
    for job_id in ids:
        job = wait_for(lambda j=job_id: _finished(client, tok, j), 120)
        assert job["status"] == "succeeded" and job["executor"] == "ray", job["reason"]
        nodes = {t["node"] for t in _all_trials(client, tok, job_id) if not t["cached"]}
        assert nodes == {ray_session.get_runtime_context().get_node_id()}


def test_concurrent_jobs_stay_within_the_limit(client, tokens, start_worker):
    tok = tokens["alice"]
    ids = [_submit(client, tok, name=f"c{i}", evaluator={
        "name": "svc-slow", "options": {"delay_s": 0.05}}, budget={"evaluations": 16},
        executor={"name": "local", "batch_size": 4}) for i in range(3)]
    start_worker(max_concurrent_jobs=2)
    peak = 0

    def all_done() -> bool:
        nonlocal peak
        running = client.get(f"{API}/jobs", params={"status": "running"},
                             headers=auth(tok)).json()["count"]
        peak = max(peak, running)
        return all(_finished(client, tok, j) for j in ids)

    wait_for(all_done, 120, 0.02)
    assert peak == 2
    assert all(_job(client, tok, j)["status"] == "succeeded" for j in ids)


@pytest.mark.ray
@pytest.mark.parametrize("mode", ["batch", "steady"])
def test_cancel_stops_in_flight_ray_tasks(client, tokens, start_worker, ray_session, mode):
    tok = tokens["alice"]
    job_id = _submit(client, tok, evaluator={"name": "svc-slow", "options": {"delay_s": 5.0}},
                     profilers=[], objectives=[{"metric": "val_acc"}],
                     budget={"evaluations": 100},
                     executor={"name": "ray", "batch_size": 4, "chunk_size": 1, "mode": mode})
    start_worker(executor="ray")
    wait_for(lambda: _job(client, tok, job_id)["progress"]["tasks_started"] >= 4, 120)
    start = time.monotonic()
    client.post(f"{API}/jobs/{job_id}/cancel", headers=auth(tok))
    job = wait_for(lambda: _finished(client, tok, job_id), 30)
    assert job["status"] == "cancelled"
    assert time.monotonic() - start < 3.0  # 5-second trials were in flight


def test_train_job_exports_its_best_and_pareto_models(client, tokens, start_worker):
    from tests.models.conftest import tiny_space_options

    tok = tokens["alice"]
    job_id = _submit(
        client, tok, name="svc-train",
        space={"name": "mnasnet", "options": tiny_space_options()},
        evaluator={"name": "train", "options": {
            "dataset": {"source": "digits", "max_samples": 250}, "epochs": 1,
            "batch_size": 32, "lr": 0.1}},
        profilers=[{"name": "torch-analytical"}],
        objectives=[{"metric": "val_acc", "direction": "max"},
                    {"metric": "flops_M", "direction": "min"}],
        budget={"evaluations": 3}, executor={"name": "local", "batch_size": 3},
        export={"best": True, "pareto": True, "measure_latency": False})
    start_worker()
    job = wait_for(lambda: _finished(client, tok, job_id), 240)
    assert job["status"] == "succeeded" and "export failed" not in (job["reason"] or "")
    files = {a["path"] for a in client.get(f"{API}/jobs/{job_id}/artifacts",
                                           headers=auth(tok)).json()["data"]}
    front = client.get(f"{API}/jobs/{job_id}/pareto", headers=auth(tok)).json()["data"]
    exported = {p.split("/")[1] for p in files if p.startswith("models/")}
    assert exported == {f"trial{t['trial_id']}" for t in front} | {
        f"trial{job['best']['trial_id']}"}
    onnx = next(p for p in files if p.startswith(f"models/trial{job['best']['trial_id']}/")
                and p.endswith(".onnx"))
    r = client.get(f"{API}/jobs/{job_id}/artifacts/{onnx}", headers=auth(tok))
    assert r.status_code == 200 and len(r.content) > 1000


def test_a_finished_job_leaves_the_planner_statistics_fresh(client, tokens, start_worker, db):
    """PostgreSQL: the sink vacuums and analyzes the job's tables before the job reads
    finished, so its first readers get index plans (autovacuum may be a minute away).
    SQLite: a no-op."""
    from sqlalchemy import text

    job_id = _submit(client, tokens["alice"], budget={"evaluations": 30})
    start_worker()
    wait_for(lambda: client.get(f"{API}/jobs/{job_id}", headers=auth(tokens["alice"]))
             .json()["status"] == "succeeded", 120)
    if db.sqlite:
        db.refresh_statistics(vacuum=True)  # nothing to do, and no error
        return

    def stats() -> dict[str, tuple]:
        with db.engine.connect() as conn:
            return {r[0]: (r[1], r[2]) for r in conn.execute(text(
                "SELECT relname, last_vacuum, last_analyze FROM pg_stat_user_tables "
                "WHERE schemaname = current_schema()"))}

    done = wait_for(lambda: (s := stats()) and all(
        s.get(t, (None, None))[0] is not None and s[t][1] is not None
        for t in ("jobs", "trials", "trial_metrics", "hypervolume_points")) and s, 20)
    assert done["trials"][0] is not None
