"""Uniform random search: the baseline every learning agent must beat on the same budget.

It ignores rewards, so a fixed seed gives the same proposals whatever the results; it still
tracks its pending trials so that the ask/tell contract (unknown ids raise) holds like
for every other agent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from spaces.base import Space


class RandomSearch(Agent):
    """Samples each proposal uniformly from the space (continuous decisions included)."""

    name: ClassVar[str] = "random"
    supports_continuous: ClassVar[bool] = True

    def __init__(
        self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self._rng = np.random.default_rng(self.seed)
        self._next_id = 0
        self._pending: set[int] = set()

    def ask(self) -> Proposal:
        trial_id = self._next_id
        self._next_id += 1
        self._pending.add(trial_id)
        return Proposal(trial_id, self.space.sample(self._rng), {"origin": "random"})

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        self._pending.discard(trial_id)

    def state_dict(self) -> dict[str, Any]:
        return {
            "agent": self.name,
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "next_id": self._next_id,
            "pending": sorted(self._pending),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise ValueError(f"state is for agent {state.get('agent')!r}, not {self.name!r}")
        self._rng.bit_generator.state = copy.deepcopy(state["rng"])
        self._next_id = int(state["next_id"])
        self._pending = {int(t) for t in state["pending"]}
