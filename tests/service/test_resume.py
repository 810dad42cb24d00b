"""Crash-safe resume with real processes: SIGKILL the server and its Ray mid-job, restart
(batch mode, and steady mode, where trials are always in flight)."""

from __future__ import annotations

import pytest

from tests.service.conftest import free_port, job_spec, wait_for
from tests.service.proc import Server, committed_trials

FINISHED = ("succeeded", "failed", "cancelled", "exhausted")


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["batch", "steady"])
def test_sigkill_mid_job_then_restart_loses_and_repeats_nothing(tmp_path, mode):
    data = tmp_path / "data"
    server = Server(data, free_port(), LIGHTSEARCH_LEASE_S="5", LIGHTSEARCH_EXECUTOR="ray")
    spec = job_spec(name="crash", agent={"name": "evolution",
                                        "options": {"population_size": 8}},
                    evaluator={"name": "svc-slow", "options": {"delay_s": 0.03}},
                    budget={"evaluations": 150},
                    executor={"name": "ray", "batch_size": 6, "mode": mode})
    kills = 0
    seen_before: dict[int, tuple] = {}
    try:
        server.start()
        with server.client() as http:
            job_id = http.post("/jobs", json=spec).json()["id"]
        for threshold in (25, 70):
            with server.client() as http:
                wait_for(lambda h=http, n=threshold:
                         h.get(f"/jobs/{job_id}").json()["progress"]["trials"] >= n, 180, 0.1)
            server.kill()
            kills += 1
            committed = committed_trials(data / "lightsearch.db", job_id)
            assert len(committed) >= threshold
            seen_before.update(committed)
            server.start()
        with server.client() as http:
            job = wait_for(lambda: (j := http.get(f"/jobs/{job_id}").json())["status"]
                           in FINISHED and j, 300, 0.2)
            trials = http.get(f"/jobs/{job_id}/trials", params={"limit": 1000}).json()
    finally:
        server.stop()
    assert kills == 2
    assert job["status"] == "succeeded", job["reason"]
    assert job["resumed"] == 2 and job["attempts"] == 3
    final = {t["trial_id"]: (t["arch_key"], t["reward"]) for t in trials["data"]}
    assert trials["count"] == len(final) == job["progress"]["trials"]
    # Every trial committed before a kill is still there, unchanged; none is stored twice.
    for trial_id, value in seen_before.items():
        assert final[trial_id] == value
    assert sorted(final) == list(range(len(final)))
    assert job["progress"]["evaluations"] == 150
    evaluated = sum(1 for t in trials["data"] if not t["cached"])
    assert job["progress"]["tasks_started"] >= evaluated  # in-flight trials ran again
