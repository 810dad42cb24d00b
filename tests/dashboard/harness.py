"""A real LightSearch service for browser tests: uvicorn on a free port, SQLite in a temporary
folder and a worker thread that runs jobs in-process (``executor="spec"``, local executor).

``slow-tabular`` is the shipped NAS-Bench-201 table evaluator with a delay per evaluation (so a
job is still running while the browser watches it) and, optionally, a model file written per
trial (so downloads have something to deliver). It is registered while a test service runs
(``slow_evaluator``), in this process, where the API validates specs and the worker runs jobs.
"""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from pydantic import Field

from search.base import Evaluation
from search.evaluators.tabular import TabularEvaluator
from search.registry import EVALUATORS, TabularOptions
from search.sinks import TrialRecord
from service import crud
from service.core.config import Settings
from service.main import create_app
from service.queue import claim_job
from service.sink import SqlSink
from service.worker import Worker
from spaces.base import Architecture, Space
from spaces.registry import Entry

SLOW = "slow-tabular"


class SlowTabularOptions(TabularOptions):
    """The table evaluator, slowed down, optionally writing a model file per trial."""

    delay_s: float = Field(0.1, ge=0, le=5)
    model_dir: str | None = Field(None, description="Folder for one JSON 'model' per trial.")


class SlowTabular(TabularEvaluator):
    name = SLOW

    def __init__(self, delay_s: float = 0.1, model_dir: str | None = None,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.delay_s = delay_s
        self.model_dir = model_dir

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        time.sleep(self.delay_s)
        result = super().evaluate(arch, space, seed=seed)
        if self.model_dir:
            text = json.dumps({"arch": arch, "metrics": result.metrics}, sort_keys=True)
            name = hashlib.sha1(text.encode()).hexdigest()[:12]
            path = Path(self.model_dir) / f"model-{name}.json"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            result.artifacts = {"model": str(path)}
        return result


@contextmanager
def slow_evaluator() -> Iterator[None]:
    """``slow-tabular`` in the evaluator registry for the duration (other tests that list the
    registry never see it)."""
    entry = Entry(SLOW, "tests.dashboard.harness:SlowTabular", SlowTabularOptions,
                  "Test only: the NAS-Bench-201 table, slowed down.")
    EVALUATORS.register(entry)
    try:
        yield
    finally:
        EVALUATORS._entries.pop(SLOW, None)  # noqa: SLF001 - no public unregister, tests only


def job_spec(name: str = "live-job", *, evaluations: int = 40, delay_s: float = 0.1,
             batch_size: int = 2, model_dir: str | None = None, agent: str = "random",
             objectives: int = 2) -> dict[str, Any]:
    objs = [{"metric": "val_acc", "direction": "max"},
            {"metric": "edgegpu_latency", "direction": "min"},
            {"metric": "edgegpu_energy", "direction": "min"}][:objectives]
    options: dict[str, Any] = {"delay_s": delay_s}
    if model_dir:
        options["model_dir"] = model_dir
    return {"name": name, "space": {"name": "nb201"}, "agent": {"name": agent},
            "evaluator": {"name": SLOW, "options": options},
            "profilers": [{"name": "lut:edgegpu"}], "objectives": objs,
            "budget": {"evaluations": evaluations},
            "executor": {"name": "local", "batch_size": batch_size}, "seed": 3}


def free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@dataclass
class Service:
    url: str
    settings: Settings
    server: uvicorn.Server
    thread: threading.Thread
    worker: Worker | None
    worker_thread: threading.Thread | None

    @property
    def db(self) -> Any:
        return self.server.config.app.state.lightsearch.db

    def token(self, user: str, *, admin: bool = False) -> str:
        with self.db.write_session() as session:
            _user, token = crud.create_token(session, user, admin=admin)
        return token

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=f"{self.url}/api/v1", timeout=30,
                            headers={"Authorization": f"Bearer {token}"})

    def submit(self, token: str, spec: dict[str, Any]) -> dict[str, Any]:
        with self.client(token) as c:
            r = c.post("/jobs", json=spec)
            r.raise_for_status()
            return r.json()

    def wait(self, token: str, job_id: str, statuses: tuple[str, ...] = ("succeeded",
             "failed", "cancelled"), timeout: float = 120) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(token) as c:
            while True:
                job = c.get(f"/jobs/{job_id}").json()
                if job["status"] in statuses:
                    return job
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job_id} still {job['status']}")
                time.sleep(0.1)

    def stop(self) -> None:
        if self.worker is not None:
            self.worker.stop.set()
            assert self.worker_thread is not None
            self.worker_thread.join(30)
        self.server.should_exit = True
        self.thread.join(30)


def start_service(data_dir: Path, *, worker: bool = True) -> Service:
    settings = Settings(data_dir=data_dir, executor="spec", poll_s=0.05, cancel_poll_s=0.1,
                        max_concurrent_jobs=2, auth_cache_s=0)
    app = create_app(settings)
    sock = free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1,
                            ws="none")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True,
                              name="uvicorn")
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the API server did not start")
        time.sleep(0.02)
    w = wt = None
    if worker:
        w = Worker(settings, worker_id="dashboard-tests")
        wt = threading.Thread(target=w.run, daemon=True, name="worker")
        wt.start()
    return Service(f"http://127.0.0.1:{port}", settings, server, thread, w, wt)


def fill_job(service: Service, token: str, records: list[TrialRecord],
             spec: dict[str, Any], *, finish: str | None = "succeeded",
             results: bool = True) -> str:
    """A job whose trials are written through the real SQL sink (no search loop): for tests
    that need exact trials (failures, compression policies) or many of them quickly.
    ``results=False`` skips results.json (it needs architectures of the job's space)."""
    from search.spec import JobSpec

    job = service.submit(token, spec)
    claim = None
    deadline = time.monotonic() + 10
    while claim is None:  # the job may not be the oldest queued one
        claim = claim_job(service.db, "fill", 60)
        if claim is not None and claim.job_id != job["id"]:
            raise RuntimeError("another job was queued; stop the worker for fill_job")
        if time.monotonic() > deadline:
            raise TimeoutError("could not claim the job")
    parsed = JobSpec.model_validate(spec)  # results: the worker's own finalize step
    sink = SqlSink(service.db, claim, parsed, artifact_root=service.settings.artifact_dir,
                   write_results=results)
    # The reference point the job's own loop would fix (its tables, else the first trials).
    from search.loop import SearchLoop
    from search.sinks import MemorySink

    reference = SearchLoop(parsed, MemorySink()).reference_for(records)
    if reference is not None:
        sink.on_reference(reference)
    for rec in records:
        sink.on_trial(rec)
    if finish:
        sink.on_end(finish, "filled by the test")
    return job["id"]


def nb201_records(n: int, *, start: int = 0, seed: int = 0, failed_every: int = 0,
                  device: str = "pixel3") -> list[TrialRecord]:
    """``n`` trials with real NAS-Bench-201 numbers (val_acc from the CIFAR-10 table, the
    device's latency from HW-NAS-Bench), distinct architectures in a seeded order. An
    architecture the device table lacks becomes an ``invalid`` trial, as in a real job; with
    ``failed_every=k`` every k-th trial is a ``failed`` one with a traceback."""
    import numpy as np

    from agents.base import TrialState
    from search.base import MetricNotMeasured
    from search.profilers.lookup import NB201DeviceProfiler
    from spaces.registry import SPACES

    space = SPACES.create("nb201")
    evaluator = TabularEvaluator()
    profiler = NB201DeviceProfiler(device=device)
    order = np.random.default_rng(seed).permutation(15_625)[start:start + n]
    out = []
    for i, index in enumerate(order):
        trial_id = start + i
        arch = space.from_index(int(index))
        key = space.key(arch)
        if failed_every and i % failed_every == failed_every - 1:
            out.append(TrialRecord(trial_id, arch, key, TrialState.FAILED,
                                   error=f"Traceback (most recent call last):\n  ...\n"
                                         f"RuntimeError: CUDA out of memory (trial {trial_id})",
                                   evaluation_index=trial_id + 1, node="local"))
            continue
        try:
            metrics = {**profiler.profile(arch, space),
                       **evaluator.evaluate(arch, space, seed=0).metrics}
        except MetricNotMeasured as err:
            out.append(TrialRecord(trial_id, arch, key, TrialState.INVALID, error=str(err),
                                   evaluation_index=trial_id + 1, node="local"))
            continue
        out.append(TrialRecord(trial_id, arch, key, TrialState.COMPLETE,
                               reward=metrics["val_acc"], metrics=metrics,
                               evaluation_index=trial_id + 1, duration_s=0.01, node="local"))
    return out


TWO_OBJECTIVES = [{"metric": "val_acc", "direction": "max"},
                  {"metric": "pixel3_latency", "direction": "min"}]


def filled_spec(name: str, evaluations: int) -> dict[str, Any]:
    """The spec a filled job is stored with (never run: ``fill_job`` writes its trials)."""
    return {"name": name, "space": {"name": "nb201"}, "agent": {"name": "random"},
            "evaluator": {"name": "tabular"}, "profilers": [{"name": "lut:pixel3"}],
            "objectives": TWO_OBJECTIVES, "budget": {"evaluations": evaluations},
            "executor": {"name": "local"}}


def sink_for(service: Service, job_id: str, spec: dict[str, Any],
             stored: list[TrialRecord]) -> SqlSink:
    """The SQL sink of a filled job left running (``finish=None``), to add more trials."""
    from search.spec import JobSpec
    from service.models import Job
    from service.queue import Claim

    with service.db.reading() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.worker_id is not None
        claim = Claim(job_id, job.attempts, job.worker_id, False)
    return SqlSink(service.db, claim, JobSpec.model_validate(spec),
                   artifact_root=service.settings.artifact_dir, stored=stored)
