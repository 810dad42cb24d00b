"""The SQL result sink: the search loop's events become committed rows.

Each trial is one transaction: the trial row, the job's progress counters, the front flags
it changed and a new hypervolume point commit together, so a crash never leaves counters and
rows out of step (written through ``service.fastpath``: it is the hot path). Every write is
fenced by the job's ``(worker_id, attempts)``: a worker whose lease was taken over gets
``LeaseLost`` and writes nothing more (no duplicate trials). Best trial, front flags and
hypervolume come from ``search.trials.Standing`` (the loop's own definition); the job's end
status is written by ``service.jobstate``, the one owner of status changes.
Checkpoints are pickled into their own table after each batch (steady mode: each round, with
the trials in flight); trials committed after the last checkpoint are handed back to the loop
on resume, which replays them.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, insert, select, update

from agents.base import TrialState
from search.executors import EvalOutcome, EvalTask, Executor
from search.sinks import ResultSink, TrialRecord
from search.spec import JobSpec
from search.trials import Change, HvReference, Standing
from service import jobstate
from service.artifacts import job_dir, store_trial_artifacts
from service.core.db import Database
from service.core.errors import LeaseLost
from service.fastpath import RawWriter
from service.models import Checkpoint, Job, Trial, utcnow
from service.queue import Claim

log = logging.getLogger(__name__)

JOBS, CHECKPOINTS = Job.__table__, Checkpoint.__table__
CANCEL_SELECT = select(JOBS.c.cancel_requested, JOBS.c.worker_id, JOBS.c.attempts).where(
    JOBS.c.id == bindparam("_job"))


class WorkerShutdown(Exception):
    """The worker is stopping cleanly: the job goes back to the queue, unfinished."""


def record_from_row(row: Trial, artifact_root: Path) -> TrialRecord:
    base = job_dir(artifact_root, row.job_id)
    return TrialRecord(
        trial_id=row.trial_id, arch=dict(row.arch), arch_key=row.arch_key,
        state=TrialState(row.state), reward=row.reward, metrics=dict(row.metrics),
        recorded=dict(row.recorded), info=dict(row.info), error=row.error, cached=row.cached,
        evaluation_index=row.evaluation_index, duration_s=row.duration_s, node=row.node,
        artifacts={k: str(base / v) for k, v in row.artifacts.items() if v},
    )


def load_resume(db: Database, job_id: str,
                artifact_root: Path) -> tuple[dict[str, Any] | None, list[TrialRecord]]:
    """The last checkpoint (unpickled) and every stored trial of a job."""
    with db.reading() as session:
        ck = session.get(Checkpoint, job_id)
        rows = session.scalars(select(Trial).where(Trial.job_id == job_id)
                               .order_by(Trial.trial_id)).all()
        state = pickle.loads(ck.state) if ck is not None else None
        return state, [record_from_row(r, artifact_root) for r in rows]


def stored_reference(db: Database, job_id: str) -> HvReference | None:
    """The hypervolume reference point the job row holds (None before it was fixed)."""
    with db.reading() as session:
        row = session.execute(select(JOBS.c.hv_reference, JOBS.c.hv_reference_source,
                                     JOBS.c.hv_true_front).where(JOBS.c.id == job_id)).first()
    if row is None or row.hv_reference is None:
        return None
    return HvReference(tuple(row.hv_reference), row.hv_reference_source or "",
                       row.hv_true_front)


class SqlSink(ResultSink):
    """Stores one job's trials, checkpoints and end state; built per attempt."""

    def __init__(self, db: Database, claim: Claim, spec: JobSpec, *, artifact_root: Path,
                 stored: Sequence[TrialRecord] = (), cancel_poll_s: float = 0.25,
                 shutdown: threading.Event | None = None,
                 write_results: bool = False) -> None:
        self.db = db
        self.claim = claim
        self.spec = spec
        self.artifact_root = artifact_root
        self.cancel_poll_s = cancel_poll_s
        self.shutdown = shutdown or threading.Event()
        self.write_results = write_results
        self.records: dict[int, TrialRecord] = {r.trial_id: r for r in stored}
        # Announced by the loop (on_reference); until then, the one stored with the job.
        self.reference = stored_reference(db, claim.job_id)
        self._cancel = False
        self._lease_lost = False
        self._last_poll = 0.0
        self.elapsed_s = 0.0
        self._writer: RawWriter | None = None
        self._recount()

    # ---- in-memory state, rebuilt from the records when needed -----------------------------
    def _recount(self) -> None:
        self.standing = Standing(self.spec.objectives, self.reference)
        self.front_flags: dict[int, bool] = {}
        self.n_complete = self.n_failed = self.n_cached = self.evaluations = 0
        for rec in sorted(self.records.values(), key=lambda r: r.trial_id):
            self._count(rec)
            self._flag(rec.trial_id, self.standing.add(rec))

    def _count(self, rec: TrialRecord) -> None:
        self.n_complete += rec.state is TrialState.COMPLETE and not rec.cached
        self.n_failed += rec.state is TrialState.FAILED
        self.n_cached += rec.cached
        if rec.evaluation_index is not None:
            self.evaluations = max(self.evaluations, rec.evaluation_index)

    def _flag(self, trial_id: int, change: Change) -> None:
        self.front_flags[trial_id] = change.on_front
        for t in change.dropped:
            self.front_flags[t] = False

    def _job_values(self) -> dict[str, Any]:
        best, ref = self.standing.best, self.standing.reference
        return {
            "n_trials": len(self.records), "n_complete": self.n_complete,
            "n_failed": self.n_failed, "n_cached": self.n_cached,
            "evaluations": self.evaluations,
            "best_trial_id": best.trial_id if best else None,
            "best_reward": best.reward if best else None,
            "hypervolume": self.standing.hypervolume,
            "hv_reference": list(ref.point) if ref else None,
            "hv_reference_source": ref.source if ref else None,
            "hv_true_front": ref.true_front if ref else None,
            "updated_at": utcnow(),
        }

    def _fence(self, conn: Any, **values: Any) -> None:
        """Update the job row only while this worker still owns it."""
        try:
            jobstate.update_owned(conn, self.claim, **values)
        except LeaseLost:
            self._lease_lost = True
            raise

    # ---- sink hooks ------------------------------------------------------------------------
    def on_trial(self, record: TrialRecord) -> None:
        stored_artifacts = store_trial_artifacts(self.artifact_root, self.claim.job_id,
                                                 record.trial_id, dict(record.artifacts))
        replacing = record.trial_id in self.records
        self.records[record.trial_id] = record
        if replacing:  # a trial stored before a crash that the resumed loop ran again
            self._recount()
            change = None
        else:
            self._count(record)
            change = self.standing.add(record)
            self._flag(record.trial_id, change)
        row = self._row(record, stored_artifacts)
        job_id = self.claim.job_id
        with self.writer.transaction() as tx:
            self._update_job(tx)
            if replacing:
                tx.delete_trial(job_id, record.trial_id)
            tx.insert_trial(row)
            if change is None:
                self._rewrite_front(tx)
            else:
                if change.dropped:
                    tx.set_front(job_id, change.dropped, False)
                if change.hv_point is not None:
                    tx.insert_points(self._points([change.hv_point]))

    def on_reference(self, reference: HvReference) -> None:
        """The loop fixed the job's reference point (or announces it again on a resume): the
        hypervolume history is rebuilt against it if it differs from the one held."""
        if reference == self.standing.reference:
            return
        self.reference = reference
        self._recount()
        with self.writer.transaction() as tx:
            self._update_job(tx)
            self._rewrite_front(tx)

    def _update_job(self, tx: Any) -> None:
        c = self.claim
        if not tx.update_job(c.job_id, c.worker_id, c.attempt, self._job_values()):
            self._lease_lost = True
            raise LeaseLost(f"job {c.job_id} was claimed by another worker")

    def _rewrite_front(self, tx: Any) -> None:
        job_id = self.claim.job_id
        tx.clear_front(job_id)
        tx.set_front(job_id, [t for t, on in self.front_flags.items() if on], True)
        tx.replace_points(job_id, self._points(self.standing.hv_history))

    def _points(self, points: list[tuple[int, int, float]]) -> list[dict[str, Any]]:
        now = utcnow()
        return [{"job_id": self.claim.job_id, "trial_id": t, "evaluations": e, "value": v,
                 "created_at": now} for t, e, v in points]

    def close(self) -> None:
        """Return the raw connection to the pool (the job's thread is done)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    @property
    def writer(self) -> RawWriter:
        if self._writer is None:
            self._writer = RawWriter(self.db.engine)
        return self._writer

    def _row(self, rec: TrialRecord, artifacts: dict[str, str]) -> dict[str, Any]:
        return {
            "job_id": self.claim.job_id, "trial_id": rec.trial_id, "arch": dict(rec.arch),
            "arch_key": rec.arch_key, "state": TrialState(rec.state).value,
            "reward": rec.reward, "metrics": dict(rec.metrics), "recorded": dict(rec.recorded),
            "info": dict(rec.info), "error": rec.error, "cached": bool(rec.cached),
            "evaluation_index": rec.evaluation_index, "duration_s": float(rec.duration_s),
            "node": rec.node, "artifacts": artifacts,
            "on_front": self.front_flags.get(rec.trial_id, False), "created_at": utcnow(),
        }

    def on_checkpoint(self, state: dict[str, Any]) -> None:
        blob = pickle.dumps(state, protocol=pickle.HIGHEST_PROTOCOL)
        last = int(state.get("last_trial_id", -1))
        self.elapsed_s = float(state.get("elapsed_s", self.elapsed_s))
        now = utcnow()
        with self.db.writer.begin() as conn:
            self._fence(conn, checkpoint_trial_id=last, updated_at=now)
            result = conn.execute(
                update(CHECKPOINTS).where(CHECKPOINTS.c.job_id == self.claim.job_id)
                .values(state=blob, last_trial_id=last, updated_at=now))
            if not result.rowcount:
                conn.execute(insert(CHECKPOINTS), {"job_id": self.claim.job_id, "state": blob,
                                                   "last_trial_id": last, "updated_at": now})

    def on_end(self, status: str, reason: str | None = None) -> None:
        self.check_owner()  # a shutdown or a lost lease is not the user's 'cancelled'
        if self.write_results:
            reason = self._finalize(status, reason)
        self._refresh_statistics(vacuum=False)  # sampled: cheap at any table size
        with self.db.writer.begin() as conn:
            try:
                jobstate.finish(conn, self.claim, status, reason, **self._job_values())
            except LeaseLost:
                self._lease_lost = True
                raise
        self._refresh_statistics(vacuum=True)  # after: its cost grows with the tables

    def _refresh_statistics(self, *, vacuum: bool) -> None:
        """PostgreSQL: the planner learns of the rows this job stored before the job reads
        finished (readers arrive the moment it does, autovacuum may be a minute away); the
        vacuum that lets trial pages come from the index alone follows."""
        try:
            self.db.refresh_statistics(vacuum=vacuum)
        except Exception:  # noqa: BLE001 - only speed depends on it
            log.warning("job %s: refreshing planner statistics failed", self.claim.job_id,
                        exc_info=True)

    def _finalize(self, status: str, reason: str | None) -> str | None:
        """The shared post-search step (``search.finalize``): ``results.json`` and, for a
        job that succeeded, the deployable models under ``models/`` in the job folder,
        before the job reads finished. Returns the job's reason (an export failure noted)."""
        from search.finalize import finalize

        folder = job_dir(self.artifact_root, self.claim.job_id)
        return finalize(self.spec, list(self.records.values()), status=status, reason=reason,
                        elapsed_s=self.elapsed_s, results_path=folder / "results.json",
                        models_dir=folder / "models", reference=self.standing.reference).reason

    def device_link(self) -> Any:
        """Remote devices, with the rights of the job's owner (``remote:`` profilers)."""
        from service.devices.link import DbDeviceLink

        return DbDeviceLink.for_job(self.db, self.claim.job_id)

    def should_stop(self) -> bool:
        """Cancel flag, re-read at most every ``cancel_poll_s`` (the loop polls often)."""
        if self.shutdown.is_set() or self._lease_lost:
            return True
        now = time.monotonic()
        if now - self._last_poll >= self.cancel_poll_s:
            self._last_poll = now
            c = self.claim
            with self.db.engine.connect() as conn:
                row = conn.execute(CANCEL_SELECT, {"_job": c.job_id}).first()
            if row is None or row.worker_id != c.worker_id or row.attempts != c.attempt:
                self._lease_lost = True
                return True
            self._cancel = bool(row.cancel_requested)
        return self._cancel

    def check_owner(self) -> None:
        """Raise if the loop stopped for a reason other than a user's cancel."""
        if self._lease_lost:
            raise LeaseLost(f"job {self.claim.job_id} was claimed by another worker")
        if self.shutdown.is_set():
            raise WorkerShutdown("worker shutting down")

    def on_tasks(self, count: int) -> None:
        with self.db.writer.begin() as conn:
            self._fence(conn, tasks_started=JOBS.c.tasks_started + count, updated_at=utcnow())


class TrackedExecutor(Executor):
    """Wraps the job's executor (batch or steady mode): counts tasks handed out (re-runs show
    up as extra tasks) and turns a lost lease or a worker shutdown into an exception after
    in-flight tasks were cancelled, instead of a user's 'cancelled'."""

    def __init__(self, inner: Executor, sink: SqlSink) -> None:
        self.inner = inner
        self.sink = sink
        self.name = inner.name

    def run(self, evaluator: Any, space: Any, tasks: Sequence[EvalTask],
            should_stop: Callable[[], bool] | None = None) -> list[EvalOutcome]:
        self.sink.check_owner()
        if tasks:
            self.sink.on_tasks(len(tasks))
        outcomes = self.inner.run(evaluator, space, tasks, should_stop=should_stop)
        self.sink.check_owner()
        return outcomes

    def submit(self, evaluator: Any, space: Any, tasks: Sequence[EvalTask]) -> None:
        self.sink.check_owner()
        if tasks:
            self.sink.on_tasks(len(tasks))
        self.inner.submit(evaluator, space, tasks)

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        outcomes = self.inner.wait(timeout)
        self.sink.check_owner()
        return outcomes

    def cancel(self) -> list[EvalOutcome]:
        outcomes = self.inner.cancel()
        self.sink.check_owner()
        return outcomes

    def close(self) -> None:
        self.inner.close()
