"""Steady-state execution (``executor.mode = "steady"``): ``batch_size`` proposals stay in
flight; each finished evaluation is recorded and told at once, and one new proposal takes its
place, so no worker waits for the slowest trial of a batch.

The price is determinism: results are told, and shape the agent's next proposals, in the
order they finish, which on Ray varies from run to run (batch mode stays the default for
that). On the local executor evaluations run one at a time in submission order, so a steady
job there is still deterministic for its seed.

Everything else is as in batch mode (``search.loop``): repeats of evaluated architectures are
answered from the cache, and repeats of one in flight wait for it, neither evaluated nor
counted; the profilers hear of each round's new architectures (``begin_batch``) before they
profile them; invalid, rejected or failed-to-profile candidates end at once; the budget counts
distinct evaluations started, so evaluations in flight count and the budget is never
exceeded. Evaluation indices follow the order evaluations finish. A stop reason (budget,
time, proposals, failures) stops the asking and lets the evaluations in flight finish and be
recorded; a cancel stops them unrecorded.

Resume. A checkpoint follows every round (the results that came in and the proposals that
replaced them) and lists the proposals in flight with their profiler metrics. A resumed job
tells the agent, which holds those proposals as pending, the ones stored before the crash,
in trial-id order as they were told the first time, without storing them again; it submits
the others again without asking or counting them again. Trials stored after the checkpoint
that were not in flight were answered at once after that round's results; the restored
agent, told the same results in the same order, proposes them again and they are replayed,
as in batch mode. Nothing is lost and nothing is stored twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agents.base import Proposal, TrialState
from search.executors import EvalOutcome, EvalTask
from search.sinks import TrialRecord
from spaces.base import InvalidArchitecture

if TYPE_CHECKING:
    from search.loop import SearchLoop

log = logging.getLogger(__name__)

#: How often the loop looks at the job's cancel flag while evaluations run (seconds).
POLL_S = 0.2

#: A finished trial to tell: (record, stored before a crash, owns an evaluation).
Told = tuple[TrialRecord, bool, bool]


@dataclass
class Flight:
    """One evaluation in flight: the proposal that owns it, then repeats waiting on it."""

    props: list[Proposal]
    arch: dict[str, Any]
    key: str
    metrics: dict[str, float] = field(default_factory=dict)  # profilers run before it

    @property
    def owner(self) -> int:
        return self.props[0].trial_id

    def to_json(self) -> dict[str, Any]:
        return {"key": self.key, "arch": dict(self.arch), "metrics": dict(self.metrics),
                "proposals": [{"trial_id": p.trial_id, "arch": dict(p.arch),
                               "info": dict(p.info)} for p in self.props]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Flight:
        props = [Proposal(int(p["trial_id"]), dict(p["arch"]), dict(p["info"]))
                 for p in data["proposals"]]
        return cls(props, dict(data["arch"]), str(data["key"]), dict(data["metrics"]))


class SteadyRun:
    """Drives one ``SearchLoop`` in steady mode; ``drive`` returns its stop reason."""

    def __init__(self, loop: SearchLoop, start: float,
                 bar: Callable[[int, int], None] | None = None) -> None:
        self.loop = loop
        self.start = start
        self.bar = bar
        self.size = loop.spec.executor.batch_size
        self.flights: dict[str, Flight] = {}  # arch key -> its evaluation in flight
        self.owners: dict[int, str] = {}  # trial id that owns an evaluation -> arch key
        #: Proposals in flight: evaluations and the repeats waiting on them (those of the
        #: round being asked included).
        self.busy = 0
        #: Distinct evaluations finished (the last evaluation index given).
        self.evaluated = loop.evaluations - len(loop.in_flight_at_checkpoint)

    def drive(self) -> tuple[str, str]:
        try:
            self._resume()
            while True:
                stop = self._refill()
                self._checkpoint()
                if not self.flights:  # full slots would hold at least one evaluation
                    assert stop is not None
                    return stop
                outcomes = self._wait()
                if outcomes is None:
                    return self._cancel()
                self._land(outcomes)
                if self.bar is not None:
                    self.bar(self.evaluated, self.loop.spec.budget.evaluations)
        except BaseException:
            self._abandon()
            raise

    # ---- asking ------------------------------------------------------------------------------
    def _refill(self) -> tuple[str, str] | None:
        """Ask until ``batch_size`` proposals are in flight or a stop reason holds (returned);
        answer what needs no evaluation at once, submit the rest."""
        loop = self.loop
        while True:
            stop = None
            new: dict[str, Flight] = {}
            now: list[Told] = []
            while self.busy < self.size:
                if (stop := loop.stop_reason(self.start)) is not None:
                    break
                self._ask(new, now)
            if not new and not now:
                return stop
            self._tell(now)
            loop.announce([f.arch for f in new.values()])
            tasks, early = [], []
            for flight in new.values():
                flight.metrics, end = loop.profile(flight.arch)
                if end is None:
                    self._fly(flight, tasks)
                    continue
                if end.state is not TrialState.FAILED:  # a failure may be transient
                    loop.cache[flight.key] = end
                self.busy -= len(flight.props)
                early.extend(self._resolve(flight, end))
            loop.executor.submit(loop.evaluator, loop.space, tasks)
            self._tell(early)
            if stop is not None:
                return stop

    def _ask(self, new: dict[str, Flight], now: list[Told]) -> None:
        """One proposal: answered now (invalid, replayed, cached), waiting on an evaluation
        in flight, or a new evaluation (counted now)."""
        loop = self.loop
        prop = loop.agent.ask()
        loop.proposals += 1
        loop.last_trial_id = max(loop.last_trial_id, prop.trial_id)
        try:
            arch = loop.space.validate(prop.arch)
            key = loop.space.key(arch)
        except InvalidArchitecture as err:
            now.append((TrialRecord(prop.trial_id, dict(prop.arch),
                                    repr(sorted(prop.arch.items())), TrialState.INVALID,
                                    info=dict(prop.info), error=str(err)), False, False))
            return
        replay = loop.take_replay(prop.trial_id, key)
        if replay is not None:  # stored after the checkpoint, before a crash
            owner = not replay.cached
            if owner:
                loop.evaluations += 1
                if replay.state is not TrialState.FAILED:
                    loop.cache[key] = loop.outcome_of(replay)
            now.append((replay, True, owner))
            return
        if key in loop.cache:
            now.append((loop.record(prop, arch, key, loop.cache[key], cached=True), False,
                        False))
            return
        self.busy += 1
        flight = self.flights.get(key) or new.get(key)
        if flight is not None:
            flight.props.append(prop)
            return
        new[key] = Flight([prop], arch, key)
        loop.evaluations += 1

    def _fly(self, flight: Flight, tasks: list[EvalTask]) -> None:
        from search.loop import evaluation_seed

        self.flights[flight.key] = flight
        self.owners[flight.owner] = flight.key
        tasks.append(EvalTask(flight.owner, flight.arch,
                              evaluation_seed(self.loop.spec.seed, flight.key)))

    # ---- results -----------------------------------------------------------------------------
    def _wait(self) -> list[EvalOutcome] | None:
        """Finished evaluations (at least one), or None when the job is to stop now."""
        while True:
            if self.loop.sink.should_stop():
                return None
            outcomes = [o for o in self.loop.executor.wait(POLL_S) if not o.cancelled]
            if outcomes:
                return outcomes

    def _land(self, outcomes: list[EvalOutcome]) -> None:
        told: list[Told] = []
        for out in outcomes:
            flight = self.flights.pop(self.owners.pop(out.trial_id))
            self.busy -= len(flight.props)
            outcome = self.loop.evaluated(flight.arch, flight.key, dict(flight.metrics), out)
            told.extend(self._resolve(flight, outcome))
        self._tell(told)

    def _resolve(self, flight: Flight, outcome: Any,
                 stored: list[TrialRecord | None] | None = None) -> list[Told]:
        """The flight's trials: the owner's evaluation, the repeats answered from it (those
        ``stored`` before a crash as they were)."""
        out = []
        for i, prop in enumerate(flight.props):
            rec = stored[i] if stored else None
            fresh = rec is None
            if rec is None:
                rec = self.loop.record(prop, flight.arch, flight.key, outcome, cached=i > 0)
            out.append((rec, not fresh, i == 0))
        return out

    def _tell(self, told: list[Told]) -> None:
        """Tell finished trials in trial-id order (a resumed job tells the stored ones in the
        same order again); each evaluation gets the next evaluation index."""
        if not told:
            return
        told.sort(key=lambda t: t[0].trial_id)
        self.loop.fix_reference([rec for rec, _, _ in told])
        for rec, stored, owner in told:
            if owner:
                self.evaluated += 1
                if not stored:
                    rec.evaluation_index = self.evaluated
            self.loop.tell(rec, replayed=stored)
            self.loop.note_repeats([rec])

    # ---- checkpoints, resume, stopping -------------------------------------------------------
    def _checkpoint(self) -> None:
        flights = sorted(self.flights.values(), key=lambda f: f.owner)
        self.loop.sink.on_checkpoint(self.loop.checkpoint(
            self.loop.elapsed(self.start), in_flight=[f.to_json() for f in flights]))

    def _resume(self) -> None:
        """Continue a checkpoint's proposals in flight: tell those stored since, submit the
        others again."""
        loop = self.loop
        landed: list[Told] = []
        tasks: list[EvalTask] = []
        for entry in loop.in_flight_at_checkpoint:
            flight = Flight.from_json(entry)
            stored = [loop.landed.pop(p.trial_id, None) for p in flight.props]
            source = next((r for r in stored if r is not None), None)
            if source is None:
                self._fly(flight, tasks)
                self.busy += len(flight.props)
                continue
            outcome = loop.outcome_of(source)
            if outcome.state is not TrialState.FAILED:
                loop.cache[flight.key] = outcome
            landed.extend(self._resolve(flight, outcome, stored))
        loop.in_flight_at_checkpoint = []
        if tasks:
            loop.announce([self.flights[self.owners[t.trial_id]].arch for t in tasks])
            loop.executor.submit(loop.evaluator, loop.space, tasks)
        self._tell(landed)

    def _cancel(self) -> tuple[str, str]:
        """Stop the evaluations in flight, unrecorded (never finished: not counted)."""
        self.loop.evaluations -= len(self.flights)
        self.flights.clear()
        self.owners.clear()
        self.busy = 0
        self.loop.executor.cancel()
        return "cancelled", "cancelled by request"

    def _abandon(self) -> None:
        """The loop stops on an error: evaluations in flight must not run on."""
        if not self.flights:
            return
        try:
            self.loop.executor.cancel()
        except Exception:  # noqa: BLE001 - the error that stopped the loop is the one raised
            log.warning("cancelling %d evaluations in flight failed", len(self.flights),
                        exc_info=True)
