"""Optuna's TPE, NSGA-II and Gaussian-process samplers behind the ask/tell interface.

Each agent owns an in-memory Optuna study and drives it with ``study.ask``/``study.tell``.
Categorical decisions become ``CategoricalDistribution`` over choice *indices* (so any
JSON-able choice works), continuous ones ``FloatDistribution``. Every trial that is not
COMPLETE with all its values finite is told to Optuna as FAIL, which both samplers ignore.

Resuming: Optuna keeps all sampler knowledge in the study's storage (NSGA-II's generations
and parent caches are trial/study system attributes), so ``state_dict`` stores the trials and
study attributes, and ``load_state_dict`` replays them into a fresh study. The one thing
outside the storage is the samplers' random state. Optuna has no public accessor for it, so
``_sampler_rngs`` reaches for the two ``RandomState`` objects that TPE, NSGA-II and the GP
sampler hold and fails loudly if a future Optuna moves them. (Building a fresh seeded sampler
per ask avoids that, but drops the samplers' search-space cache and made every ask
O(trials): 30 ms at 200.)
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from agents.distinct import DEFAULT_MAX_REPEATS, MODEL_MAX_REPEATS, DistinctProposals
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space

# Optuna logs one INFO line per told trial; the search loop records trials itself.
optuna.logging.set_verbosity(optuna.logging.WARNING)

_SAMPLER_TRIES = 3  # sampler proposals rejected by ``space.check`` before a random one
_DIRECTIONS = {"max": "maximize", "min": "minimize"}


def _sampler_rngs(sampler: optuna.samplers.BaseSampler) -> list[np.random.RandomState]:
    """The random states of a TPE, NSGA-II or GP sampler: its own and its random sampler's."""
    try:
        inner = (getattr(sampler, "_independent_sampler", None)
                 or sampler._random_sampler)  # type: ignore[attr-defined]
        return [sampler._rng.rng, inner._rng.rng]  # type: ignore[attr-defined]
    except AttributeError as err:
        raise RuntimeError(
            f"optuna {optuna.__version__}: cannot reach {type(sampler).__name__}'s random "
            f"state to checkpoint it ({err}); the agents need updating for this version"
        ) from None


def _get_rng_state(rng: np.random.RandomState) -> dict[str, Any]:
    state = rng.get_state(legacy=False)
    state["state"]["key"] = state["state"]["key"].tolist()  # JSON-able
    return state


def _set_rng_state(rng: np.random.RandomState, state: Mapping[str, Any]) -> None:
    state = copy.deepcopy(dict(state))
    state["state"]["key"] = np.asarray(state["state"]["key"], dtype=np.uint32)
    rng.set_state(state)


class _OptunaAgent(Agent):
    """Shared ask/tell/checkpoint plumbing; subclasses choose the sampler and the values."""

    supports_continuous: ClassVar[bool] = True

    def __init__(
        self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self._distributions: dict[str, BaseDistribution] = {
            d.name: CategoricalDistribution(tuple(range(d.size)))
            if isinstance(d, Categorical)
            else FloatDistribution(float(d.low), float(d.high))
            for d in space.decisions
        }
        self._rng = np.random.default_rng(self.seed)  # for fallbacks in constrained spaces
        self._next_id = 0
        self._pending: dict[int, int] = {}  # agent trial_id -> optuna trial number
        self._storage, self._study = self._new_study()
        self._serialized: list[dict[str, Any]] = []  # finished trials, as state_dict gives them

    # ---- subclass hooks -------------------------------------------------------------------
    @abstractmethod
    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        """The sampler, built once per study."""

    def _directions(self) -> list[str]:
        return ["maximize"]

    def _values(self, result: TrialResult) -> list[float] | None:
        """The study's values for a result, or None to tell it as FAIL."""
        return [float(result.reward)] if result.ok else None

    # ---- ask / tell -----------------------------------------------------------------------
    def ask(self) -> Proposal:
        trial = None
        for _ in range(_SAMPLER_TRIES):
            trial = self._study.ask(self._distributions)
            try:
                arch = self.space.decode([trial.params[d.name] for d in self.space.decisions])
                break
            except InvalidArchitecture:
                # Samplers ignore FAIL trials, so a model that likes an invalid region would
                # keep proposing it; after a few tries a uniform valid sample goes in instead.
                self._study.tell(trial, state=optuna.trial.TrialState.FAIL)
                trial = None
        if trial is None:
            return self._ask_arch(self.space.sample(self._rng))
        return self._register(trial, arch)

    def _ask_arch(self, arch: Architecture) -> Proposal:
        """A proposal of ``arch`` as a study trial (enqueued: the sampler learns from it as
        from its own; NSGA-II counts it in its generation)."""
        values = self.space.encode(arch)
        self._study.enqueue_trial(
            {d.name: v for d, v in zip(self.space.decisions, values, strict=True)}
        )
        return self._register(self._study.ask(self._distributions), arch)

    def _register(self, trial: optuna.trial.Trial, arch: Architecture) -> Proposal:
        trial_id = self._next_id
        self._next_id += 1
        self._pending[trial_id] = trial.number
        return Proposal(trial_id, arch, {"optuna_trial": trial.number})

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        number = self._pending.pop(trial_id)
        values = self._values(result)
        if values is None or not all(math.isfinite(v) for v in values):
            self._study.tell(number, state=optuna.trial.TrialState.FAIL)
        else:
            self._study.tell(number, values)

    # ---- checkpoints ----------------------------------------------------------------------
    def _new_study(self) -> tuple[optuna.storages.InMemoryStorage, optuna.Study]:
        storage = optuna.storages.InMemoryStorage()
        sampler = self._make_sampler(self.seed)
        _sampler_rngs(sampler)  # fail at construction, not at the first checkpoint
        study = optuna.create_study(
            storage=storage, sampler=sampler, directions=self._directions()
        )
        return storage, study

    def _study_id(self) -> int:
        return self._storage.get_study_id_from_name(self._study.study_name)

    def state_dict(self) -> dict[str, Any]:
        """A snapshot of the study. Finished trials never change in Optuna, so their
        serialized form is kept from one snapshot to the next: the loop checkpoints after every
        batch, and copying every trial each time made long jobs quadratic."""
        trials = self._study.get_trials(deepcopy=False)
        done = self._serialized
        while len(done) < len(trials) and trials[len(done)].state.is_finished():
            done.append(_serialize_trial(trials[len(done)]))
        return {
            "agent": self.name,
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "sampler_rngs": [_get_rng_state(r) for r in _sampler_rngs(self._study.sampler)],
            "next_id": self._next_id,
            "pending": [[t, n] for t, n in self._pending.items()],
            "trials": done + [_serialize_trial(t) for t in trials[len(done):]],
            "study_system_attrs": copy.deepcopy(
                self._storage.get_study_system_attrs(self._study_id())),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise ValueError(f"state is for agent {state.get('agent')!r}, not {self.name!r}")
        state = copy.deepcopy(dict(state))
        self._storage, self._study = self._new_study()
        self._serialized = []
        # Trials are replayed in order, so Optuna numbers (and NSGA-II's cached parent ids,
        # which are storage trial ids of this fresh storage) come out the same.
        for t in state["trials"]:
            missing = set(self._distributions) - set(t["params"])
            if missing:
                raise ValueError(f"state trial lacks decisions {sorted(missing)} of the space")
            self._study.add_trial(optuna.trial.create_trial(
                state=optuna.trial.TrialState[t["state"]],
                params=t["params"],
                distributions=self._distributions,
                values=t["values"],
                system_attrs=t["system_attrs"],
                user_attrs=t["user_attrs"],
            ))
        for key, value in state["study_system_attrs"].items():
            self._storage.set_study_system_attr(self._study_id(), key, value)
        rngs = _sampler_rngs(self._study.sampler)
        if len(rngs) != len(state["sampler_rngs"]):
            raise ValueError("state holds a different number of sampler RNGs than this sampler")
        for rng, rng_state in zip(rngs, state["sampler_rngs"], strict=True):
            _set_rng_state(rng, rng_state)
        self._rng.bit_generator.state = state["rng"]
        self._next_id = int(state["next_id"])
        self._pending = {int(t): int(n) for t, n in state["pending"]}


def _serialize_trial(trial: optuna.trial.FrozenTrial) -> dict[str, Any]:
    return copy.deepcopy({
        "state": trial.state.name,
        "params": trial.params,
        "values": trial.values,
        "system_attrs": trial.system_attrs,
        "user_attrs": trial.user_attrs,
    })


class TPEAgent(DistinctProposals, _OptunaAgent):
    """Tree-structured Parzen Estimator on the scalar reward (maximized)."""

    name: ClassVar[str] = "tpe"

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        n_startup_trials: int = 10,
        multivariate: bool = True,
        max_repeats: int = DEFAULT_MAX_REPEATS,
    ) -> None:
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        self.n_startup_trials = int(n_startup_trials)
        self.multivariate = bool(multivariate)
        super().__init__(space, objectives=objectives, seed=seed, max_repeats=max_repeats)

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(
            n_startup_trials=self.n_startup_trials, multivariate=self.multivariate, seed=seed
        )


class _OnObjectives(_OptunaAgent):
    """A sampler that optimizes the job's objectives themselves (their metric values, one
    study direction each) when there are two or more, and the scalar reward otherwise. A
    trial missing an objective's metric, or not COMPLETE, is told as FAIL."""

    multi_objective: ClassVar[bool] = True

    @property
    def _on_metrics(self) -> bool:
        return len(self.objectives) >= 2

    def _directions(self) -> list[str]:
        if not self._on_metrics:
            return ["maximize"]
        return [_DIRECTIONS[o.direction] for o in self.objectives]

    def _values(self, result: TrialResult) -> list[float] | None:
        if not self._on_metrics:
            return super()._values(result)
        if result.state is not TrialState.COMPLETE:
            return None
        if any(o.metric not in result.metrics for o in self.objectives):
            return None
        return [float(result.metrics[o.metric]) for o in self.objectives]


class NSGA2Agent(DistinctProposals, _OnObjectives):
    """NSGA-II on the job's objectives (metric values); on the reward for one objective."""

    name: ClassVar[str] = "nsga2"

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        population_size: int = 20,
        mutation_prob: float | None = None,
        crossover_prob: float = 0.9,
        max_repeats: int = DEFAULT_MAX_REPEATS,
    ) -> None:
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if mutation_prob is not None and not 0.0 <= mutation_prob <= 1.0:
            raise ValueError(f"mutation_prob must be in [0, 1], got {mutation_prob}")
        if not 0.0 <= crossover_prob <= 1.0:
            raise ValueError(f"crossover_prob must be in [0, 1], got {crossover_prob}")
        self.population_size = int(population_size)
        self.mutation_prob = mutation_prob
        self.crossover_prob = float(crossover_prob)
        super().__init__(space, objectives=objectives, seed=seed, max_repeats=max_repeats)

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(
            population_size=self.population_size,
            mutation_prob=self.mutation_prob,
            crossover_prob=self.crossover_prob,
            seed=seed,
        )


class GPAgent(DistinctProposals, _OnObjectives):
    """Optuna's ``GPSampler``: Gaussian-process Bayesian optimisation, categorical decisions
    in the kernel. One objective: log expected improvement of the reward. Two or more: one GP
    per objective and log expected hypervolume improvement (Daulton et al. 2020), so it is a
    model-based peer of NSGA-II on Pareto jobs."""

    name: ClassVar[str] = "gp"

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        n_startup_trials: int = 10,
        max_repeats: int = MODEL_MAX_REPEATS,
    ) -> None:
        if n_startup_trials < 0:
            raise ValueError(f"n_startup_trials must be >= 0, got {n_startup_trials}")
        self.n_startup_trials = int(n_startup_trials)
        super().__init__(space, objectives=objectives, seed=seed, max_repeats=max_repeats)

    def _make_sampler(self, seed: int) -> optuna.samplers.BaseSampler:
        return optuna.samplers.GPSampler(
            n_startup_trials=self.n_startup_trials, seed=seed, warn_independent_sampling=False
        )
