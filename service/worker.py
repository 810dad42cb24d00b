"""The worker: claims queued jobs and runs each one's search loop, evaluations on Ray.

Design: one worker process runs up to ``max_concurrent_jobs`` jobs, each in its own thread.
A job's thread drives the batch-synchronous search loop (agent, profilers, SQL sink) and
sends the evaluations to Ray, where they spread over the cluster's CPUs; Ray's client API is
thread-safe, so the jobs share one Ray driver. Keeping the loop in the worker process (not in
a Ray actor) keeps database access in one place: Ray nodes need no database credentials, and
a SIGKILL of the worker loses only in-flight evaluations, which the resumed job re-runs.
Scale out by running more workers (each claims jobs atomically) and more Ray nodes.

A heartbeat thread renews the lease of every job the worker owns; a job whose worker stopped
renewing is claimed again by any worker and resumes from its last checkpoint.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import traceback
import uuid
from pathlib import Path

from search.spec import JobSpec, SpecError
from service import jobstate
from service.core.config import Settings
from service.core.db import Database
from service.core.errors import InvalidTransition, LeaseLost
from service.migrations import upgrade
from service.models import Job, JobStatus, utcnow
from service.queue import Claim, claim_job, heartbeat, release
from service.sink import SqlSink, TrackedExecutor, WorkerShutdown, load_resume

log = logging.getLogger(__name__)

# PostgreSQL: how often planner statistics are refreshed while jobs run (``ANALYZE`` samples a
# fixed number of rows, tens of milliseconds); finished jobs are vacuumed by their sink.
STATISTICS_INTERVAL_S = 60.0

_ray_lock = threading.Lock()


def _ensure_ray() -> None:
    """Start (or connect to) Ray from the worker's main loop, never from a job thread: Ray
    starts its local GCS and raylet with PR_SET_PDEATHSIG, which Linux fires when the
    *thread* that spawned them exits, so a job thread's Ray would die with that job."""
    from search.executors import ensure_ray

    with _ray_lock:
        ensure_ray(None)


def _ray_ready() -> bool:
    import ray

    return bool(ray.is_initialized())


class Worker:
    """Claims and runs jobs until ``stop`` is set (then hands running jobs back)."""

    def __init__(self, settings: Settings, db: Database | None = None,
                 worker_id: str | None = None) -> None:
        self.settings = settings
        settings.load_plugins()
        self.db = db or Database.from_url(settings.url, pool_size=settings.db_pool_size,
                                          busy_timeout_ms=settings.sqlite_busy_timeout_ms)
        self.worker_id = worker_id or f"{socket.gethostname()}:{os.getpid()}:" \
                                      f"{uuid.uuid4().hex[:8]}"
        self.stop = threading.Event()
        self._threads: dict[str, tuple[threading.Thread, Claim]] = {}
        self._lock = threading.Lock()
        self.finished_jobs = 0

    # ---- main loop -------------------------------------------------------------------------
    def run(self) -> None:
        upgrade(self.db.engine)
        if self.settings.executor == "ray":
            _ensure_ray()  # before claiming: a slow Ray start must not eat into a lease
        beat = threading.Thread(target=self._heartbeat_loop, name="heartbeat", daemon=True)
        beat.start()
        log.info("worker %s: up to %d jobs at once", self.worker_id,
                 self.settings.max_concurrent_jobs)
        while not self.stop.is_set():
            if not self.step():
                self.stop.wait(self.settings.poll_s)
        self.hand_back()
        self.join(self.settings.stop_grace_s)

    def hand_back(self) -> None:
        """Stopping: give every running job back to the queue now, not when its thread next
        checks in (a training can take minutes); the threads' later writes are fenced off by
        the lease, and the job resumes from its checkpoint on the next claim."""
        with self._lock:
            claims = [c for t, c in self._threads.values() if t.is_alive()]
        for claim in claims:
            try:
                if release(self.db, claim):
                    log.info("job %s handed back to the queue", claim.job_id)
            except Exception:  # noqa: BLE001 - its lease expires instead
                log.exception("could not hand job %s back; its lease will expire",
                              claim.job_id)

    def step(self) -> bool:
        """Start one job if a slot is free and one is claimable; True if one started."""
        with self._lock:
            self._threads = {k: v for k, v in self._threads.items() if v[0].is_alive()}
            if len(self._threads) >= self.settings.max_concurrent_jobs:
                return False
        claim = claim_job(self.db, self.worker_id, self.settings.lease_s)
        if claim is None:
            return False
        if self._needs_ray(claim):
            try:
                _ensure_ray()
            except Exception:  # noqa: BLE001 - logged; the job waits in the queue meanwhile
                log.exception("cannot start or reach Ray; job %s goes back to the queue",
                              claim.job_id)
                release(self.db, claim)
                self.stop.wait(5 * self.settings.poll_s)
                return False
        thread = threading.Thread(target=self.run_job, args=(claim,),
                                  name=f"job-{claim.job_id[:8]}", daemon=True)
        with self._lock:
            self._threads[claim.job_id] = (thread, claim)
        thread.start()
        return True

    def _needs_ray(self, claim: Claim) -> bool:
        if self.settings.executor == "ray":
            return True
        with self.db.reading() as session:
            job = session.get(Job, claim.job_id)
            return job is not None and job.spec.get("executor", {}).get("name") == "ray"

    def join(self, timeout: float | None = None) -> None:
        with self._lock:
            threads = [t for t, _ in self._threads.values()]
        for t in threads:
            t.join(timeout)

    def _heartbeat_loop(self) -> None:
        interval = self.settings.lease_s / 4
        analyzed = time.monotonic()
        while not self.stop.wait(interval):
            with self._lock:
                claims = [c for t, c in self._threads.values() if t.is_alive()]
            try:
                heartbeat(self.db, claims)
                if claims and self.db.sqlite:
                    self.db.checkpoint_wal()  # job threads leave it to us (fastpath)
                if claims and time.monotonic() - analyzed >= STATISTICS_INTERVAL_S:
                    analyzed = time.monotonic()
                    self.db.refresh_statistics()  # PostgreSQL: live jobs' pages stay fast
            except Exception:  # noqa: BLE001 - a database hiccup must not kill the heartbeat
                log.exception("heartbeat failed; retrying in %.1f s", interval)

    # ---- one job ---------------------------------------------------------------------------
    def run_job(self, claim: Claim) -> None:
        from search.executors import make_executor
        from search.loop import ResumeState, run_search

        with self.db.reading() as session:
            job = session.get(Job, claim.job_id)
            assert job is not None
            cancel, raw_spec = job.cancel_requested, job.spec
        if cancel:
            self._finish(claim, JobStatus.CANCELLED, "cancelled by request")
            return
        if claim.attempt > self.settings.max_attempts:
            self._finish(claim, JobStatus.FAILED,
                         f"claimed {claim.attempt - 1} times without finishing; its worker "
                         "died each time")
            return
        executor = None
        sink: SqlSink | None = None
        try:
            spec = JobSpec.model_validate(raw_spec)
            name = spec.executor.name if self.settings.executor == "spec" else "ray"
            checkpoint, stored = load_resume(self.db, claim.job_id, self.artifact_root)
            resume = ResumeState(checkpoint, stored) if checkpoint is not None else None
            self._mark_started(claim, name, resumed=bool(stored) or checkpoint is not None)
            sink = SqlSink(self.db, claim, spec, artifact_root=self.artifact_root,
                           stored=stored, cancel_poll_s=self.settings.cancel_poll_s,
                           shutdown=self.stop, write_results=True)
            if name == "ray" and not _ray_ready():
                raise RuntimeError("Ray is not initialized (the worker's main loop starts it)")
            # The service's Ray (RAY_ADDRESS) wins over any address in the job spec.
            executor = TrackedExecutor(
                make_executor(name, chunk_size=spec.executor.chunk_size), sink)
            summary = run_search(spec, sink, executor=executor, resume=resume)
            log.info("job %s %s: %s", claim.job_id, summary.status, summary.reason)
            self.finished_jobs += 1
        except (LeaseLost, WorkerShutdown) as err:
            if self.stop.is_set():  # handed back by ``hand_back`` (or now)
                release(self.db, claim)
            else:
                log.warning("%s; this worker stops running it", err)
        except SpecError as err:
            self._finish(claim, JobStatus.FAILED, f"invalid job: {err}")
        except Exception as err:  # noqa: BLE001 - recorded as the job's failure reason
            if self.stop.is_set():  # Ray going down under a stopping worker: not the job's
                log.info("job %s stopped with the worker (%s)", claim.job_id,
                         type(err).__name__)
                release(self.db, claim)
                return
            log.exception("job %s crashed", claim.job_id)
            text = "".join(traceback.format_exception_only(type(err), err)).strip()
            self._finish(claim, JobStatus.FAILED, f"worker error: {text[-2000:]}")
        finally:
            if executor is not None:
                executor.close()
            if sink is not None:
                sink.close()

    @property
    def artifact_root(self) -> Path:
        return self.settings.artifact_dir

    def _mark_started(self, claim: Claim, executor: str, *, resumed: bool) -> None:
        values: dict[str, object] = {"executor": executor, "updated_at": utcnow()}
        if resumed:
            values["resumed"] = Job.resumed + 1
        with self.db.writing() as session:
            jobstate.update_owned(session, claim, **values)

    def _finish(self, claim: Claim, status: JobStatus, reason: str) -> bool:
        """End the job; False (logged) when another worker holds it now (it is theirs) or
        it has already ended (its first end stands)."""
        try:
            with self.db.writing() as session:
                jobstate.finish(session, claim, status, reason)
        except (LeaseLost, InvalidTransition) as err:
            log.warning("job %s not marked %s: %s", claim.job_id, status.value, err)
            return False
        return True


