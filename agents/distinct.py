"""Repeat handling for samplers that propose architectures already evaluated (TPE, NSGA-II,
GP, SMAC, evolution): only distinct architectures leave the agent.

Budgets count distinct evaluations and the loop answers a repeat from its cache, but every
repeat still costs one of the job's ``max_proposals``: a sampler whose model or population has
collapsed (NSGA-II on NAS-Bench-201 repeated 92% of its proposals after ~230 evaluations)
ends ``exhausted`` far short of its budget, and each repeat is a loop round trip (checkpoint
included). ``DistinctProposals`` answers repeats inside the agent instead:

- a proposal of an architecture whose result the agent was told is told that result at once
  (the sampler's model learns from it, as it would from the loop's cache) and the sampler is
  asked again;
- a proposal of an architecture still in flight waits: it is told the result when the first
  one is;
- after ``max_repeats`` such re-asks in one ``ask``, a uniformly drawn architecture not seen
  before is proposed instead, as the sampler's own trial (``_ask_arch``), so the model learns
  from it too (the random-interleaving fallback of SMAC and BOHB).

Only when no unseen architecture can be found (the space is exhausted) does a repeat leave
the agent: the loop answers it from its cache and counts it, so a job that cannot reach its
budget still ends ``exhausted``. Failed trials are not remembered (the loop does not cache
them either: a failure may be transient), so proposing one again re-evaluates it.

Proposal ids seen by the loop are consecutive; the sampler's own ids stay inside.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from spaces.base import Architecture, Space

DEFAULT_MAX_REPEATS = 10  # re-asks per proposal before a random unseen architecture
#: GP and SMAC refit a model on every ask (0.5-0.8 s at 200 trials): one re-ask, then unseen
MODEL_MAX_REPEATS = 1
_UNSEEN_TRIES = 1000  # uniform draws looking for an unseen architecture


class DistinctProposals(Agent):
    """Mixin placed before a sampler agent's class in the bases: that class's ``ask``/``tell``
    become the inner sampler's, wrapped. The sampler class provides
    ``_ask_arch(arch) -> Proposal``: a proposal of ``arch`` as its own trial (its inner id),
    told back through its ``tell`` like any other. (Not declared here: an abstract method on
    the mixin would shadow the sampler's, which comes later in the MRO.)"""

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        max_repeats: int = DEFAULT_MAX_REPEATS,
        **options: Any,
    ) -> None:
        """``options`` go to the sampler class (the next base)."""
        if max_repeats < 0:
            raise ValueError(f"max_repeats must be >= 0, got {max_repeats}")
        self.max_repeats = int(max_repeats)
        super().__init__(space, objectives=objectives, seed=seed, **options)  # type: ignore[call-arg]
        # Seeded apart from the sampler's own generator, so the sampler's draws are untouched.
        self._unseen_rng = np.random.default_rng([self.seed, 0x5EE17])
        self._outer_next = 0
        self._outer: dict[int, tuple[int, str]] = {}  # outer id -> (inner id, arch key)
        self._results: dict[str, TrialResult] = {}  # arch key -> result told (not FAILED)
        self._rows: list[list[Any]] = []  # the same, serialized once (checkpoints are cheap)
        self._in_flight: dict[str, list[int]] = {}  # arch key -> inner ids waiting on it
        # inner id -> the loop's trial id of its architecture (absorbed repeats: the trial
        # that evaluated it), so a sampler's note naming a trial (evolution's "parent") names
        # the one the loop recorded
        self._public: dict[int, int] = {}
        self._first: dict[str, int] = {}  # arch key -> loop trial id that proposed it first
        self.repeats_answered = 0  # repeats told from memory, over the agent's life
        self.unseen_fallbacks = 0  # random unseen architectures proposed in their place

    # ---- ask / tell -----------------------------------------------------------------------
    def _seen(self, key: str) -> bool:
        return key in self._results or key in self._in_flight

    def _absorb(self, prop: Proposal, key: str) -> None:
        """Answer a repeat inside the agent: tell its remembered result, or wait on it."""
        self.repeats_answered += 1
        if key in self._first:
            self._public[prop.trial_id] = self._first[key]
        if key in self._results:
            super().tell(prop.trial_id, self._results[key])
        else:
            self._in_flight[key].append(prop.trial_id)

    def _unseen(self) -> Architecture | None:
        for _ in range(_UNSEEN_TRIES):
            arch = self.space.sample(self._unseen_rng)
            if not self._seen(self.space.key(arch)):
                return arch
        return None

    def ask(self) -> Proposal:
        prop = super().ask()
        key = self.space.key(prop.arch)
        skipped = 0
        while self._seen(key) and skipped < self.max_repeats:
            self._absorb(prop, key)
            skipped += 1
            prop = super().ask()
            key = self.space.key(prop.arch)
        info = dict(prop.info)
        if self._seen(key):
            arch = self._unseen()
            if arch is not None:  # else the repeat leaves: the loop answers and counts it
                self._absorb(prop, key)
                skipped += 1
                self.unseen_fallbacks += 1
                prop = self._ask_arch(arch)  # type: ignore[attr-defined]
                key = self.space.key(prop.arch)
                info = {**prop.info, "origin": "random_unseen"}
        if skipped:
            info["repeats_answered"] = skipped
        if key not in self._results:
            self._in_flight.setdefault(key, [])
        outer = self._outer_next
        self._outer_next += 1
        self._outer[outer] = (prop.trial_id, key)
        self._public[prop.trial_id] = outer
        self._first.setdefault(key, outer)
        if isinstance(info.get("parent"), int):
            info["parent"] = self._public.get(info["parent"], info["parent"])
        return Proposal(outer, prop.arch, info)

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._outer:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        inner, key = self._outer.pop(trial_id)
        super().tell(inner, result)
        if result.state is not TrialState.FAILED and key not in self._results:
            self._results[key] = result
            self._rows.append([key, result.state.value, result.reward, dict(result.metrics),
                               result.error])
        if not any(k == key for _, k in self._outer.values()):
            for waiting in self._in_flight.pop(key, []):
                super().tell(waiting, result)

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state["distinct"] = {
            "rng": self._unseen_rng.bit_generator.state,
            "outer_next": self._outer_next,
            "outer": [[o, i, k] for o, (i, k) in self._outer.items()],
            "results": list(self._rows),  # rows are never mutated
            "in_flight": [[k, list(w)] for k, w in self._in_flight.items()],
            "counts": [self.repeats_answered, self.unseen_fallbacks],
            "public": [[i, o] for i, o in self._public.items()],
            "first": [[k, o] for k, o in self._first.items()],
        }
        return state

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise ValueError(f"state is for agent {state.get('agent')!r}, not {self.name!r}")
        state = dict(state)
        mine = state.pop("distinct", None)
        if mine is None:
            raise ValueError(f"state of {self.name!r} lacks its repeat memory ('distinct')")
        super().load_state_dict(state)
        self._unseen_rng.bit_generator.state = dict(mine["rng"])
        self._outer_next = int(mine["outer_next"])
        self._outer = {int(o): (int(i), str(k)) for o, i, k in mine["outer"]}
        self._rows = [list(row) for row in mine["results"]]
        self._results = {k: TrialResult(TrialState(s), r, dict(m), e)
                         for k, s, r, m, e in self._rows}
        self._in_flight = {k: [int(x) for x in w] for k, w in mine["in_flight"]}
        self.repeats_answered, self.unseen_fallbacks = (int(c) for c in mine["counts"])
        self._public = {int(i): int(o) for i, o in mine["public"]}
        self._first = {str(k): int(o) for k, o in mine["first"]}
