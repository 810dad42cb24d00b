"""The search loop: agent proposes, profilers and evaluator score, agent learns.

One batch at a time (``executor.batch_size`` proposals in flight)::

    ask -> validate -> cache? -> profilers -> constraints -> evaluator (executor) -> reward
        -> tell (in trial order) -> sink.on_trial per trial -> sink.on_checkpoint

An evaluation that says ``recorded["pruned"] = True`` (stopped early by ASHA) is a PRUNED
trial: its metrics are kept, it gets no reward.

Budgets count distinct architectures: a repeat is answered from the job's cache and costs
nothing. An agent that keeps repeating itself is warned about (``REPEAT_WARNING`` of the
last ``REPEAT_WINDOW`` proposals) and, at ``spec.max_proposals``, ends the job ``exhausted``
with the evaluations it reached: never a plain ``succeeded`` short of the budget.

Keeping batches synchronous makes a job deterministic for a seed on any executor, and gives
checkpoints with nothing in flight, so a resumed job continues exactly. ``executor.mode =
"steady"`` trades that for throughput (``search.steady``): proposals stay in flight and each
finished evaluation is replaced at once, so no node waits for a batch's slowest trial.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from agents.base import AGENT_REWARD, Agent, Objective, Proposal, TrialResult, TrialState
from agents.registry import AGENTS
from search.base import Evaluator, MetricNotMeasured, ProfileFailed, Profiler
from search.executors import EvalOutcome, EvalTask, Executor, make_executor
from search.metrics import check_metrics
from search.objectives import constraint_violations, make_reward
from search.registry import EVALUATORS, PROFILERS
from search.sinks import ResultSink, TrialRecord
from search.spec import JobSpec, RewardSpec, SpecError
from search.trials import HvReference, Standing, complete_reference, partial_reference
from spaces.base import InvalidArchitecture, Space
from spaces.registry import SPACES

CHECKPOINT_VERSION = 2  # 2: steady mode's trials in flight ("in_flight")
READABLE_CHECKPOINTS = (1, 2)
DEFAULT_MAX_FAILURES = 20
REPEAT_WINDOW = 50  # proposals over which the repeat rate is measured
REPEAT_WARNING = 0.9  # warn when more than this share of recent proposals were repeats

log = logging.getLogger(__name__)


@dataclass
class ResumeState:
    """What a job needs to continue: its last checkpoint and every trial stored so far."""

    checkpoint: Mapping[str, Any]
    trials: list[TrialRecord]


@dataclass
class SearchSummary:
    status: str  # succeeded | failed | cancelled | exhausted (stopped short of the budget)
    reason: str | None
    evaluations: int
    proposals: int
    elapsed_s: float
    best: TrialRecord | None = None
    front: list[int] = field(default_factory=list)  # trial ids on the Pareto front
    hypervolume: float | None = None  # None: one objective, or no reference point yet
    reference: HvReference | None = None


@dataclass
class _Outcome:
    """A finished evaluation as the cache keeps it (a repeat reuses it)."""

    state: TrialState
    reward: float | None
    metrics: dict[str, float]
    recorded: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    artifacts: dict[str, str] = field(default_factory=dict)
    duration_s: float = 0.0
    node: str | None = None


@contextmanager
def _field(name: str) -> Iterator[None]:
    """Turn a component's construction error into a SpecError naming the job field."""
    try:
        yield
    except SpecError:
        raise
    except (ValueError, OSError, InvalidArchitecture) as err:
        raise SpecError(name, str(err)) from err


def _pruned_reason(recorded: Mapping[str, Any]) -> str:
    epochs = recorded.get("epochs_run")
    return "stopped early by the scheduler" + (f" after epoch {epochs}" if epochs else "")


def evaluation_seed(job_seed: int, arch_key: str) -> int:
    """A seed per (job, architecture): the same candidate trains the same way in any order."""
    digest = hashlib.blake2b(f"{job_seed}:{arch_key}".encode(), digest_size=4).digest()
    return int.from_bytes(digest, "little") & 0x7FFFFFFF


class SearchLoop:
    """Runs one job spec against a sink; build once, call ``run``."""

    def __init__(
        self,
        spec: JobSpec,
        sink: ResultSink,
        *,
        executor: Executor | None = None,
        resume: ResumeState | None = None,
        progress: bool | Callable[[int, int], None] = False,
    ) -> None:
        self.spec = spec
        self.sink = sink
        check_metrics(spec)  # an objective on a metric nothing measures is a bad spec
        with _field("space"):
            self.space: Space = SPACES.create(spec.space.name, options=spec.space.options)
        self.objectives = tuple(Objective(o.metric, o.direction) for o in spec.objectives)
        with _field("agent"):
            self.agent: Agent = AGENTS.create(
                spec.agent.name, self.space, options=spec.agent.options,
                objectives=self.objectives, seed=spec.seed,
            )
        self.profilers: list[Profiler] = []
        for i, p in enumerate(spec.profilers):
            with _field(f"profilers[{i}]"):
                self.profilers.append(PROFILERS.create(p.name, options=p.options))
                self.profilers[-1].attach(sink)
        self._deferred = any(p.deferred for p in self.profilers)
        with _field("evaluator"):
            self.evaluator: Evaluator = EVALUATORS.create(
                spec.evaluator.name, options=spec.evaluator.options
            )
        self.reward_fn = make_reward(spec.reward, spec.objectives)
        self.required_metrics = sorted(
            {o.metric for o in spec.objectives} | {c.metric for c in spec.constraints}
        )
        self._own_executor = executor is None
        self.executor = executor or make_executor(
            spec.executor.name, address=spec.executor.address,
            chunk_size=spec.executor.chunk_size,
        )
        self.progress = progress
        self.cache: dict[str, _Outcome] = {}
        self.evaluations = 0
        self.proposals = 0
        self.last_trial_id = -1
        self.consecutive_failures = 0
        self.completed = 0
        self.elapsed_before = 0.0
        # Best trial, front and hypervolume, by the one definition in ``search.trials``.
        self.standing = Standing(spec.objectives)
        self._reference_parts = self._known_reference()
        self._recent: deque[bool] = deque(maxlen=REPEAT_WINDOW)  # True: a repeat
        self._warned = False
        self._replay: dict[int, TrialRecord] = {}
        #: Steady mode, resumed: the checkpoint's trials in flight, and those of them stored
        #: before the crash (by trial id).
        self.in_flight_at_checkpoint: list[dict[str, Any]] = []
        self.landed: dict[int, TrialRecord] = {}
        self.last_error: str | None = None
        if resume is not None:
            self._restore(resume)

    @property
    def best(self) -> TrialRecord | None:
        return self.standing.best

    def _known_reference(self) -> tuple[list[float | None], list[str], float | None]:
        """The reference point's coordinates known before any trial: the spec's, else the
        worst values of the tables the objectives come from."""
        if len(self.spec.objectives) < 2:
            return [], [], None
        tables = []
        for part in (self.evaluator, *self.profilers):
            known = part.known_values(self.space)
            if known is not None:
                tables.append(known)
        return partial_reference(self.spec.objectives, tables)

    def reference_for(self, batch: list[TrialRecord]) -> HvReference | None:
        """The reference point as this job fixes it: the spec's and the tables' values,
        completed from ``batch`` (the first batch with a counting trial), widened."""
        if len(self.spec.objectives) < 2:
            return None
        point, source, true_front = self._reference_parts
        return complete_reference(self.spec.objectives, point, source, batch, true_front)

    def fix_reference(self, batch: list[TrialRecord]) -> None:
        """Fix the reference point once: now if it is known, else from ``batch``."""
        if self.standing.reference is not None:
            return
        reference = self.reference_for(batch)
        if reference is not None:
            self.standing.set_reference(reference)
            self.sink.on_reference(reference)

    # ---- checkpoints --------------------------------------------------------------------
    def checkpoint(self, elapsed_s: float,
                   in_flight: list[dict[str, Any]] | None = None) -> dict[str, Any]:
        """What ``_restore`` needs; ``in_flight``: steady mode's proposals in flight (then
        ``last_trial_id`` is the last one asked: every trial up to it was told or is there)."""
        return {
            "version": CHECKPOINT_VERSION,
            "agent": self.agent.state_dict(),
            "evaluations": self.evaluations,
            "proposals": self.proposals,
            "last_trial_id": self.last_trial_id,
            "consecutive_failures": self.consecutive_failures,
            "completed": self.completed,
            "elapsed_s": elapsed_s,
            "hv_reference": (self.standing.reference.to_json()
                             if self.standing.reference else None),
            "in_flight": list(in_flight or []),
        }

    def _restore(self, resume: ResumeState) -> None:
        ck = resume.checkpoint
        if ck.get("version") not in READABLE_CHECKPOINTS:
            raise ValueError(f"unsupported checkpoint version {ck.get('version')!r}")
        self.agent.load_state_dict(ck["agent"])
        self.evaluations = int(ck["evaluations"])
        self.proposals = int(ck["proposals"])
        self.last_trial_id = int(ck["last_trial_id"])
        self.consecutive_failures = int(ck["consecutive_failures"])
        self.completed = int(ck["completed"])
        self.elapsed_before = float(ck["elapsed_s"])
        reference = HvReference.from_json(ck.get("hv_reference"))
        if reference is not None:
            self.standing.set_reference(reference)
        self.in_flight_at_checkpoint = list(ck.get("in_flight") or [])
        if self.in_flight_at_checkpoint and self.spec.executor.mode != "steady":
            raise ValueError("the checkpoint has trials in flight: resume it in steady mode")
        flying = {p["trial_id"] for f in self.in_flight_at_checkpoint for p in f["proposals"]}
        for rec in sorted(resume.trials, key=lambda r: r.trial_id):
            if rec.trial_id in flying:  # in flight at the checkpoint, finished before the crash
                self.landed[rec.trial_id] = rec
            elif rec.trial_id > self.last_trial_id:
                # Stored after the checkpoint: answer the agent's re-proposal from it.
                self._replay[rec.trial_id] = rec
            else:
                self._remember(rec)

    @staticmethod
    def outcome_of(rec: TrialRecord) -> _Outcome:
        """A stored trial's outcome, as a repeat of its architecture would reuse it (the
        agent's own reward is per proposal: left out)."""
        metrics = {k: v for k, v in rec.metrics.items() if k != AGENT_REWARD}
        return _Outcome(rec.state, rec.reward, metrics, dict(rec.recorded), rec.error,
                        dict(rec.artifacts), rec.duration_s, rec.node)

    def _remember(self, rec: TrialRecord) -> None:
        if not rec.cached and rec.state is not TrialState.FAILED:
            self.cache[rec.arch_key] = _Outcome(
                rec.state, rec.reward, dict(rec.metrics), dict(rec.recorded), rec.error,
                dict(rec.artifacts), rec.duration_s, rec.node,
            )
        self.standing.add(rec)

    # ---- one proposal, before evaluation --------------------------------------------------
    def profile(self, arch: dict[str, Any], deferred: bool = False,
                ) -> tuple[dict[str, float], _Outcome | None]:
        """Metrics of the profilers that run before evaluation (or, ``deferred``, after it),
        or an outcome that ends the trial."""
        profilers = [p for p in self.profilers if p.deferred == deferred]
        metrics: dict[str, float] = {}
        for profiler in profilers:
            try:
                metrics.update(profiler.profile(arch, self.space))
            except MetricNotMeasured:
                pass  # nothing measured by this profiler: required metrics are checked below
            except ProfileFailed as err:  # this trial fails (not cached: may be transient)
                return metrics, _Outcome(TrialState.FAILED, None, metrics, error=str(err))
        profiled = {m for p in profilers for m in p.metrics()}
        missing = [m for m in self.required_metrics if m in profiled and m not in metrics]
        if missing:
            return metrics, _Outcome(TrialState.INVALID, None, metrics,
                                     error=f"not measured on this device: {', '.join(missing)}")
        rejecting = [c for c in self.spec.constraints if c.reject and c.metric in metrics]
        broken = constraint_violations(rejecting, metrics)
        if broken:
            return metrics, _Outcome(TrialState.PRUNED, None, metrics,
                                     error="constraint violated: " + "; ".join(broken))
        return metrics, None

    def _finish(self, metrics: dict[str, float], outcome: _Outcome) -> _Outcome:
        """Combine profiler and evaluator metrics and compute the job's reward."""
        if outcome.state is not TrialState.COMPLETE:
            return outcome
        try:
            reward = float(self.reward_fn(metrics))
            violations = constraint_violations(self.spec.constraints, metrics)
        except MetricNotMeasured as err:
            outcome.state, outcome.error = TrialState.INVALID, f"not measured: {err}"
            return outcome
        if violations:
            outcome.recorded = {**outcome.recorded, "constraint_violations": violations}
        outcome.reward = reward
        return outcome

    # ---- the loop -------------------------------------------------------------------------
    def stop_reason(self, start: float) -> tuple[str, str] | None:
        budget = self.spec.budget
        if self.evaluations >= budget.evaluations:
            return "succeeded", f"evaluation budget of {budget.evaluations} reached"
        if budget.seconds is not None and self.elapsed(start) >= budget.seconds:
            return "succeeded", f"time budget of {budget.seconds:g} s reached"
        if self.proposals >= self.spec.max_proposals:
            return "exhausted", (
                f"{self.evaluations} of {budget.evaluations} evaluations reached: the limit of "
                f"{self.spec.max_proposals} proposals ran out, "
                f"{self.proposals - self.evaluations} of them repeats of evaluated architectures")
        limit = self.spec.budget.max_failures or DEFAULT_MAX_FAILURES
        if self.consecutive_failures >= limit:
            return "failed", f"{self.consecutive_failures} trials failed in a row"
        if self.sink.should_stop():
            return "cancelled", "cancelled by request"
        return None

    def elapsed(self, start: float) -> float:
        return self.elapsed_before + time.monotonic() - start

    def run(self) -> SearchSummary:
        start = time.monotonic()
        self.sink.on_start(self.spec.model_dump(mode="json"))
        if self.standing.reference is not None:  # resumed: the sink rebuilds its history
            self.sink.on_reference(self.standing.reference)
        else:
            self.fix_reference([])
        bar = self._progress_bar()
        try:
            if self.spec.executor.mode == "steady":
                from search.steady import SteadyRun

                stop = SteadyRun(self, start, bar).drive()
            else:
                stop = self._run_batches(start, bar)
        finally:
            if self._own_executor:
                self.executor.close()
            self.agent.close()
            self.evaluator.close()
        status, reason = stop
        last_error = self.last_error
        if status == "failed" and last_error:
            reason = f"{reason}; last error: {last_error.strip().splitlines()[-1]}"
        if status in ("succeeded", "exhausted") and self.completed == 0:
            status, reason = "failed", f"no trial completed ({reason})" + (
                f"; last error: {last_error.strip().splitlines()[-1]}" if last_error else "")
        self.sink.on_end(status, reason)
        return SearchSummary(status, reason, self.evaluations, self.proposals,
                             self.elapsed(start), self.best, self.standing.front_ids(),
                             self.standing.hypervolume, self.standing.reference)

    def _run_batches(self, start: float, bar: Callable[[int, int], None] | None,
                     ) -> tuple[str, str]:
        """Batch mode: synchronous batches until a stop reason; a checkpoint after each."""
        while (stop := self.stop_reason(start)) is None:
            remaining = self.spec.budget.evaluations - self.evaluations
            batch = min(self.spec.executor.batch_size, remaining)
            records, cancelled = self._run_batch(batch)
            self.note_repeats(records)
            if cancelled:
                return "cancelled", "cancelled by request"
            self.sink.on_checkpoint(self.checkpoint(self.elapsed(start)))
            if bar is not None:
                bar(self.evaluations, self.spec.budget.evaluations)
        return stop

    @property
    def repeat_rate(self) -> float:
        """Share of repeats among the last ``REPEAT_WINDOW`` proposals (0 before any)."""
        return sum(self._recent) / len(self._recent) if self._recent else 0.0

    def note_repeats(self, records: list[TrialRecord]) -> None:
        """Warn when the agent mostly repeats itself (its job may end ``exhausted`` short of
        the budget): once, and again only after the rate fell below half the threshold."""
        self._recent.extend(rec.cached for rec in records)
        high = len(self._recent) == REPEAT_WINDOW and self.repeat_rate > REPEAT_WARNING
        if high and not self._warned:
            log.warning("job %s: %.0f%% of the last %d proposals repeated evaluated "
                        "architectures (%d of %d evaluations, %d proposals)", self.spec.name,
                        100 * self.repeat_rate, REPEAT_WINDOW, self.evaluations,
                        self.spec.budget.evaluations, self.proposals)
            self._warned = True
        elif self.repeat_rate < REPEAT_WARNING / 2:
            self._warned = False

    def _progress_bar(self) -> Callable[[int, int], None] | None:
        if callable(self.progress):
            return self.progress
        return None

    def _begin_batch(self, proposals: list[Proposal]) -> None:
        """Tell the profilers which new architectures this batch will profile."""
        archs: dict[str, dict[str, Any]] = {}
        for prop in proposals:
            if prop.trial_id in self._replay:
                continue
            try:
                arch = self.space.validate(prop.arch)
            except InvalidArchitecture:
                continue
            key = self.space.key(arch)
            if key not in self.cache:
                archs.setdefault(key, arch)
        self.announce(list(archs.values()))

    def announce(self, archs: list[dict[str, Any]]) -> None:
        """Tell the profilers the new architectures about to be profiled and evaluated."""
        if archs:
            for profiler in self.profilers:
                profiler.begin_batch(archs, self.space)

    def _run_batch(self, size: int) -> tuple[list[TrialRecord], bool]:
        proposals: list[Proposal] = [self.agent.ask() for _ in range(size)]
        self.proposals += len(proposals)
        records: dict[int, TrialRecord] = {}
        pending: dict[str, list[Proposal]] = {}  # new arch key -> proposals waiting on it
        profiled: dict[str, dict[str, float]] = {}
        tasks: list[EvalTask] = []
        replayed: set[int] = set()
        failed_early: dict[str, _Outcome] = {}
        eval_index: dict[str, int] = {}
        self._begin_batch(proposals)
        for prop in proposals:
            try:
                arch = self.space.validate(prop.arch)
                key = self.space.key(arch)
            except InvalidArchitecture as err:
                records[prop.trial_id] = TrialRecord(
                    prop.trial_id, dict(prop.arch), repr(sorted(prop.arch.items())),
                    TrialState.INVALID, info=dict(prop.info), error=str(err))
                continue
            replay = self._replay.pop(prop.trial_id, None)
            if replay is not None and replay.arch_key == key:
                records[prop.trial_id] = replay
                replayed.add(prop.trial_id)
                if not replay.cached:
                    self.evaluations += 1
                continue
            if key in self.cache:
                records[prop.trial_id] = self.record(prop, arch, key, self.cache[key],
                                                     cached=True)
                continue
            if key in pending:
                pending[key].append(prop)
                continue
            pending[key] = [prop]
            self.evaluations += 1
            eval_index[key] = self.evaluations
            metrics, early = self.profile(arch)
            profiled[key] = metrics
            if early is not None:
                if early.state is TrialState.FAILED:
                    failed_early[key] = early
                else:
                    self.cache[key] = early
                continue
            seed = evaluation_seed(self.spec.seed, key)
            tasks.append(EvalTask(prop.trial_id, arch, seed))

        outcomes = self.executor.run(self.evaluator, self.space, tasks,
                                     should_stop=self.sink.should_stop)
        cancelled = any(o.cancelled for o in outcomes)
        for task, out in zip(tasks, outcomes, strict=True):
            if out.cancelled:  # cancelled trials are not told
                continue
            key = self.space.key(task.arch)
            outcome = self.evaluated(task.arch, key, dict(profiled[key]), out)
            self._fill(pending[key], key, outcome, records, eval_index[key])
        # Early-ended (invalid/pruned, or a failed profile) new architectures.
        for key, props in pending.items():
            early = failed_early.get(key) or self.cache.get(key)
            if props[0].trial_id not in records and early is not None and not cancelled:
                self._fill(props, key, early, records, eval_index[key])
        if cancelled:
            return [], True

        ordered = [records[p.trial_id] for p in proposals if p.trial_id in records]
        self.fix_reference(ordered)
        for rec in ordered:
            self.tell(rec, replayed=rec.trial_id in replayed)
        return ordered, False

    def evaluated(self, arch: dict[str, Any], key: str, metrics: dict[str, float],
                  out: EvalOutcome) -> _Outcome:
        """An executor's outcome as the trial's: ``metrics`` (the profilers') completed by
        deferred profilers and the evaluator, the reward computed; cached unless failed."""
        late: _Outcome | None = None
        if out.evaluation is not None and self._deferred:
            # measured elsewhere while the executor trained (queued by ``announce``)
            later, late = self.profile(arch, deferred=True)
            metrics.update(later)
        if out.evaluation is None:  # not cached: a failure may be transient
            return _Outcome(TrialState.FAILED, None, metrics, error=out.error,
                            duration_s=out.duration_s, node=out.node)
        metrics.update(out.evaluation.metrics)
        recorded = dict(out.evaluation.recorded)
        # An evaluator that stopped the candidate early (ASHA) says so in
        # ``recorded["pruned"]``: a partial score is no reward, the trial is PRUNED.
        pruned = recorded.get("pruned") is True
        state, error = (TrialState.PRUNED if pruned else TrialState.COMPLETE,
                        _pruned_reason(recorded) if pruned else None)
        if late is not None:  # the measurement failed, or broke a constraint
            state, error = late.state, late.error
        outcome = _Outcome(state, None, metrics, recorded, error,
                           dict(out.evaluation.artifacts), out.duration_s, out.node)
        outcome = self._finish(metrics, outcome)
        if outcome.state is not TrialState.FAILED:  # a failure may be transient
            self.cache[key] = outcome
        return outcome

    def tell(self, rec: TrialRecord, *, replayed: bool = False) -> None:
        """Tell the agent a finished trial, count it, and store it (unless ``replayed``: it
        was stored before a crash)."""
        # rec.metrics holds only the signal and profiler outputs; rec.recorded
        # (test accuracy and the like) never reaches the agent.
        self.agent.tell(rec.trial_id,
                        TrialResult(rec.state, rec.reward, dict(rec.metrics), rec.error))
        self.last_trial_id = max(self.last_trial_id, rec.trial_id)
        if rec.state is TrialState.FAILED:
            self.consecutive_failures += 1
            self.last_error = rec.error
        elif not rec.cached:
            self.consecutive_failures = 0
        if rec.state is TrialState.COMPLETE and not rec.cached:
            self.completed += 1
        self.standing.add(rec)
        if not replayed:
            self.sink.on_trial(rec)

    def _fill(self, props: list[Proposal], key: str, outcome: _Outcome,
              records: dict[int, TrialRecord], evaluation_index: int) -> None:
        """The first proposal of an architecture owns the evaluation; the rest are repeats."""
        for i, prop in enumerate(props):
            arch = self.space.validate(prop.arch)
            records[prop.trial_id] = self.record(prop, arch, key, outcome, cached=i > 0)
        records[props[0].trial_id].evaluation_index = evaluation_index

    def _agent_reward(self, prop: Proposal, outcome: _Outcome) -> dict[str, float]:
        """The reward an agent asked for in ``prop.info["reward"]`` (a reward spec, e.g.
        MnasNet's with this proposal's latency target), as the metric ``AGENT_REWARD``."""
        request = prop.info.get("reward")
        if request is None or outcome.state is not TrialState.COMPLETE:
            return {}
        try:
            fn = make_reward(RewardSpec.model_validate(request), self.spec.objectives)
            return {AGENT_REWARD: float(fn(outcome.metrics))}
        except (ValueError, MetricNotMeasured):
            return {}  # not computable for this trial: the agent gets no reward of its own

    def take_replay(self, trial_id: int, key: str) -> TrialRecord | None:
        """The trial stored after the checkpoint that this re-proposal repeats, if any."""
        replay = self._replay.pop(trial_id, None)
        return replay if replay is not None and replay.arch_key == key else None

    def record(self, prop: Proposal, arch: dict[str, Any], key: str, outcome: _Outcome,
               *, cached: bool) -> TrialRecord:
        return TrialRecord(
            trial_id=prop.trial_id, arch=arch, arch_key=key, state=outcome.state,
            reward=outcome.reward,
            metrics={**outcome.metrics, **self._agent_reward(prop, outcome)},
            recorded=dict(outcome.recorded), info=dict(prop.info), error=outcome.error,
            cached=cached, duration_s=0.0 if cached else outcome.duration_s,
            node=outcome.node, artifacts=dict(outcome.artifacts),
        )


def run_search(
    spec: JobSpec,
    sink: ResultSink,
    *,
    executor: Executor | None = None,
    resume: ResumeState | None = None,
    progress: bool | Callable[[int, int], None] = False,
) -> SearchSummary:
    """Run a whole job; results leave only through ``sink``."""
    return SearchLoop(spec, sink, executor=executor, resume=resume, progress=progress).run()
