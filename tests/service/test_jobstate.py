"""service/jobstate.py is the one owner of job status: every transition the table does not
allow is refused (the row stays as it was), and a worker that lost its lease finds out when it
tries to finish the job, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update

from search.spec import parse_spec
from service import crud, jobstate
from service.core.errors import InvalidTransition, LeaseLost
from service.core.security import Principal
from service.models import Job, JobStatus, utcnow
from service.queue import Claim, claim_job, release
from service.worker import Worker
from tests.service.conftest import auth

STATUSES = list(JobStatus)
ILLEGAL = [(a, b) for a in STATUSES for b in STATUSES if b not in jobstate.TRANSITIONS[a]]
LEGAL = [(a, b) for a in STATUSES for b in STATUSES if b in jobstate.TRANSITIONS[a]]


def _job(db: Any, status: JobStatus = JobStatus.QUEUED, *, worker: str | None = "w1",
         attempts: int = 1) -> str:
    with db.write_session() as session:
        user, _ = crud.create_token(session, "state-user")
        job = crud.create_job(session, Principal(user.id, user.name), parse_spec({}))
        session.execute(update(Job).where(Job.id == job.id).values(
            status=status.value, worker_id=worker, attempts=attempts, heartbeat_at=utcnow()))
        session.commit()
        return job.id


def _row(db: Any, job_id: str) -> tuple[str, str | None, int, str | None]:
    with db.reading() as session:
        job = session.get(Job, job_id)
        return job.status, job.worker_id, job.attempts, job.reason


def test_the_table() -> None:
    finished = [s for s in STATUSES if s.finished]
    assert set(finished) == {JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
                             JobStatus.EXHAUSTED}
    assert all(not jobstate.TRANSITIONS[s] for s in finished)  # terminal
    assert JobStatus.EXHAUSTED in jobstate.TRANSITIONS[JobStatus.RUNNING]
    assert len(ILLEGAL) == 4 + 6 * 4  # queued -> queued/succeeded/failed/exhausted; terminal
    for current, target in ILLEGAL:
        with pytest.raises(InvalidTransition, match=f"is {current.value}"):
            jobstate.check(current, target)


def test_every_illegal_transition_is_refused_and_changes_nothing(db: Any) -> None:
    for current, target in ILLEGAL:
        job_id = _job(db, current)
        before = _row(db, job_id)
        for lease in (None, Claim(job_id, 1, "w1", False)):
            with pytest.raises(InvalidTransition, match=f"is {current.value}.*{target.value}"):
                with db.writing() as session:
                    jobstate.transition(session, job_id, target, lease=lease, reason="no")
            assert _row(db, job_id) == before


def test_every_legal_transition_is_made(db: Any) -> None:
    for current, target in LEGAL:
        job_id = _job(db, current)
        with db.writing() as session:
            jobstate.transition(session, job_id, target, lease=Claim(job_id, 1, "w1", False))
        assert _row(db, job_id)[0] == target.value
        with db.reading() as session:
            assert (session.get(Job, job_id).finished_at is not None) == target.finished


def test_a_lost_lease_is_detected_at_finish(db: Any, settings: Any) -> None:
    job_id = _job(db, worker=None, attempts=0)
    old = claim_job(db, "worker-a", lease_s=60)
    assert old is not None and old.job_id == job_id
    with db.writing() as session:  # worker-a stops sending heartbeats...
        session.execute(update(Job).where(Job.id == job_id).values(
            heartbeat_at=utcnow() - timedelta(seconds=120)))
    new = claim_job(db, "worker-b", lease_s=60)  # ... and worker-b takes the job over
    assert new is not None and new.attempt == old.attempt + 1
    with pytest.raises(LeaseLost, match="claimed by another worker"):
        with db.writing() as session:
            jobstate.finish(session, old, JobStatus.FAILED, "worker-a's late verdict")
    with pytest.raises(LeaseLost):
        with db.writing() as session:
            jobstate.update_owned(session, old, executor="local")
    # The worker's own finish reports it (and writes nothing) instead of overwriting.
    assert Worker(settings, db, worker_id="worker-a")._finish(
        old, JobStatus.FAILED, "worker-a's late verdict") is False
    assert release(db, old) is False
    assert _row(db, job_id) == ("running", "worker-b", new.attempt, None)
    with db.writing() as session:
        jobstate.finish(session, new, JobStatus.SUCCEEDED, "done")
    with pytest.raises(InvalidTransition, match="is succeeded"):  # finishing twice
        with db.writing() as session:
            jobstate.finish(session, new, JobStatus.FAILED, "again")
    assert _row(db, job_id) == ("succeeded", "worker-b", new.attempt, "done")


def test_status_goes_only_through_transitions(db: Any) -> None:
    job_id = _job(db, JobStatus.RUNNING)
    with pytest.raises(ValueError, match="jobstate.transition"):
        with db.writing() as session:
            jobstate.update_owned(session, Claim(job_id, 1, "w1", False), status="succeeded")
    with pytest.raises(InvalidTransition, match="not a finished status"):
        with db.writing() as session:
            jobstate.finish(session, Claim(job_id, 1, "w1", False), JobStatus.QUEUED, None)


def test_the_api_answers_409_for_a_refused_cancel(client: Any, db: Any,
                                                  tokens: dict[str, str]) -> None:
    h = auth(tokens["alice"])
    job = client.post("/api/v1/jobs", json={"name": "c", "budget": {"evaluations": 5}},
                      headers=h).json()
    first = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=h)
    assert first.status_code == 200 and first.json()["status"] == "cancelled"
    again = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=h)
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]
