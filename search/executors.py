"""Where evaluations run: in this process (tests, table look-ups) or on Ray (real work).

Both executors take a batch of tasks and return one outcome per task, in order (``run``,
batch mode: a job is deterministic for a seed whichever executor runs it). For the loop's
steady mode they also take tasks one by one (``submit``) and hand back whatever finished
(``wait``). An exception inside an evaluation, or a Ray worker that dies, becomes a failed
outcome with its error text: the job goes on.
"""

from __future__ import annotations

import math
import os
import signal
import sys
import threading
import time
import traceback
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from search.base import Evaluation, Evaluator
from spaces.base import Architecture, Space

StopCheck = Callable[[], bool]


@dataclass
class EvalTask:
    trial_id: int
    arch: Architecture
    seed: int


@dataclass
class EvalOutcome:
    trial_id: int
    evaluation: Evaluation | None = None
    error: str | None = None
    duration_s: float = 0.0
    node: str | None = None
    cancelled: bool = False
    #: Artifact files read on a node other than the driver's: name -> (path there, bytes).
    shipped: dict[str, tuple[str, bytes]] | None = None


def _error_text(err: BaseException) -> str:
    """The exception and the innermost frames: enough to debug, short enough to store."""
    tb = traceback.format_exception(type(err), err, err.__traceback__)
    text = "".join(tb[-3:]).strip()
    return text[-4000:]


def evaluate_tasks(
    evaluator: Evaluator, space: Space, tasks: Sequence[EvalTask], node: str = "local"
) -> list[EvalOutcome]:
    """Run tasks one after another, turning each exception into a failed outcome."""
    outcomes = []
    for task in tasks:
        start = time.perf_counter()
        try:
            evaluation = evaluator.evaluate(task.arch, space, seed=task.seed)
            outcomes.append(EvalOutcome(task.trial_id, evaluation,
                                        duration_s=time.perf_counter() - start, node=node))
        except Exception as err:  # noqa: BLE001 - failure is a trial state, recorded below
            outcomes.append(EvalOutcome(task.trial_id, error=_error_text(err),
                                        duration_s=time.perf_counter() - start, node=node))
    return outcomes


class Executor(ABC):
    """Runs batches of evaluations (``run``), or a steady stream of them (``submit`` and
    ``wait``; by default one at a time, in submission order, through ``run``)."""

    name: str = "executor"
    _queued: deque[tuple[Evaluator, Space, EvalTask]] | None = None

    @abstractmethod
    def run(
        self,
        evaluator: Evaluator,
        space: Space,
        tasks: Sequence[EvalTask],
        should_stop: StopCheck | None = None,
    ) -> list[EvalOutcome]:
        """One outcome per task, in task order; tasks stopped by ``should_stop`` are
        returned with ``cancelled=True``."""

    def submit(self, evaluator: Evaluator, space: Space, tasks: Sequence[EvalTask]) -> None:
        """Start ``tasks`` without waiting for them (the loop's steady mode)."""
        if self._queued is None:
            self._queued = deque()
        self._queued.extend((evaluator, space, t) for t in tasks)

    def wait(self, timeout: float | None = None) -> list[EvalOutcome]:
        """Outcomes of submitted tasks that finished: at least one, unless ``timeout``
        seconds passed first or nothing is in flight."""
        if not self._queued:
            return []
        evaluator, space, task = self._queued.popleft()
        return self.run(evaluator, space, [task])

    def cancel(self) -> list[EvalOutcome]:
        """Stop every submitted task; one ``cancelled`` outcome each."""
        queued, self._queued = self._queued or deque(), None
        return [EvalOutcome(t.trial_id, error="cancelled", cancelled=True)
                for _, _, t in queued]

    def close(self) -> None:
        """Release resources; the executor is not used afterwards."""


class LocalExecutor(Executor):
    """Evaluates in the calling process, one task after another.

    Steady mode here runs submitted tasks one at a time in submission order (no thread
    pool): evaluators need not be thread-safe, look-ups and training in one process gain
    nothing from threads under the GIL (training already uses its own threads), and the
    order, so the job, stays deterministic for a seed. Parallel work is Ray's.
    """

    name = "local"

    def run(self, evaluator, space, tasks, should_stop=None):  # noqa: D102
        outcomes = []
        for task in tasks:
            if should_stop is not None and should_stop():
                outcomes.append(EvalOutcome(task.trial_id, error="cancelled", cancelled=True))
                continue
            outcomes.extend(evaluate_tasks(evaluator, space, [task]))
        return outcomes


def _ray_evaluate_chunk(evaluator: Evaluator, space: Space, tasks: list[EvalTask],
                        driver_node: str | None = None) -> list[EvalOutcome]:
    import ray

    node = ray.get_runtime_context().get_node_id()
    outcomes = evaluate_tasks(evaluator, space, tasks, node=node)
    if node != driver_node:  # the driver cannot read this node's disk: send the files along
        for outcome in outcomes:
            pack_artifacts(outcome)
    return outcomes


def pack_artifacts(outcome: EvalOutcome) -> None:
    """Read an outcome's artifact files into it, so they travel with the result."""
    if outcome.evaluation is None or not outcome.evaluation.artifacts:
        return
    shipped = {}
    for name, path in outcome.evaluation.artifacts.items():
        if os.path.isfile(path):
            with open(path, "rb") as fh:
                shipped[name] = (path, fh.read())
    outcome.shipped = shipped or None


def unpack_artifacts(outcome: EvalOutcome, fallback_dir: str) -> None:
    """Write shipped artifact files on this node: at the same path when its folder can be
    made (an ``export_dir`` shared by the job's nodes keeps its meaning), else under
    ``fallback_dir``; the outcome's paths then point at files this process can read."""
    if not outcome.shipped or outcome.evaluation is None:
        return
    for name, (path, data) in outcome.shipped.items():
        target = path
        if not os.path.isfile(path):
            try:
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                with open(path, "wb") as fh:
                    fh.write(data)
            except OSError:
                folder = os.path.join(fallback_dir, f"trial-{outcome.trial_id}")
                os.makedirs(folder, exist_ok=True)
                target = os.path.join(folder, os.path.basename(path))
                with open(target, "wb") as fh:
                    fh.write(data)
        outcome.evaluation.artifacts[name] = target
    outcome.shipped = None


#: Ray's switch for a single-machine Ray: node address 127.0.0.1, so the GCS, raylet and
#: workers listen on loopback only (read when ``ray`` is first imported).
RAY_LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


def ensure_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to ``address`` (or RAY_ADDRESS), else start a local Ray once per process.

    A local Ray listens on loopback only (when this process had not imported ``ray`` yet),
    and its processes start with SIGINT ignored: a Ctrl+C meant for this process (its whole
    terminal process group gets it) must not kill Ray under running jobs; this process shuts
    Ray down itself."""
    address = address or os.environ.get("RAY_ADDRESS") or None
    if not address and "ray" not in sys.modules:
        os.environ.setdefault(RAY_LOOPBACK_ENV, "0")
    import ray

    if ray.is_initialized():
        return
    with _own_signal_handlers(ignore_sigint=not address):
        if address:
            ray.init(address=address, include_dashboard=False, log_to_driver=False)
        else:
            ray.init(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False,
                     log_to_driver=False)


@contextmanager
def _own_signal_handlers(*, ignore_sigint: bool) -> Iterator[None]:
    """Ray's driver installs its own SIGTERM handler (a stack dump, then death): keep this
    process's handlers (a worker hands its jobs back on SIGTERM). Only the main thread can."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    if ignore_sigint:  # inherited by the Ray processes started now
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


class RayExecutor(Executor):
    """Evaluates on Ray: the batch is cut into chunks, one Ray task per chunk.

    Chunks amortize Ray's per-task cost for cheap evaluations (table look-ups); with
    ``chunk_size=0`` a batch is spread evenly over the cluster's CPUs. The evaluator and space
    are put in the object store once per executor. Artifact files written on another node
    come back with the result (``pack_artifacts``), so sinks on the driver can store them.
    """

    name = "ray"

    def __init__(self, address: str | None = None, chunk_size: int = 0,
                 num_cpus_per_task: float = 1.0, poll_s: float = 0.2) -> None:
        self.address = address
        self.chunk_size = int(chunk_size)
        self.num_cpus_per_task = num_cpus_per_task
        self.poll_s = poll_s
        self._remote: Any = None
        self._refs: dict[int, Any] = {}
        self._flying: dict[Any, list[EvalTask]] = {}  # steady mode: Ray ref -> its tasks
        self._fallback_dir: str | None = None
        self._driver_node: str | None = None  # tests set another id to force shipping
        self.files_shipped = 0  # artifact files that came back from other nodes

    def _artifact_dir(self) -> str:
        if self._fallback_dir is None:
            import tempfile

            self._fallback_dir = tempfile.mkdtemp(prefix="lightsearch-artifacts-")
        return self._fallback_dir

    def _setup(self, evaluator: Evaluator, space: Space) -> tuple[Any, Any]:
        import ray

        ensure_ray(self.address)
        if self._remote is None:
            # One retry covers a lost node; a trial that kills its worker twice is failed.
            self._remote = ray.remote(num_cpus=self.num_cpus_per_task, max_retries=1)(
                _ray_evaluate_chunk)
        key = id(evaluator) ^ (id(space) << 1)
        if key not in self._refs:
            self._refs = {key: (ray.put(evaluator), ray.put(space))}
        return self._refs[key]

    def _chunks(self, tasks: Sequence[EvalTask], steady: bool = False) -> list[list[EvalTask]]:
        import ray

        size = max(self.chunk_size, 1) if steady else self.chunk_size
        if size <= 0:
            cpus = max(1, int(ray.cluster_resources().get("CPU", 1) / self.num_cpus_per_task))
            size = max(1, math.ceil(len(tasks) / cpus))
        return [list(tasks[i:i + size]) for i in range(0, len(tasks), size)]

    def run(self, evaluator, space, tasks, should_stop=None):  # noqa: D102
        import ray

        if not tasks:
            return []
        evaluator_ref, space_ref = self._setup(evaluator, space)
        chunks = self._chunks(tasks)
        driver_node = self._driver_node or ray.get_runtime_context().get_node_id()
        pending = {self._remote.remote(evaluator_ref, space_ref, chunk, driver_node): chunk
                   for chunk in chunks}
        results: dict[int, EvalOutcome] = {}
        while pending:
            if should_stop is not None and should_stop():
                for ref, chunk in pending.items():
                    ray.cancel(ref, force=True)
                    for t in chunk:
                        results[t.trial_id] = EvalOutcome(t.trial_id, error="cancelled",
                                                          cancelled=True)
                break
            done, _ = ray.wait(list(pending), num_returns=1, timeout=self.poll_s)
            for ref in done:
                for outcome in self._collect(ref, pending.pop(ref)):
                    results[outcome.trial_id] = outcome
        return [results[t.trial_id] for t in tasks]

    def _collect(self, ref: Any, chunk: list[EvalTask]) -> list[EvalOutcome]:
        """A finished Ray task's outcomes, artifact files unpacked here; a dead worker fails
        its trials."""
        import ray

        try:
            outcomes = ray.get(ref)
        except Exception as err:  # noqa: BLE001 - a dead worker fails its trials
            text = _error_text(err)
            return [EvalOutcome(t.trial_id, error=text) for t in chunk]
        for outcome in outcomes:
            if outcome.shipped:
                self.files_shipped += len(outcome.shipped)
                unpack_artifacts(outcome, self._artifact_dir())
        return outcomes

    def submit(self, evaluator, space, tasks):  # noqa: D102
        import ray

        if not tasks:
            return
        evaluator_ref, space_ref = self._setup(evaluator, space)
        driver_node = self._driver_node or ray.get_runtime_context().get_node_id()
        for chunk in self._chunks(tasks, steady=True):
            ref = self._remote.remote(evaluator_ref, space_ref, chunk, driver_node)
            self._flying[ref] = chunk

    def wait(self, timeout=None):  # noqa: D102
        import ray

        if not self._flying:
            return []
        refs = list(self._flying)
        done, rest = ray.wait(refs, num_returns=1, timeout=timeout)
        if done and rest:  # whatever else has finished too: handled in one go
            more, _ = ray.wait(rest, num_returns=len(rest), timeout=0)
            done += more
        return [o for ref in done for o in self._collect(ref, self._flying.pop(ref))]

    def cancel(self):  # noqa: D102
        import ray

        flying, self._flying = self._flying, {}
        for ref in flying:
            ray.cancel(ref, force=True)
        return [EvalOutcome(t.trial_id, error="cancelled", cancelled=True)
                for chunk in flying.values() for t in chunk]

    def close(self) -> None:  # noqa: D102
        if self._flying:  # a loop that stopped on an error: its tasks must not run on
            self.cancel()


def make_executor(name: str = "local", *, address: str | None = None,
                  chunk_size: int = 0) -> Executor:
    """An executor by the job spec's name."""
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(address=address, chunk_size=chunk_size)
    raise ValueError(f"unknown executor {name!r}; valid executors: local, ray")
