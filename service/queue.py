"""The job queue: atomic claims, heartbeats and lease recovery, on SQLite and PostgreSQL.

A claim is one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1) RETURNING``. On PostgreSQL the
inner select takes ``FOR UPDATE SKIP LOCKED``, so concurrent claimers each lock a different
row and never wait on each other; on SQLite the write session's ``BEGIN IMMEDIATE`` makes the
whole statement run under the database write lock. The outer ``WHERE`` repeats the claimable
condition, so a row that changed between the two is left alone.

A running job belongs to the worker whose id is in ``worker_id`` for as long as it sends
heartbeats; once ``heartbeat_at`` is older than the lease, any worker may claim it again (the
old worker is taken for dead). Each claim bumps ``attempts``, which fences the old owner: its
writes check ``(worker_id, attempts)`` and stop with ``LeaseLost`` when they no longer match.
The status changes themselves (claim, hand-back) are made by ``service.jobstate``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update

from service import jobstate
from service.core.db import Database
from service.core.errors import InvalidTransition, LeaseLost
from service.models import Job, JobStatus, utcnow


@dataclass(frozen=True)
class Claim:
    """A job a worker now owns; ``attempt`` is its fencing token."""

    job_id: str
    attempt: int
    worker_id: str
    resumed: bool  # it was running under a worker that stopped sending heartbeats


def claim_job(db: Database, worker_id: str, lease_s: float) -> Claim | None:
    """Take the oldest queued job, or a running one whose lease ran out; None if none.

    A worker never re-claims its own running jobs: a late heartbeat of a live worker must
    not make it run a job twice (another worker may take it over, and fences it off)."""
    with db.writing() as session:
        row = jobstate.claim_next(session, worker_id, lease_s, skip_locked=not db.sqlite)
    if row is None:
        return None
    job_id, attempts, started_at = row
    return Claim(job_id, attempts, worker_id, resumed=started_at is not None)


def heartbeat(db: Database, claims: list[Claim]) -> set[str]:
    """Renew the leases of ``claims``; returns the ids of jobs this worker still owns."""
    if not claims:
        return set()
    now = utcnow()
    owned = set()
    with db.writing() as session:
        for c in claims:
            result = session.execute(
                update(Job)
                .where(Job.id == c.job_id, Job.worker_id == c.worker_id,
                       Job.attempts == c.attempt, Job.status == JobStatus.RUNNING.value)
                .values(heartbeat_at=now)
            )
            if result.rowcount:  # type: ignore[attr-defined]
                owned.add(c.job_id)
    return owned


def release(db: Database, claim: Claim) -> bool:
    """Give a running job back to the queue (the worker shuts down cleanly); False if the
    worker no longer owned it."""
    try:
        with db.writing() as session:
            jobstate.release(session, claim)
    except (LeaseLost, InvalidTransition):
        return False
    return True
