"""Regularized (aging) evolution, Real et al., AAAI 2019 ("Regularized Evolution for Image
Classifier Architecture Search"), the strongest simple baseline on NAS-Bench-201.

Cycle: sample ``sample_size`` individuals from the population (with replacement, as in the
paper), mutate the best of them by changing one decision to a different value, and when the
child's result comes back append it and drop the *oldest* individual, not the worst. Aging
keeps re-testing good genes and makes the search robust to noisy rewards.

Until the population is full it proposes random architectures. Proposals may be in flight
at once: random ones in flight count towards filling the population, so a large batch does not
over-fill it. Trials that fail, are invalid or pruned never enter the population.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from agents.distinct import DEFAULT_MAX_REPEATS, DistinctProposals
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space

_MUTATION_TRIES = 100  # mutations rejected by ``space.check`` before falling back to random


class EvolutionSampler(Agent):
    """Tournament selection + one-decision mutation + aging, on the scalar reward (proposals
    may repeat; ``RegularizedEvolution`` answers repeats inside)."""

    name: ClassVar[str] = "evolution"
    # Continuous decisions mutate by a fresh uniform draw, so compression ratios work too.
    supports_continuous: ClassVar[bool] = True

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        population_size: int = 10,
        sample_size: int = 3,
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        if population_size < 2:
            raise ValueError(f"population_size must be >= 2, got {population_size}")
        if not 1 <= sample_size <= population_size:
            raise ValueError(
                f"sample_size must be in 1..population_size={population_size}, "
                f"got {sample_size}"
            )
        self.population_size = int(population_size)
        self.sample_size = int(sample_size)
        self._rng = np.random.default_rng(self.seed)
        self._next_id = 0
        # trial_id -> (arch, proposed at random while filling the population?)
        self._pending: dict[int, tuple[Architecture, bool]] = {}
        # (trial_id, arch, reward), oldest first
        self._population: deque[tuple[int, Architecture, float]] = deque()

    # ---- ask / tell -----------------------------------------------------------------------
    def ask(self) -> Proposal:
        trial_id = self._next_id
        self._next_id += 1
        filling = sum(1 for _, is_random in self._pending.values() if is_random)
        if not self._population or len(self._population) + filling < self.population_size:
            arch = self.space.sample(self._rng)
            info: dict[str, Any] = {"origin": "random"}
            self._pending[trial_id] = (arch, True)
        else:
            parent_id, parent = self._tournament()
            arch, mutated = self._mutate(parent)
            info = {"origin": "mutation", "parent": parent_id, "mutated": mutated}
            self._pending[trial_id] = (arch, False)
        return Proposal(trial_id, copy.deepcopy(arch), info)

    def _ask_arch(self, arch: Architecture) -> Proposal:
        """A proposal of ``arch`` (not a mutation): it joins the population like any child."""
        trial_id = self._next_id
        self._next_id += 1
        self._pending[trial_id] = (copy.deepcopy(arch), False)
        return Proposal(trial_id, copy.deepcopy(arch), {"origin": "random"})

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        arch, _ = self._pending.pop(trial_id)
        if result.ok and math.isfinite(float(result.reward)):
            self._population.append((trial_id, arch, float(result.reward)))
            while len(self._population) > self.population_size:
                self._population.popleft()  # aging: the oldest dies, however good

    # ---- evolution ------------------------------------------------------------------------
    def _tournament(self) -> tuple[int, Architecture]:
        picks = self._rng.integers(len(self._population), size=self.sample_size)
        best = max((self._population[int(i)] for i in picks), key=lambda ind: ind[2])
        return best[0], best[1]

    def _mutate(self, parent: Architecture) -> tuple[Architecture, str | None]:
        """Change one decision to a different value; ``(child, decision name)``."""
        mutable = [
            d for d in self.space.decisions
            if (d.size > 1 if isinstance(d, Categorical) else d.low < d.high)
        ]
        if not mutable:
            return copy.deepcopy(parent), None
        values = self.space.encode(parent)
        index = {d.name: i for i, d in enumerate(self.space.decisions)}
        for _ in range(_MUTATION_TRIES):
            d = mutable[int(self._rng.integers(len(mutable)))]
            i = index[d.name]
            child = list(values)
            if isinstance(d, Categorical):
                new = int(self._rng.integers(d.size - 1))
                child[i] = new + 1 if new >= values[i] else new
            else:
                child[i] = float(self._rng.uniform(d.low, d.high))
            try:
                return self.space.decode(child), d.name
            except InvalidArchitecture:
                continue
        return self.space.sample(self._rng), None

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "agent": self.name,
            "rng": self._rng.bit_generator.state,
            "next_id": self._next_id,
            "pending": [[t, arch, is_random] for t, (arch, is_random) in self._pending.items()],
            "population": [list(ind) for ind in self._population],
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise ValueError(f"state is for agent {state.get('agent')!r}, not {self.name!r}")
        state = copy.deepcopy(dict(state))
        self._rng.bit_generator.state = state["rng"]
        self._next_id = int(state["next_id"])
        self._pending = {int(t): (arch, bool(r)) for t, arch, r in state["pending"]}
        self._population = deque(
            (int(t), arch, float(reward)) for t, arch, reward in state["population"]
        )


class RegularizedEvolution(DistinctProposals, EvolutionSampler):
    """Regularized evolution whose repeats (a mutation back to an evaluated architecture)
    are told their result inside the agent and re-drawn (``agents.distinct``)."""

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        population_size: int = 10,
        sample_size: int = 3,
        max_repeats: int = DEFAULT_MAX_REPEATS,
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed, max_repeats=max_repeats,
                         population_size=population_size, sample_size=sample_size)
