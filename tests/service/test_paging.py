"""Trial pages (ids from an index, then rows) against the full list sorted in Python, and the
response cache while trials arrive: an answer is never older than the job row read before
it. SQLite and PostgreSQL."""

from __future__ import annotations

import math
import time

from tests.service.conftest import auth, job_spec, wait_for

API = "/api/v1"
FAIL_OPS = ["none", "skip_connect"]


def _spec(evaluations: int, delay_s: float = 0.0) -> dict:
    return job_spec(evaluator={"name": "svc-slow",
                               "options": {"delay_s": delay_s, "fail_ops": FAIL_OPS}},
                    budget={"evaluations": evaluations, "max_failures": 1000})


def _expected(trials: list[dict], sort: str, order: str, state: str | None) -> list[int]:
    rows = [t for t in trials if state is None or t["state"] == state]
    desc = order == "desc"
    if sort in ("trial_id", "reward", "duration_s", "evaluation_index"):
        some = sorted((t for t in rows if t[sort] is not None),
                      key=lambda t: (t[sort], t["trial_id"]), reverse=desc)
        return [t["trial_id"] for t in some] + sorted(
            (t["trial_id"] for t in rows if t[sort] is None), reverse=desc)
    has = [t for t in rows if t["metrics"].get(sort) is not None]
    has.sort(key=lambda t: (t["metrics"][sort], t["trial_id"]), reverse=desc)
    rest = sorted(t["trial_id"] for t in rows if t["metrics"].get(sort) is None)
    return [t["trial_id"] for t in has] + rest


def test_pages_match_a_full_sort(client, tokens, start_worker):
    h = auth(tokens["alice"])
    job = client.post(f"{API}/jobs", json=_spec(60), headers=h).json()
    start_worker()
    wait_for(lambda: client.get(f"{API}/jobs/{job['id']}", headers=h).json()["status"]
             == "succeeded", 120)
    base = f"{API}/jobs/{job['id']}/trials"
    everything = client.get(base, params={"limit": 1000}, headers=h).json()
    trials = everything["data"]
    assert everything["count"] == len(trials) >= 60
    states = {t["state"] for t in trials}
    assert {"complete", "failed"} <= states  # so metric sorts have trials without the metric
    for sort in ("trial_id", "reward", "evaluation_index", "pixel3_latency", "val_acc"):
        for order in ("asc", "desc"):
            for state in (None, "complete", "failed"):
                want = _expected(trials, sort, order, state)
                got: list[int] = []
                for offset in range(0, len(want) + 7, 7):
                    params = {"limit": 7, "offset": offset, "sort": sort, "order": order}
                    if state:
                        params["state"] = state
                    page = client.get(base, params=params, headers=h).json()
                    assert page["count"] == len(want), (sort, order, state)
                    got += [t["trial_id"] for t in page["data"]]
                assert got == want, (sort, order, state)


def test_cached_answers_never_lag_the_database(client, db, tokens, start_worker):
    """Count the stored trials in the database, then ask each cached route: the answer
    holds at least those, while a worker stores trials between the requests."""
    from sqlalchemy import func, select

    from service.models import Trial

    h = auth(tokens["alice"])
    job = client.post(f"{API}/jobs", json=_spec(40, delay_s=0.02), headers=h).json()
    base = f"{API}/jobs/{job['id']}"

    def stored() -> int:
        with db.reading() as session:
            return int(session.scalar(select(func.count()).select_from(Trial)
                                      .where(Trial.job_id == job["id"])) or 0)

    start_worker()
    seen = set()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        n = stored()
        row = client.get(base, headers=h).json()
        assert row["progress"]["trials"] >= n
        n = stored()
        page = client.get(f"{base}/trials", params={"limit": 1000}, headers=h).json()
        assert page["count"] >= n and len(page["data"]) >= n
        if row["progress"]["complete"]:
            front = client.get(f"{base}/pareto", headers=h).json()
            assert front["count"] >= 1, "an empty front outlived a complete trial"
        seen.add(n)
        if row["status"] == "succeeded":
            break
    assert row["status"] == "succeeded", "the job route never showed the job's end"
    assert len(seen) > 3  # the loop really raced the worker
    final = client.get(base, headers=h).json()
    hv = client.get(f"{base}/hypervolume", headers=h).json()
    assert math.isclose(hv["data"][-1]["value"], final["hypervolume"])
    assert client.get(f"{base}/trials", params={"limit": 1000},
                      headers=h).json()["count"] == final["progress"]["trials"] == stored()
