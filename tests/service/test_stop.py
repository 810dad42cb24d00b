"""Clean stops with real processes: SIGTERM (or a terminal's Ctrl+C) on ``lightsearch serve``
hands running jobs back to the queue at once, exits without Ray's stack dumps, and the next
start resumes them. The lease is long (60 s), so a job handed back late would show."""

from __future__ import annotations

import os
import signal
import time

import pytest
from sqlalchemy import create_engine, text

from tests.service.conftest import free_port, job_spec, wait_for
from tests.service.proc import Server

FINISHED = ("succeeded", "failed", "cancelled", "exhausted")
#: What the issue saw on Ctrl+C: Ray's C++ stack dump and a dead Ray under a job thread.
NOISE = ("SIGTERM received", "PC: @", "internal_kv_get", "Traceback")


def _status(engine, job_id: str) -> str:
    with engine.connect() as conn:
        return conn.execute(text("SELECT status FROM jobs WHERE id = :i"), {"i": job_id}).scalar()


def _stop_and_resume(tmp_path, database_url: str | None, executor: str, send) -> None:
    data = tmp_path / "data"
    env = {"LIGHTSEARCH_LEASE_S": "60"}
    if database_url:
        env["LIGHTSEARCH_DATABASE_URL"] = database_url
    server = Server(data, free_port(), **env)
    spec = job_spec(name="stop", evaluator={"name": "svc-slow", "options": {"delay_s": 0.1}},
                    budget={"evaluations": 40}, executor={"name": executor, "batch_size": 2})
    engine = create_engine(database_url or f"sqlite:///{data / 'lightsearch.db'}")
    try:
        server.start()
        with server.client() as http:
            job_id = http.post("/jobs", json=spec).json()["id"]
            wait_for(lambda: http.get(f"/jobs/{job_id}").json()["progress"]["trials"] >= 6,
                     180, 0.1)
        assert _status(engine, job_id) == "running"
        signalled = time.monotonic()
        send(server.proc)
        wait_for(lambda: _status(engine, job_id) == "queued", 10, 0.05)
        handed_back_s = time.monotonic() - signalled
        assert server.proc.wait(60) == 0
        log = server.log.read_text()
        assert not [n for n in NOISE if n in log], log[-3000:]
        assert handed_back_s < 10  # not the 60 s lease

        server.start()
        with server.client() as http:
            job = wait_for(lambda: (j := http.get(f"/jobs/{job_id}").json())["status"]
                           in FINISHED and j, 240, 0.2)
            trials = http.get(f"/jobs/{job_id}/trials", params={"limit": 1000}).json()["data"]
    finally:
        server.stop()
        engine.dispose()
    assert job["status"] == "succeeded", job["reason"]
    assert job["resumed"] == 1 and job["attempts"] == 2
    assert job["progress"]["evaluations"] == 40
    assert sorted(t["trial_id"] for t in trials) == list(range(len(trials)))


def _sigterm(proc) -> None:
    proc.send_signal(signal.SIGTERM)


def _ctrl_c(proc) -> None:
    """A terminal's Ctrl+C: SIGINT to the whole process group (API, worker, local Ray)."""
    os.killpg(proc.pid, signal.SIGINT)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_sigterm_hands_jobs_back_and_restart_resumes(tmp_path, backend, request):
    url = request.getfixturevalue("pg_url") if backend == "postgresql" else None
    _stop_and_resume(tmp_path, url, "local", _sigterm)


@pytest.mark.slow
@pytest.mark.ray
def test_ctrl_c_with_a_local_ray_is_quiet_and_hands_jobs_back(tmp_path):
    _stop_and_resume(tmp_path, None, "ray", _ctrl_c)
