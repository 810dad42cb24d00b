"""The one owner of a job's status: every status change is made here, checked against
``TRANSITIONS`` and, for a worker, against its lease.

Statuses: ``queued -> running -> succeeded | failed | cancelled | exhausted``; a queued job
can also be cancelled before it starts; a running job can go back to the queue (its worker
shuts down or cannot reach Ray) or be taken over by another worker once its lease ran out
(``running -> running``, with ``attempts`` bumped). Finished statuses are terminal.

A worker's lease is ``(worker_id, attempts)`` (``service.queue.Claim``). Every write a worker
makes to its job row is conditional on both; a write that matches no row raises ``LeaseLost``
when another worker holds the job, or ``InvalidTransition`` (409 at the API) when the job's
status does not allow the change. Progress writes that change no status (trial counters,
checkpoints) go through ``update_owned``, which refuses a ``status`` value.

Every function takes the caller's session or connection, so a status change commits in the
same transaction as what goes with it (the sink's final counters and history).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any, Protocol

from sqlalchemy import and_, or_, select, update

from service.core.errors import InvalidTransition, JobNotFound, LeaseLost
from service.models import Job, JobStatus, utcnow

Q, R = JobStatus.QUEUED, JobStatus.RUNNING
TRANSITIONS: dict[JobStatus, frozenset[JobStatus]] = {
    Q: frozenset({R, JobStatus.CANCELLED}),
    R: frozenset({R, Q, JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
                  JobStatus.EXHAUSTED}),
    JobStatus.SUCCEEDED: frozenset(),
    JobStatus.FAILED: frozenset(),
    JobStatus.CANCELLED: frozenset(),
    JobStatus.EXHAUSTED: frozenset(),
}
JOBS = Job.__table__


class Executes(Protocol):
    """A SQLAlchemy ``Session`` or ``Connection``."""

    def execute(self, statement: Any, *args: Any, **kwargs: Any) -> Any: ...


def allowed(current: JobStatus | str, target: JobStatus | str) -> bool:
    return JobStatus(target) in TRANSITIONS[JobStatus(current)]


def check(current: JobStatus | str, target: JobStatus | str, job_id: str = "") -> None:
    """Raise ``InvalidTransition`` unless the table allows ``current -> target``."""
    if not allowed(current, target):
        raise InvalidTransition(f"job {job_id[:100]!r} is {JobStatus(current).value}; it cannot "
                                f"become {JobStatus(target).value}")


def sources(target: JobStatus) -> list[str]:
    """The statuses the table lets become ``target``."""
    return [s.value for s, targets in TRANSITIONS.items() if target in targets]


def _owned(lease: Any) -> Any:
    return and_(JOBS.c.id == lease.job_id, JOBS.c.worker_id == lease.worker_id,
                JOBS.c.attempts == lease.attempt)


def _refused(conn: Executes, job_id: str, target: JobStatus, lease: Any | None) -> Exception:
    """Why a conditional write matched no row: the lease or the status."""
    row = conn.execute(select(JOBS.c.status, JOBS.c.worker_id, JOBS.c.attempts)
                       .where(JOBS.c.id == job_id)).first()
    if row is None:
        return LeaseLost(f"job {job_id} no longer exists") if lease else JobNotFound(job_id)
    if lease is not None and (row.worker_id != lease.worker_id
                              or row.attempts != lease.attempt):
        return LeaseLost(f"job {job_id} was claimed by another worker (attempt "
                         f"{row.attempts}, this worker held attempt {lease.attempt})")
    return InvalidTransition(f"job {job_id[:100]!r} is {row.status}; it cannot become "
                             f"{target.value}")


def transition(conn: Executes, job_id: str, target: JobStatus, *, lease: Any | None = None,
               **values: Any) -> None:
    """Move the job to ``target`` (with ``values`` in the same write) if the table allows it
    from its current status and, given a ``lease``, only while that lease holds."""
    target = JobStatus(target)
    cond = and_(JOBS.c.id == job_id, JOBS.c.status.in_(sources(target)))
    if lease is not None:
        cond = and_(cond, _owned(lease))
    now = utcnow()
    values.setdefault("updated_at", now)
    if target.finished:
        values.setdefault("finished_at", now)
    result = conn.execute(update(JOBS).where(cond).values(status=target.value, **values))
    if not result.rowcount:
        raise _refused(conn, job_id, target, lease)


def finish(conn: Executes, lease: Any, status: JobStatus | str, reason: str | None,
           **values: Any) -> None:
    """End the worker's running job; ``LeaseLost`` if another worker holds it now."""
    status = JobStatus(status)
    if not status.finished:
        raise InvalidTransition(f"{status.value} is not a finished status")
    transition(conn, lease.job_id, status, lease=lease, reason=reason, **values)


def release(conn: Executes, lease: Any) -> None:
    """Hand a running job back to the queue (clean shutdown); ``LeaseLost`` if not ours."""
    transition(conn, lease.job_id, Q, lease=lease, worker_id=None, heartbeat_at=None)


def cancel(conn: Executes, job: Job) -> None:
    """A user's cancel: a queued job ends now; a running one is flagged and its worker ends
    it (``cancelled``) at the next batch; anything else is ``InvalidTransition``."""
    if job.status == Q:
        transition(conn, job.id, JobStatus.CANCELLED,
                   reason="cancelled by request before it started")
    elif job.status == R:
        conn.execute(update(JOBS).where(JOBS.c.id == job.id, JOBS.c.status == R.value)
                     .values(cancel_requested=True, updated_at=utcnow()))
    else:
        check(job.status, JobStatus.CANCELLED, job.id)


def update_owned(conn: Executes, lease: Any, **values: Any) -> None:
    """Write progress to the worker's job row while its lease holds (no status change)."""
    if "status" in values:
        raise ValueError("status changes go through jobstate.transition")
    result = conn.execute(update(JOBS).where(_owned(lease)).values(**values))
    if not result.rowcount:
        raise LeaseLost(f"job {lease.job_id} was claimed by another worker")


def claim_next(conn: Executes, worker_id: str, lease_s: float, *,
               skip_locked: bool) -> tuple[str, int, Any] | None:
    """Take the oldest claimable job (``queued -> running``, or ``running -> running`` once
    another worker's lease ran out) in one conditional ``UPDATE``; ``(job id, attempts,
    started_at)`` or None. ``skip_locked``: PostgreSQL's ``FOR UPDATE SKIP LOCKED``."""
    assert R in TRANSITIONS[Q] and R in TRANSITIONS[R]
    now = utcnow()
    stale = now - timedelta(seconds=lease_s)
    claimable = or_(
        JOBS.c.status == Q.value,
        and_(JOBS.c.status == R.value, JOBS.c.heartbeat_at < stale,
             or_(JOBS.c.worker_id.is_(None), JOBS.c.worker_id != worker_id)),
    )
    inner = select(JOBS.c.id).where(claimable).order_by(JOBS.c.created_at, JOBS.c.id).limit(1)
    if skip_locked:
        inner = inner.with_for_update(skip_locked=True)
    row = conn.execute(
        update(JOBS).where(JOBS.c.id == inner.scalar_subquery(), claimable)
        .values(status=R.value, worker_id=worker_id, heartbeat_at=now, updated_at=now,
                attempts=JOBS.c.attempts + 1)
        .returning(JOBS.c.id, JOBS.c.attempts, JOBS.c.started_at)).first()
    if row is None:
        return None
    if row.started_at is None:
        conn.execute(update(JOBS).where(JOBS.c.id == row.id).values(started_at=now))
    return row.id, int(row.attempts), row.started_at
