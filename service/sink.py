"""The SQL result sink: the search loop's events become committed rows.

Each trial is one transaction: the trial row, the job's progress counters, the front flags
it changed and a new hypervolume point commit together, so a crash never leaves counters and
rows out of step (written through ``service.fastpath``: it is the hot path). Every write is
fenced by the job's ``(worker_id, attempts)``: a worker
whose lease was taken over gets ``LeaseLost`` and writes nothing more (no duplicate trials).
Checkpoints are pickled into their own table after each batch; trials committed after the
last checkpoint are handed back to the loop on resume, which replays them.
"""

from __future__ import annotations

import logging
import pickle
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import and_, bindparam, delete, insert, select, update

from agents.base import TrialState
from search.executors import EvalOutcome, EvalTask, Executor
from search.sinks import ResultSink, TrialRecord
from search.spec import JobSpec
from service.artifacts import job_dir, store_trial_artifacts, write_job_file
from service.core.db import Database
from service.core.errors import LeaseLost
from service.fastpath import RawWriter
from service.frontier import Change, Frontier
from service.models import Checkpoint, HypervolumePoint, Job, Trial, utcnow
from service.queue import Claim

log = logging.getLogger(__name__)

JOBS, TRIALS, POINTS, CHECKPOINTS = (Job.__table__, Trial.__table__,
                                     HypervolumePoint.__table__, Checkpoint.__table__)
_OWNED = and_(JOBS.c.id == bindparam("_job"), JOBS.c.worker_id == bindparam("_worker"),
              JOBS.c.attempts == bindparam("_attempt"))
CANCEL_SELECT = select(JOBS.c.cancel_requested, JOBS.c.worker_id, JOBS.c.attempts).where(
    JOBS.c.id == bindparam("_job"))


ResultsWriter = Callable[[list[TrialRecord], str, str | None, float], str]


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


class SqlSink(ResultSink):
    """Stores one job's trials, checkpoints and end state; built per attempt."""

    def __init__(self, db: Database, claim: Claim, spec: JobSpec, *, artifact_root: Path,
                 stored: Sequence[TrialRecord] = (), cancel_poll_s: float = 0.25,
                 shutdown: threading.Event | None = None,
                 results_writer: ResultsWriter | None = None) -> None:
        self.db = db
        self.claim = claim
        self.spec = spec
        self.artifact_root = artifact_root
        self.cancel_poll_s = cancel_poll_s
        self.shutdown = shutdown or threading.Event()
        self.results_writer = results_writer
        self.records: dict[int, TrialRecord] = {r.trial_id: r for r in stored}
        self._cancel = False
        self._lease_lost = False
        self._last_poll = 0.0
        self.elapsed_s = 0.0
        self._writer: RawWriter | None = None
        self._recount()

    # ---- in-memory state, rebuilt from the records when needed -----------------------------
    def _recount(self) -> None:
        self.frontier = Frontier(self.spec.objectives)
        self.front_flags: dict[int, bool] = {}
        self.best: TrialRecord | None = None
        self.n_complete = self.n_failed = self.n_cached = self.evaluations = 0
        for rec in sorted(self.records.values(), key=lambda r: r.trial_id):
            self._count(rec)
            change = self._front_add(rec)
            self.front_flags[rec.trial_id] = change.on_front
            for t in change.dropped:
                self.front_flags[t] = False

    def _count(self, rec: TrialRecord) -> None:
        self.n_complete += rec.state is TrialState.COMPLETE and not rec.cached
        self.n_failed += rec.state is TrialState.FAILED
        self.n_cached += rec.cached
        if rec.evaluation_index is not None:
            self.evaluations = max(self.evaluations, rec.evaluation_index)
        if rec.state is TrialState.COMPLETE and rec.reward is not None and (
            self.best is None or rec.reward > (self.best.reward or float("-inf"))
        ):
            self.best = rec

    def _front_add(self, rec: TrialRecord) -> Change:
        if rec.state is not TrialState.COMPLETE or rec.cached:
            return Change()
        return self.frontier.add(rec.trial_id, self.evaluations, rec.metrics)

    def _job_values(self) -> dict[str, Any]:
        return {
            "n_trials": len(self.records), "n_complete": self.n_complete,
            "n_failed": self.n_failed, "n_cached": self.n_cached,
            "evaluations": self.evaluations,
            "best_trial_id": self.best.trial_id if self.best else None,
            "best_reward": self.best.reward if self.best else None,
            "hypervolume": self.frontier.value,
            "hv_reference": self.frontier.reference_values,
            "updated_at": utcnow(),
        }

    def _owned(self) -> dict[str, Any]:
        c = self.claim
        return {"_job": c.job_id, "_worker": c.worker_id, "_attempt": c.attempt}

    def _check(self, result: Any) -> None:
        if not result.rowcount:
            self._lease_lost = True
            raise LeaseLost(f"job {self.claim.job_id} was claimed by another worker")

    def _fence(self, conn: Any, **values: Any) -> None:
        """Update the job row only while this worker still owns it."""
        self._check(conn.execute(update(JOBS).where(_OWNED).values(**values), self._owned()))

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
            change = self._front_add(record)
            self.front_flags[record.trial_id] = change.on_front
            for t in change.dropped:
                self.front_flags[t] = False
        row = self._row(record, stored_artifacts)
        job_id = self.claim.job_id
        c = self.claim
        with self.writer.transaction() as tx:
            if not tx.update_job(c.job_id, c.worker_id, c.attempt, self._job_values()):
                self._lease_lost = True
                raise LeaseLost(f"job {c.job_id} was claimed by another worker")
            if replacing:
                tx.delete_trial(job_id, record.trial_id)
            tx.insert_trial(row)
            if change is None:
                tx.clear_front(job_id)
                tx.set_front(job_id, [t for t, on in self.front_flags.items() if on], True)
                tx.replace_points(job_id, self._points(self.frontier.history))
            else:
                if change.dropped:
                    tx.set_front(job_id, change.dropped, False)
                if change.history is not None:
                    tx.replace_points(job_id, self._points(change.history))
                elif change.point is not None:
                    tx.insert_points(self._points([change.point]))

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

    def _write_history(self, conn: Any, history: list[tuple[int, int, float]]) -> None:
        conn.execute(delete(POINTS).where(POINTS.c.job_id == self.claim.job_id))
        if history:
            conn.execute(insert(POINTS), self._points(history))

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
        if self.results_writer is not None:
            text = self.results_writer(list(self.records.values()), status, reason,
                                       self.elapsed_s)
            write_job_file(self.artifact_root, self.claim.job_id, "results.json", text)
        if status in ("succeeded", "exhausted"):
            reason = self._export_models(reason)
        history = self.frontier.finalize()
        self._refresh_statistics(vacuum=False)  # sampled: cheap at any table size
        with self.db.writer.begin() as conn:
            self._fence(conn, **{**self._job_values(), "status": status, "reason": reason,
                                 "finished_at": utcnow()})
            self._write_history(conn, history)
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

    def _export_models(self, reason: str | None) -> str | None:
        """Deployable files for a ``train`` job (``spec.export``), under ``models/`` in the
        job folder, before the job reads succeeded. An export that fails is reported in the
        job's reason and in ``models/export-error.txt``; the search results stand."""
        if self.spec.evaluator.name != "train" or not (self.spec.export.best
                                                         or self.spec.export.pareto):
            return reason
        from search.export import export_job_models

        folder = job_dir(self.artifact_root, self.claim.job_id) / "models"
        try:
            export_job_models(self.spec, list(self.records.values()), folder)
        except Exception as err:  # noqa: BLE001 - the search's results must not be lost
            log.exception("job %s: export failed", self.claim.job_id)
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "export-error.txt").write_text(f"{type(err).__name__}: {err}\n")
            return f"{reason or 'done'}; model export failed: {type(err).__name__}: {err}"
        return reason

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
    """Wraps the job's executor: counts tasks handed out (re-runs show up as extra tasks)
    and turns a lost lease or a worker shutdown into an exception after in-flight tasks were
    cancelled, instead of a user's 'cancelled'."""

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

    def close(self) -> None:
        self.inner.close()
