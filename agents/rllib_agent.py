"""An RLlib algorithm (new API stack) as an ask/tell agent: PPO, APPO or SAC.

RLlib's ``Algorithm.train()`` pulls episodes from environments it steps itself; a search job
instead proposes architectures and hears their rewards later, many in flight at once. So the
adapter drives RLlib's two parts directly (see shared/notes/rllib-asktell.md), without a Ray
cluster: the RLModule samples, the Learner learns.

- ``ask``: one episode of the environment in ``agents.envs`` (``ArchitectureEnv``'s coding or
  ``CompressionEnv``'s layer walk), sampled step by step from the module's exploration
  distribution (LSTM state carried between steps), recorded with what RLlib's learner
  connectors need (observations, actions, log-probs, distribution inputs, LSTM state). Only
  the reward is missing. Proposals in flight = episodes in flight.
- ``tell``: the reward closes the episode. PPO/APPO update the Learner every
  ``episodes_per_update`` told episodes (on-policy); SAC keeps a replay of told episodes and
  updates ``updates_per_episode`` times per episode on ``batch_episodes`` drawn from it, after
  ``warmup_episodes`` of uniform random actions. Failed trials teach nothing and are dropped,
  and so do repeats: each ask draws ``1 + fresh_tries`` episodes in one batch and proposes the
  first architecture not proposed before; if all were seen, the repeat is not learned from.
- ``state_dict``: the Learner's state (module weights, optimizer, metrics that time target
  updates) plus the pending/told episodes and the agent's RNG, so a resumed job continues
  exactly. RLlib draws from the global torch/numpy/random generators; every draw happens
  under ``spaces.isolation.seeded_globals`` with a seed from the job's own generator, and
  the global state is put back.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState, welford_add
from agents.envs import ArchitectureCoding, CompressionEnv
from agents.rllib_options import RLlibOptions
from spaces.base import Architecture, Continuous, InvalidArchitecture, Space
from spaces.compression import CompressionSpace
from spaces.isolation import seeded_globals


def _config_class(algorithm: str) -> Any:
    if algorithm == "PPO":
        from ray.rllib.algorithms.ppo import PPOConfig
        return PPOConfig
    if algorithm == "APPO":
        from ray.rllib.algorithms.appo import APPOConfig
        return APPOConfig
    from ray.rllib.algorithms.sac import SACConfig
    return SACConfig


# RLlib's defaults are tuned for long runs (PPO lr 5e-5); a search has hundreds of episodes.
# On a 6x5 toy space PPO reached the optimum within 200 episodes at lr 1e-2, not at 5e-5.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "PPO": {"lr": 3e-3, "entropy_coeff": 0.02}, "APPO": {"lr": 3e-3, "entropy_coeff": 0.02},
    "SAC": {"actor_lr": 3e-4, "critic_lr": 3e-4, "alpha_lr": 3e-4},
}


class RLlibAgent(Agent):
    """See the module docstring; options in ``agents.rllib_options.RLlibOptions``."""

    name: ClassVar[str] = "rllib"
    supports_continuous: ClassVar[bool] = True

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0,
                 **options: Any) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self.options = RLlibOptions.model_validate(options)
        o = self.options
        continuous = any(isinstance(d, Continuous) for d in space.decisions)
        kind = o.environment
        if kind == "auto":
            kind = ("compression" if continuous or o.algorithm == "SAC"
                    or isinstance(space, CompressionSpace) else "architecture")
        if kind == "architecture" and (continuous or o.algorithm == "SAC"):
            raise ValueError("environment: 'architecture' has Discrete actions, which "
                             f"{'continuous decisions' if continuous else 'SAC'} cannot use; "
                             "use 'compression' or 'auto'")
        self.kind = kind
        self.bound_relaxed = False  # lbound could not hold on this space's target
        self.on_policy = o.algorithm != "SAC"
        if kind == "architecture":
            self.coding: ArchitectureCoding | None = ArchitectureCoding(space)
            self.walk: CompressionEnv | None = None
            obs_space, act_space = self.coding.observation_space, self.coding.action_space
        else:
            self.coding = None
            self.walk = CompressionEnv(space, _no_reward, constrain=True, lbound=o.lbound)
            obs_space, act_space = self.walk.observation_space, self.walk.action_space
            self.bound_relaxed = self.walk.bound_relaxed
        self.obs_space, self.act_space = obs_space, act_space
        self.learner = self._build_learner()
        from ray.rllib.core import DEFAULT_MODULE_ID

        self.module = self.learner.module[DEFAULT_MODULE_ID]
        self.dist_cls = self.module.get_exploration_action_dist_cls()
        self.lstm = bool(o.model.use_lstm)
        self.rng = np.random.default_rng(self.seed)
        self.next_id = 0
        self.pending: dict[int, dict[str, Any]] = {}
        self.batch: list[dict[str, Any]] = []  # told, waiting for the next on-policy update
        self.replay: list[dict[str, Any]] = []  # SAC
        self.told = 0
        self.updates = 0
        self.steps_learned = 0
        self.stats = [0, 0.0, 0.0]  # count, mean, M2 of told rewards (Welford)
        self.seen: set[str] = set()

    # ---- construction ------------------------------------------------------------------
    def _build_learner(self) -> Any:
        from ray.rllib.core import DEFAULT_MODULE_ID
        from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

        o = self.options
        model = {k: v for k, v in o.model.model_dump().items() if v is not None}
        training = {**_DEFAULTS[o.algorithm],
                    **{k: v for k, v in o.config.items()
                       if k not in ("num_epochs", "minibatch_size")}}
        cfg = (_config_class(o.algorithm)()
               .environment(observation_space=self.obs_space, action_space=self.act_space)
               .rl_module(model_config=DefaultModelConfig(**model))
               .training(**training)
               .debugging(seed=self.seed))
        with seeded_globals(self.seed):
            learner = cfg.build_learner(spaces={DEFAULT_MODULE_ID: (self.obs_space,
                                                                     self.act_space)})
        if o.algorithm == "APPO":
            # IMPALA's learner updates in a background thread (asynchronously); the adapter
            # updates synchronously through the base class instead, so the thread can go.
            learner.shutdown()
        return learner

    # ---- acting ------------------------------------------------------------------------
    def _draw(self) -> int:
        return int(self.rng.integers(2**62))

    def _forward(self, obs: np.ndarray, state: dict[str, torch.Tensor] | None
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor] | None]:
        """Distribution inputs ``[n, ...]`` and the next LSTM state for a batch of obs."""
        from ray.rllib.core.columns import Columns

        x = torch.from_numpy(obs)
        batch: dict[str, Any] = {Columns.OBS: x[:, None] if self.lstm else x}
        if self.lstm:
            batch[Columns.STATE_IN] = state
        with torch.no_grad():
            out = self.module.forward_exploration(batch)
        inputs = out[Columns.ACTION_DIST_INPUTS]
        if self.lstm:
            return inputs[:, 0], out[Columns.STATE_OUT]
        return inputs, None

    def _initial_state(self, n: int) -> dict[str, torch.Tensor] | None:
        if not self.lstm:
            return None
        return {k: v.unsqueeze(0).expand(n, *v.shape).clone()
                for k, v in self.module.get_initial_state().items()}

    def _sample_steps(self, n: int, first: np.ndarray, step: Any, steps: int) -> list[dict]:
        """Sample ``n`` episodes in one batch; ``step(t, actions) -> next observations``.

        Returns per step the batch's observations, actions, log-probs, distribution inputs
        and LSTM state (tensors), from which ``_record`` cuts one episode.
        """
        obs, state, out = first, self._initial_state(n), []
        for t in range(steps):
            inputs, state = self._forward(obs, state)
            dist = self.dist_cls.from_logits(inputs)
            a = dist.sample()
            out.append({"obs": obs, "inputs": inputs, "a": a, "logp": dist.logp(a),
                        "state": state})
            obs = step(t, a)
        out.append({"obs": obs})
        return out

    def _record(self, steps: list[dict], i: int, actions: list[Any]) -> dict[str, Any]:
        """Episode ``i`` of a batch: observations, actions and RLlib's extra model outputs."""
        from ray.rllib.core.columns import Columns

        extras = []
        for s in steps[:-1]:
            extra = {Columns.ACTION_LOGP: s["logp"][i].numpy(),
                     Columns.ACTION_DIST_INPUTS: s["inputs"][i].numpy()}
            if not self.on_policy:  # fields SAC's replay buffer adds: 1-step, unweighted
                extra["n_step"] = np.float32(1.0)
                extra["weights"] = np.float32(1.0)
            if s["state"] is not None:
                extra[Columns.STATE_OUT] = {k: v[i].numpy() for k, v in s["state"].items()}
            extras.append(extra)
        return {"obs": [s["obs"][i] for s in steps], "actions": actions, "extras": extras}

    def _sample_architecture(self) -> dict[str, Any]:
        """Sample ``1 + fresh_tries`` episodes at once; keep the first unseen valid one."""
        coding = self.coding
        assert coding is not None
        n = 1 + self.options.fresh_tries
        choices: list[list[int]] = [[] for _ in range(n)]

        def step(t: int, a: torch.Tensor) -> np.ndarray:
            for i in range(n):
                choices[i].append(coding.choice(t, int(a[i])))
            return np.stack([coding.observe(c) for c in choices])

        with seeded_globals(self._draw()):
            steps = self._sample_steps(n, np.stack([coding.observe([])] * n), step,
                                       coding.steps)
        fallback = None
        for i in range(n):
            try:
                arch = coding.arch(choices[i])
            except InvalidArchitecture:
                continue
            if self.space.key(arch) not in self.seen:
                fallback = i
                break
            fallback = i if fallback is None else fallback
        if fallback is None:
            raise InvalidArchitecture(f"no valid architecture in {n} samples")
        arch = coding.arch(choices[fallback])
        actions = [int(s["a"][fallback]) for s in steps[:-1]]
        return {"arch": arch, "repeat": self.space.key(arch) in self.seen,
                **self._record(steps, fallback, actions)}

    def _sample_walk(self) -> dict[str, Any]:
        """One episode of AMC's layer walk (uniform actions during SAC's warm-up)."""
        env = self.walk
        assert env is not None
        walk = env.walk
        partial: dict[str, Any] = {}
        actions: list[np.ndarray] = []
        warm = not self.on_policy and self.told < self.options.warmup_episodes

        def step(t: int, a: torch.Tensor) -> np.ndarray:
            if warm:  # uniform actions; their log-probs are not used (SAC is off-policy)
                a.copy_(torch.from_numpy(self.rng.uniform(0, 1, a.shape).astype(np.float32)))
            raw = a[0].numpy().astype(np.float64)
            taken = walk.apply(t, np.clip(raw, 0.0, 1.0), partial, env.constrain)
            # SAC learns Q of the action really taken; PPO's ratio needs the sampled one.
            actions.append((raw if self.on_policy else taken).astype(np.float32))
            return env.observe(min(t + 1, len(walk.steps) - 1), partial, taken)[None]

        first = env.observe(0, partial, np.zeros(walk.n_action))[None]
        with seeded_globals(self._draw()):
            steps = self._sample_steps(1, first, step, len(walk.steps))
        return {"arch": self.space.validate(partial), **self._record(steps, 0, actions)}

    def ask(self) -> Proposal:
        record = (self._sample_architecture() if self.coding is not None
                  else self._sample_walk())
        trial_id = self.next_id
        self.next_id += 1
        self.pending[trial_id] = record
        self.seen.add(self.space.key(record["arch"]))
        return Proposal(trial_id, dict(record["arch"]),
                        {"origin": f"rllib:{self.options.algorithm}", "update": self.updates})

    # ---- learning ----------------------------------------------------------------------
    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self.pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        record = self.pending.pop(trial_id)
        # A repeat teaches nothing new; learning from it again would only reinforce the
        # policy's favourite (on NB201 PPO+LSTM then stalled at ~300 distinct architectures).
        if not result.ok or record.get("repeat"):
            return
        reward = float(result.reward)  # type: ignore[arg-type]
        self.stats = welford_add(self.stats, reward)
        record["reward"] = reward
        self.told += 1
        if self.on_policy:
            self.batch.append(record)
            if len(self.batch) >= self.options.episodes_per_update:
                self._update(self.batch)
                self.batch = []
            return
        self.replay.append(record)
        del self.replay[:-self.options.replay_episodes]
        if self.told > self.options.warmup_episodes:
            for _ in range(self.options.updates_per_episode):
                k = min(self.options.batch_episodes, len(self.replay))
                picks = self.rng.choice(len(self.replay), size=k, replace=False)
                self._update([self.replay[i] for i in sorted(picks)])

    def _scaled(self, reward: float) -> float:
        n, mean, m2 = self.stats
        if not self.options.normalize_rewards or n < 2:
            return reward - (mean if self.options.normalize_rewards else 0.0)
        return (reward - mean) / max(float(np.sqrt(m2 / (n - 1))), 1e-8)

    def _episode(self, record: Mapping[str, Any]) -> Any:
        from ray.rllib.env.single_agent_episode import SingleAgentEpisode

        ep = SingleAgentEpisode(observation_space=self.obs_space, action_space=self.act_space)
        ep.add_env_reset(observation=record["obs"][0])
        last = len(record["actions"]) - 1
        for t, (action, extra) in enumerate(zip(record["actions"], record["extras"],
                                                strict=True)):
            ep.add_env_step(observation=record["obs"][t + 1], action=action,
                            reward=self._scaled(record["reward"]) if t == last else 0.0,
                            terminated=t == last, extra_model_outputs=extra)
        return ep.to_numpy()

    def _update(self, records: Sequence[Mapping[str, Any]]) -> None:
        from ray.rllib.utils.metrics import NUM_ENV_STEPS_SAMPLED_LIFETIME

        episodes = [self._episode(r) for r in records]
        steps = sum(len(r["actions"]) for r in records)
        self.steps_learned += steps
        c = self.options.config
        from ray.rllib.core.learner.learner import Learner

        with seeded_globals(self._draw()):
            Learner.update(  # the synchronous update (IMPALA/APPO override it with a queue)
                self.learner, episodes=episodes,
                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: self.steps_learned},
                num_epochs=c.get("num_epochs", 4 if self.on_policy else 1),
                minibatch_size=min(c.get("minibatch_size", steps), steps))
        self.updates += 1

    # ---- checkpoints -------------------------------------------------------------------
    _FIELDS = ("next_id", "pending", "batch", "replay", "told", "updates", "steps_learned",
               "stats", "seen")

    def state_dict(self) -> dict[str, Any]:
        learner = self.learner.get_state(
            components=["rl_module", "optimizer", "metrics_logger"])
        if not self.on_policy:  # SAC's entropy temperature is not in RLlib's Learner state
            learner["log_alpha"] = self._log_alpha().detach().numpy().copy()
        return copy.deepcopy({
            "agent": self.name, "seed": self.seed, "algorithm": self.options.algorithm,
            "learner": learner, "rng": self.rng.bit_generator.state,
            **{f: getattr(self, f) for f in self._FIELDS}})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name or state.get("algorithm") != self.options.algorithm:
            raise ValueError(f"state is for agent {state.get('agent')!r} "
                             f"({state.get('algorithm')}), not rllib ({self.options.algorithm})")
        state = copy.deepcopy(dict(state))
        self.seed = int(state["seed"])
        log_alpha = state["learner"].pop("log_alpha", None)
        self.learner.set_state(state["learner"])
        if log_alpha is not None:
            with torch.no_grad():  # in place: the optimizer holds this tensor
                self._log_alpha().copy_(torch.from_numpy(log_alpha))
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        for f in self._FIELDS:
            setattr(self, f, state[f])

    def _log_alpha(self) -> torch.Tensor:
        from ray.rllib.core import DEFAULT_MODULE_ID

        return self.learner.curr_log_alpha[DEFAULT_MODULE_ID]

    def greedy(self) -> Architecture:
        """The most likely architecture under the current policy (for reports and tests)."""
        from ray.rllib.core.columns import Columns

        coding = self.coding
        if coding is None:
            raise ValueError("greedy() needs the architecture environment")
        choices: list[int] = []
        state = self._initial_state(1)
        for t in range(coding.steps):
            x = torch.from_numpy(coding.observe(choices)[None])
            batch: dict[str, Any] = {Columns.OBS: x[:, None] if self.lstm else x}
            if self.lstm:
                batch[Columns.STATE_IN] = state
            with torch.no_grad():
                out = self.module.forward_inference(batch)
            logits = out[Columns.ACTION_DIST_INPUTS].reshape(-1)
            state = out.get(Columns.STATE_OUT)
            choices.append(coding.choice(t, int(logits.argmax())))
        return coding.arch(choices)


def _no_reward(_arch: Architecture) -> float:
    """The adapter's walk never asks the environment for a reward (it comes from ``tell``)."""
    raise RuntimeError("the ask/tell adapter gets rewards from tell(), not the environment")
