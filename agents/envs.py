"""Gymnasium environments over LightSearch spaces, for RLlib (or any Gymnasium) users.

Two environments, one decision (or one layer) per step and the reward at the end, as in the
papers they come from:

- ``ArchitectureEnv`` (MnasNet, Tan et al. 2019): a ``Discrete(K)`` action per categorical
  decision (``K`` = the most choices of any decision; a decision with ``k`` choices takes the
  action's equal-width bin ``a * k // K``). The observation is the decisions so far (one-hot
  per decision, zero when not yet made), the step (one-hot) and, in Pareto mode, the episode's
  latency target (log-scaled into [0, 1]); the reward ``reward_fn(arch)`` (Pareto mode:
  ``reward_fn(arch, target)``) comes at the last step.
- ``CompressionEnv`` (AMC, He et al. 2018): the layer embedding of ``agents.amc_ddpg``
  (static features, cost reduced so far, cost of later layers, previous action) as
  observation, a ``Box(0, 1)`` action per control (0 = keep everything), AMC's action limit
  so the space's target is always met; on other spaces each decision is one step. ``lbound``
  is AMC's (``agents.amc_ddpg``): on a compression space no prune action keeps less than that
  fraction of a layer's channels (the walk is ``space.bounded(1 - lbound)``; where the target
  is out of reach under it, the space's own bound and ``bound_relaxed``).

The reward callable is the caller's: ``search.rewards`` builds one from a job's evaluator,
profilers and reward spec, and this module never imports ``search``. The encoding parts
(``ArchitectureCoding``, ``LayerWalk``) are shared with the ask/tell adapter
(``agents.rllib_agent``), so a module trained on the environment also drives the adapter.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import gymnasium as gym
import numpy as np

from agents.amc_ddpg import _Episode as LayerWalk
from agents.amc_ddpg import bounded_walk
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space

RewardFn = Callable[..., float]

__all__ = ["ArchitectureCoding", "ArchitectureEnv", "CompressionEnv", "LayerWalk",
           "make_env", "register"]


class ArchitectureCoding:
    """How a categorical space becomes observations and actions (shared by env and agent)."""

    def __init__(self, space: Space, *, pareto: bool = False) -> None:
        bad = [d.name for d in space.decisions if not isinstance(d, Categorical)]
        if bad:
            raise ValueError(f"continuous decisions {bad}: the architecture environment needs "
                             "categorical ones (use CompressionEnv)")
        self.space = space
        self.sizes = [d.size for d in space.decisions]  # type: ignore[union-attr]
        self.steps = len(self.sizes)
        self.width = max(self.sizes)
        self.pareto = pareto
        self._offsets = np.cumsum([0] + self.sizes)
        self.obs_dim = int(self._offsets[-1]) + self.steps + int(pareto)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.obs_dim,), np.float32)
        self.action_space = gym.spaces.Discrete(self.width)

    def choice(self, step: int, action: int) -> int:
        """The choice index an action stands for at ``step`` (equal-width bins)."""
        return int(action) * self.sizes[step] // self.width

    def observe(self, choices: Sequence[int], target: float | None = None) -> np.ndarray:
        """Observation after ``choices`` (the choice indices made so far)."""
        obs = np.zeros(self.obs_dim, np.float32)
        for t, c in enumerate(choices):
            obs[self._offsets[t] + c] = 1.0
        if len(choices) < self.steps:
            obs[self._offsets[-1] + len(choices)] = 1.0
        if self.pareto:
            obs[-1] = 0.0 if target is None else float(target)
        return obs

    def arch(self, choices: Sequence[int]) -> Architecture:
        """The architecture the choices name; raises ``InvalidArchitecture``."""
        return self.space.decode(list(choices))


class ArchitectureEnv(gym.Env):
    """One categorical decision per step, reward from ``reward_fn`` at the end.

    ``latency_targets=(low, high)`` turns on Pareto mode: each episode draws a target
    log-uniformly in that range, shows it (scaled into [0, 1]) in every observation and
    passes it to ``reward_fn(arch, target)``. An invalid architecture ends with
    ``invalid_reward`` and ``info["invalid"]``.
    """

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, space: Space, reward_fn: RewardFn, *,
                 latency_targets: tuple[float, float] | None = None,
                 invalid_reward: float = 0.0) -> None:
        if latency_targets is not None and not 0 < latency_targets[0] < latency_targets[1]:
            raise ValueError(f"latency_targets must be (low, high) with 0 < low < high, "
                             f"got {latency_targets}")
        self.coding = ArchitectureCoding(space, pareto=latency_targets is not None)
        self.reward_fn = reward_fn
        self.latency_targets = latency_targets
        self.invalid_reward = float(invalid_reward)
        self.observation_space = self.coding.observation_space
        self.action_space = self.coding.action_space
        self._choices: list[int] = []
        self._target: float | None = None

    def _scaled_target(self) -> float | None:
        if self._target is None or self.latency_targets is None:
            return None
        lo, hi = (math.log(x) for x in self.latency_targets)
        return (math.log(self._target) - lo) / (hi - lo)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._choices = []
        if self.latency_targets is not None:
            lo, hi = (math.log(x) for x in self.latency_targets)
            self._target = float(math.exp(self.np_random.uniform(lo, hi)))
        info = {} if self._target is None else {"target": self._target}
        return self.coding.observe(self._choices, self._scaled_target()), info

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if len(self._choices) >= self.coding.steps:
            raise RuntimeError("step() after the episode ended: call reset()")
        self._choices.append(self.coding.choice(len(self._choices), int(action)))
        obs = self.coding.observe(self._choices, self._scaled_target())
        if len(self._choices) < self.coding.steps:
            return obs, 0.0, False, False, {}
        info: dict[str, Any] = {"choices": list(self._choices)}
        try:
            arch = self.coding.arch(self._choices)
        except InvalidArchitecture as err:
            return obs, self.invalid_reward, True, False, {**info, "invalid": str(err)}
        args = (arch,) if self._target is None else (arch, self._target)
        info.update(arch=arch, target=self._target)
        return obs, float(self.reward_fn(*args)), True, False, info


class CompressionEnv(gym.Env):
    """AMC's layer-by-layer environment: layer embedding in, ``Box(0, 1)`` action out."""

    metadata: dict[str, Any] = {"render_modes": []}

    def __init__(self, space: Space, reward_fn: RewardFn, *, constrain: bool = True,
                 lbound: float | None = None) -> None:
        if lbound is not None and not 0 <= lbound < 1:
            raise ValueError(f"lbound must be in [0, 1) or None, got {lbound}")
        walked, self.bound_relaxed = bounded_walk(space, lbound)
        self.lbound = lbound
        self.walk = LayerWalk(walked)
        self.space = space
        self.reward_fn = reward_fn
        self.constrain = bool(constrain)
        self.observation_space = gym.spaces.Box(0.0, 1.0, (self.walk.n_state,), np.float32)
        self.action_space = gym.spaces.Box(0.0, 1.0, (self.walk.n_action,), np.float32)
        self._t = 0
        self._partial: dict[str, Any] = {}

    def observe(self, t: int, partial: Mapping[str, Any], prev: np.ndarray) -> np.ndarray:
        return np.clip(self.walk.state(t, partial, prev), 0.0, 1.0).astype(np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._t, self._partial = 0, {}
        return self.observe(0, self._partial, np.zeros(self.walk.n_action)), {}

    def step(self, action: Any) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        if self._t >= len(self.walk.steps):
            raise RuntimeError("step() after the episode ended: call reset()")
        action = np.clip(np.asarray(action, np.float64).reshape(-1), 0.0, 1.0)
        taken = self.walk.apply(self._t, action, self._partial, self.constrain)
        self._t += 1
        last = self._t == len(self.walk.steps)
        obs = self.observe(min(self._t, len(self.walk.steps) - 1), self._partial, taken)
        if not last:
            return obs, 0.0, False, False, {}
        arch = self.space.validate(self._partial)
        return obs, float(self.reward_fn(arch)), True, False, {"arch": arch}


def make_env(config: Mapping[str, Any]) -> gym.Env:
    """An environment from a plain config (what ``tune.register_env`` hands over).

    Keys: ``space`` (a registered space name), ``space_options``, ``reward_fn`` (a callable,
    picklable when Ray ships it to env runners), ``kind`` (``"architecture"`` or
    ``"compression"``; default: architecture for all-categorical spaces), and the chosen
    environment's keyword options under ``env_options``.
    """
    from spaces.registry import SPACES

    space = SPACES.create(config["space"], options=config.get("space_options"))
    kind = config.get("kind") or (
        "architecture" if all(isinstance(d, Categorical) for d in space.decisions)
        else "compression")
    cls = {"architecture": ArchitectureEnv, "compression": CompressionEnv}.get(kind)
    if cls is None:
        raise ValueError(f"kind must be 'architecture' or 'compression', got {kind!r}")
    return cls(space, config["reward_fn"], **dict(config.get("env_options") or {}))


def register(name: str = "lightsearch") -> str:
    """Register ``make_env`` with Ray Tune under ``name`` (imports ray); returns the name."""
    from ray import tune

    tune.register_env(name, make_env)
    return name
