"""SMAC3 behind the ask/tell interface: random-forest Bayesian optimisation.

SMAC (Lindauer et al., JMLR 2022; ``smac`` on PyPI) models the reward with a random forest,
which handles categorical decisions natively, and picks the next configuration by expected
improvement, maximised by local search plus interleaved random configurations. We use its
hyperparameter-optimisation facade with a deterministic scenario (one evaluation per
configuration) and minimise ``-reward``. Decisions become ConfigSpace hyperparameters over
choice *indices* (categorical) or ``[low, high]`` floats (continuous).

Resuming: SMAC's state (run history, intensifier queue, random design, forest seeds) has no
exported form we could store without pickling, so the agent keeps a log of the ask/tell calls
it received and ``load_state_dict`` replays that log into a fresh, identically seeded
optimiser. SMAC is deterministic for a seed and call sequence, so the replayed optimiser
proposes what the original would; the price is a resume that re-runs every earlier ask.
SMAC writes its run history under a temporary folder, removed by ``close``.

One exception to that determinism, mended here: SMAC 2.4's local search de-duplicates its
start points through a ``set`` of configurations, whose order follows Python's per-process
string hashing, and the local search's random draws follow that order. So the same seed gave
different proposals in another process (a restart, a Ray worker), and a replayed log told
costs to configurations that were never proposed. ``_start_points_in_value_order`` puts the
start points in the order of their values, so the search is the same in every process.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from ConfigSpace import Categorical as CSCategorical
from ConfigSpace import Configuration, ConfigurationSpace, Float
from smac import HyperparameterOptimizationFacade as Facade
from smac import Scenario
from smac.acquisition.maximizer.local_search import LocalSearch
from smac.runhistory import StatusType, TrialInfo, TrialValue

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from agents.distinct import MODEL_MAX_REPEATS, DistinctProposals
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space

_SAMPLER_TRIES = 3  # configurations refused by ``space.check`` before a random one


def _start_points_in_value_order(
    original: Callable[..., list[Configuration]],
) -> Callable[..., list[Configuration]]:
    """SMAC's start-point method, its result sorted by the configurations' values."""

    def start_points(self: LocalSearch, *args: Any, **kwargs: Any) -> list[Configuration]:
        points = original(self, *args, **kwargs)
        return sorted(points, key=lambda c: tuple(np.nan_to_num(c.get_array(), nan=-1.0)))

    start_points.value_ordered = True  # type: ignore[attr-defined]
    return start_points


if not getattr(LocalSearch._get_init_points_from_previous_configs, "value_ordered", False):
    LocalSearch._get_init_points_from_previous_configs = _start_points_in_value_order(
        LocalSearch._get_init_points_from_previous_configs)


class _SMAC(Agent):
    """SMAC3's random-forest BO (``HyperparameterOptimizationFacade``) on the scalar reward."""

    name: ClassVar[str] = "smac"
    supports_continuous: ClassVar[bool] = True

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        n_initial: int = 10,
        random_probability: float = 0.2,
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        if n_initial < 1:
            raise ValueError(f"n_initial must be >= 1, got {n_initial}")
        if not 0.0 <= random_probability <= 1.0:
            raise ValueError(f"random_probability must be in [0, 1], got {random_probability}")
        self.n_initial = int(n_initial)
        self.random_probability = float(random_probability)
        self._folder = Path(tempfile.mkdtemp(prefix="lightsearch-smac-"))
        self._log: list[list[Any]] = []  # ["ask"], ["arch", values], ["tell", id, cost]
        self._build()

    def _build(self) -> None:
        hps = [CSCategorical(d.name, list(range(d.size))) if isinstance(d, Categorical)
               else Float(d.name, (float(d.low), float(d.high))) for d in self.space.decisions]
        cs = ConfigurationSpace(seed=self.seed)
        cs.add(hps)
        run = self._folder / f"run{len(list(self._folder.iterdir()))}"  # one per (re)build
        scenario = Scenario(cs, deterministic=True, n_trials=10**9, seed=self.seed,
                            output_directory=run)
        self._smac = Facade(
            scenario, target_function=_never_called, overwrite=True,
            logging_level=logging.ERROR,
            initial_design=Facade.get_initial_design(scenario, n_configs=self.n_initial),
            random_design=Facade.get_random_design(scenario,
                                                   probability=self.random_probability),
            intensifier=Facade.get_intensifier(scenario, max_config_calls=1),
        )
        self._rng = np.random.default_rng(self.seed)  # fallbacks in constrained spaces
        self._next_id = 0
        self._pending: dict[int, Any] = {}  # trial_id -> SMAC TrialInfo
        self._worst: float | None = None  # highest cost told

    # ---- ask / tell -----------------------------------------------------------------------
    def ask(self) -> Proposal:
        self._log.append(["ask"])
        return self._ask()

    def _ask(self) -> Proposal:
        info = arch = None
        for _ in range(_SAMPLER_TRIES):
            info = self._smac.ask()
            try:
                arch = self.space.decode([info.config[d.name] for d in self.space.decisions])
                break
            except InvalidArchitecture:
                # Told as a crash (SMAC's crash cost), so its model learns to avoid it.
                self._tell_smac(info, None)
                arch = None
        if arch is None:  # a uniform valid sample, told to SMAC in place of its own
            return self._given(self.space.sample(self._rng))
        return self._register(info, arch)

    def _ask_arch(self, arch: Architecture) -> Proposal:
        """A proposal of ``arch`` as a SMAC trial of that configuration (logged for replay)."""
        values = self.space.encode(arch)
        self._log.append(["arch", list(values)])
        return self._given(arch)

    def _given(self, arch: Architecture) -> Proposal:
        info = TrialInfo(Configuration(self._smac.scenario.configspace, values=dict(
            zip([d.name for d in self.space.decisions], self.space.encode(arch),
                strict=True))))
        return self._register(info, arch)

    def _register(self, info: Any, arch: Architecture) -> Proposal:
        trial_id = self._next_id
        self._next_id += 1
        self._pending[trial_id] = info
        return Proposal(trial_id, arch)

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        cost = -float(result.reward) if result.ok and math.isfinite(result.reward) else None
        self._log.append(["tell", trial_id, cost])
        self._tell(trial_id, cost)

    def _tell(self, trial_id: int, cost: float | None) -> None:
        self._tell_smac(self._pending.pop(trial_id), cost)

    def _tell_smac(self, info: Any, cost: float | None) -> None:
        """A trial without a reward (failed, invalid, pruned) costs the worst cost seen so far
        (0 before any): SMAC's forest cannot fit its default infinite crash cost."""
        if cost is None:
            cost, status = (self._worst if self._worst is not None else 0.0), StatusType.CRASHED
        else:
            self._worst = cost if self._worst is None else max(self._worst, cost)
            status = StatusType.SUCCESS
        self._smac.tell(info, TrialValue(cost=cost, status=status), save=False)

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"agent": self.name, "seed": self.seed, "log": [list(e) for e in self._log]}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise ValueError(f"state is for agent {state.get('agent')!r}, not {self.name!r}")
        self.seed = int(state["seed"])
        self._build()
        self._log = [list(e) for e in state["log"]]
        for event in self._log:
            if event[0] == "ask":
                self._ask()
            elif event[0] == "arch":
                self._given(self.space.decode(event[1]))
            else:
                self._tell(int(event[1]), None if event[2] is None else float(event[2]))

    def close(self) -> None:
        shutil.rmtree(self._folder, ignore_errors=True)


class SMACAgent(DistinctProposals, _SMAC):
    """SMAC3 with repeats answered inside the agent (``agents.distinct``). SMAC's intensifier
    rarely proposes an evaluated configuration; when it does, SMAC is told the result again."""

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        n_initial: int = 10,
        random_probability: float = 0.2,
        max_repeats: int = MODEL_MAX_REPEATS,
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed, max_repeats=max_repeats,
                         n_initial=n_initial, random_probability=random_probability)


def _never_called(config: Any, seed: int = 0) -> float:
    """SMAC's facade wants a target function; ask/tell never calls it."""
    raise RuntimeError("the search loop evaluates; SMAC only asks and is told")
