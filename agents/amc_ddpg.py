"""AMC: a DDPG agent that compresses a model layer by layer (He et al., ECCV 2018).

One ``ask`` is one episode: the agent walks the layers of a compression space, observes each
layer's state (index, type, channels in/out, stride, kernel, FLOPs, then FLOPs reduced so
far, FLOPs of later layers and the previous action; static features min-max normalized over
layers), and emits an action in [0, 1] per control (0 = keep all, 1 = compress the most).
In resource-constrained mode each action is limited as it is taken so that the target stays
reachable whatever the later layers do (AMC's ``_action_wall``, computed by the space's cost
model), so every episode meets the target and the reward can be plain ``-error``. Prune
actions are bounded (``lbound``: AMC keeps at least 20% of a layer's channels) and, as in AMC,
recorded as the ratio their whole-channel count really removes.

Learning follows AMC's code: ``warmup`` episodes of uniform random actions fill the replay
buffer; afterwards actions are the actor's output plus truncated-normal noise whose sigma
decays as ``init_delta * delta_decay ** (episode - warmup)``. When an episode's reward
arrives (``tell``), every transition of it is stored with that final reward, and after the
warm-up each stored transition triggers one DDPG update: critic to
``r - baseline + discount * Q'(s', mu'(s'))`` (a moving-average reward baseline), actor by the
deterministic policy gradient, soft target updates with ``tau``. Failed episodes teach
nothing and are dropped.

On spaces other than ``compression`` (e.g. NAS-Bench-201) every decision is one step with
features (index, kind, number of choices); categorical values come from the action as in
HAQ (equal-width bins over the choices).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn

from agents.base import Agent, Objective, Proposal, TrialResult
from spaces.base import Architecture, Categorical, Continuous, Space
from spaces.compression import CompressionSpace, action_to_value, value_to_action
from spaces.isolation import seeded


@dataclass(frozen=True)
class AMCConfig:
    hidden1: int = 300  # actor/critic first hidden layer (AMC: 300)
    hidden2: int = 300  # second hidden layer (AMC: 300)
    lr_actor: float = 1e-4  # Adam step of the actor (AMC: 1e-4)
    lr_critic: float = 1e-3  # Adam step of the critic (AMC: 1e-3)
    warmup: int = 100  # episodes of random actions before learning (AMC: 100)
    discount: float = 1.0  # AMC: 1.0 (the reward arrives only at the end)
    batch_size: int = 64  # replay mini-batch (AMC: 64)
    replay_per_layer: int = 100  # replay capacity per episode step (AMC rmsize: 100)
    tau: float = 0.01  # soft target update rate (AMC: 0.01)
    init_delta: float = 0.5  # initial sigma of the truncated-normal noise (AMC: 0.5)
    delta_decay: float = 0.95  # sigma decay per episode after warm-up (AMC: 0.95)
    moving_alpha: float = 0.5  # step of the moving-average reward baseline (AMC: 0.5)
    constrain: bool = True  # limit actions so the space's resource target is always met
    # AMC's lbound: the least fraction of a group's channels a prune action keeps (AMC: 0.2).
    # None keeps the space's own bound (1 - max_prune). Where the target is out of reach
    # under this bound, the space's bound is used instead (``bound_relaxed``).
    lbound: float | None = 0.2

    def __post_init__(self) -> None:
        for name in ("hidden1", "hidden2", "batch_size", "replay_per_layer"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("lr_actor", "lr_critic", "init_delta"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lbound is not None and not 0 <= self.lbound < 1:
            raise ValueError(f"lbound must be in [0, 1), got {self.lbound}")
        if self.warmup < 0:
            raise ValueError(f"warmup must be >= 0, got {self.warmup}")
        for name in ("discount", "tau", "delta_decay", "moving_alpha"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)}")


class Actor(nn.Module):
    def __init__(self, n_state: int, n_action: int, h1: int, h2: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_state, h1), nn.ReLU(), nn.Linear(h1, h2), nn.ReLU(),
                                 nn.Linear(h2, n_action), nn.Sigmoid())
        nn.init.uniform_(self.net[4].weight, -3e-3, 3e-3)  # AMC's init_w

    def forward(self, s: torch.Tensor) -> torch.Tensor:
        return self.net(s)


class Critic(nn.Module):
    def __init__(self, n_state: int, n_action: int, h1: int, h2: int) -> None:
        super().__init__()
        self.fc_s = nn.Linear(n_state, h1)
        self.fc_a = nn.Linear(n_action, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.out = nn.Linear(h2, 1)
        nn.init.uniform_(self.out.weight, -3e-3, 3e-3)

    def forward(self, s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.fc_s(s) + self.fc_a(a))
        return self.out(torch.relu(self.fc2(h)))


class _Episode:
    """How the agent walks a space: steps, their static features, and action limiting."""

    def __init__(self, space: Space) -> None:
        self.space = space
        if isinstance(space, CompressionSpace):
            self.controls: tuple[str, ...] = space.controls
            self.steps = [tuple(s.decisions.get(c) for c in self.controls) for s in space.steps]
            raw = np.array([s.features for s in space.steps], dtype=np.float64)
        else:
            self.controls = ("value",)
            self.steps = [(d.name,) for d in space.decisions]
            raw = np.array([[i, isinstance(d, Continuous),
                             d.size if isinstance(d, Categorical) else 0]
                            for i, d in enumerate(space.decisions)], dtype=np.float64)
        lo, hi = raw.min(0), raw.max(0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        self.static = np.where(hi - lo > 0, (raw - lo) / span, 0.0)  # AMC's min-max scaling
        self._by_name = {d.name: d for d in space.decisions}
        self.n_action = len(self.controls)
        self.n_state = self.static.shape[1] + 2 + self.n_action

    def state(self, t: int, partial: Mapping[str, Any], prev: np.ndarray) -> np.ndarray:
        if isinstance(self.space, CompressionSpace):
            reduced, rest = self.space.progress(partial, t)
        else:
            reduced, rest = t / len(self.steps), (len(self.steps) - t - 1) / len(self.steps)
        return np.concatenate([self.static[t], [reduced, rest], prev]).astype(np.float32)

    def apply(self, t: int, action: np.ndarray, partial: dict[str, Any],
              constrain: bool) -> np.ndarray:
        """Turn step ``t``'s action into decision values (limited in constrained mode);
        returns the action actually taken."""
        taken = action.copy()
        for k, name in enumerate(self.steps[t]):
            if name is None:
                continue
            d = self._by_name[name]
            value = action_to_value(d, float(action[k]))
            if isinstance(self.space, CompressionSpace):
                if constrain:
                    value = self.space.constrain(partial, name, value)
                value = self.space.snap(name, value)  # AMC rounds to whole channels
            partial[name] = value
            taken[k] = value_to_action(d, value)
        return taken


class AMCAgent(Agent):
    """AMC's DDPG agent behind ask/tell (see the module docstring)."""

    name: ClassVar[str] = "amc"
    supports_continuous: ClassVar[bool] = True

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0,
                 **options: Any) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self.config = AMCConfig(**options)
        walk, self.bound_relaxed = space, False
        if isinstance(space, CompressionSpace) and self.config.lbound is not None:
            try:
                walk = space.bounded(1.0 - self.config.lbound)
            except ValueError:  # the target needs more than lbound allows
                self.bound_relaxed = True
        self.episode = _Episode(walk)
        c, ep = self.config, self.episode
        with seeded(self.seed):  # per job: other jobs' draws are not disturbed
            self.actor = Actor(ep.n_state, ep.n_action, c.hidden1, c.hidden2)
            self.critic = Critic(ep.n_state, ep.n_action, c.hidden1, c.hidden2)
        self.actor_target = copy.deepcopy(self.actor)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=c.lr_actor)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.lr_critic)
        cap = c.replay_per_layer * len(ep.steps)
        self.replay = {
            "s": np.zeros((cap, ep.n_state), np.float32), "a": np.zeros((cap, ep.n_action),
                                                                          np.float32),
            "r": np.zeros(cap, np.float32), "s2": np.zeros((cap, ep.n_state), np.float32),
            "done": np.zeros(cap, np.float32),
        }
        self.replay_size = 0
        self.replay_pos = 0
        self.rng = np.random.default_rng(self.seed)
        self.next_id = 0
        self.episodes_asked = 0
        self.episodes_learned = 0
        self.updates = 0
        self.moving_average: float | None = None
        self.pending: dict[int, tuple[Architecture, list[tuple]]] = {}
        self.best: tuple[float, Architecture] | None = None

    # ---- acting ----------------------------------------------------------------------------
    def sigma(self, episode: int) -> float:
        c = self.config
        return c.init_delta * c.delta_decay ** max(0, episode - c.warmup)

    def _noisy(self, mu: np.ndarray, sigma: float) -> np.ndarray:
        """Truncated normal on [0, 1] around ``mu`` (rejection sampling, per component)."""
        out = mu.copy()
        for k in range(len(mu)):
            for _ in range(100):
                x = self.rng.normal(mu[k], sigma)
                if 0.0 <= x <= 1.0:
                    out[k] = x
                    break
            else:
                out[k] = float(np.clip(mu[k], 0.0, 1.0))
        return out

    def _act(self, state: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return self.actor(torch.from_numpy(state)[None])[0].numpy().astype(np.float64)

    def _rollout(self, mode: str, sigma: float = 0.0
                 ) -> tuple[Architecture, list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]]]:
        ep = self.episode
        partial: dict[str, Any] = {}
        prev = np.zeros(ep.n_action, np.float64)  # "no compression" before the first layer
        transitions = []
        state = ep.state(0, partial, prev)
        for t in range(len(ep.steps)):
            if mode == "random":
                action = self.rng.uniform(0.0, 1.0, ep.n_action)
            elif mode == "noisy":
                action = self._noisy(self._act(state), sigma)
            else:
                action = self._act(state)
            taken = ep.apply(t, action, partial, self.config.constrain)
            done = t == len(ep.steps) - 1
            nxt = state if done else ep.state(t + 1, partial, taken)
            transitions.append((state, taken.astype(np.float32), nxt, done))
            state = nxt
        return self.space.validate(partial), transitions

    def ask(self) -> Proposal:
        e = self.episodes_asked
        warm = e < self.config.warmup
        sigma = self.sigma(e)
        arch, transitions = self._rollout("random" if warm else "noisy", sigma)
        trial_id = self.next_id
        self.next_id += 1
        self.episodes_asked += 1
        self.pending[trial_id] = (arch, transitions)
        info = {"episode": e, "warmup": warm, "sigma": None if warm else round(sigma, 6)}
        return Proposal(trial_id, arch, info)

    def greedy(self) -> Architecture:
        """The actor's policy without exploration noise (for reports and tests)."""
        return self._rollout("greedy")[0]

    # ---- learning --------------------------------------------------------------------------
    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self.pending:
            raise ValueError(f"trial {trial_id} was not proposed by this agent or was told "
                             "already")
        arch, transitions = self.pending.pop(trial_id)
        if not result.ok:
            return
        reward = float(result.reward)  # type: ignore[arg-type]
        if self.best is None or reward > self.best[0]:
            self.best = (reward, dict(arch))
        for s, a, s2, done in transitions:
            self._store(s, a, reward, s2, done)
        self.episodes_learned += 1
        if self.episodes_learned > self.config.warmup:
            for _ in transitions:
                self._update()

    def _store(self, s: np.ndarray, a: np.ndarray, r: float, s2: np.ndarray, done: bool) -> None:
        i = self.replay_pos
        rp = self.replay
        rp["s"][i], rp["a"][i], rp["r"][i], rp["s2"][i], rp["done"][i] = s, a, r, s2, float(done)
        cap = len(rp["r"])
        self.replay_pos = (i + 1) % cap
        self.replay_size = min(cap, self.replay_size + 1)

    def _update(self) -> None:
        c = self.config
        idx = self.rng.integers(0, self.replay_size, min(c.batch_size, self.replay_size))
        rp = self.replay
        s, a = torch.from_numpy(rp["s"][idx]), torch.from_numpy(rp["a"][idx])
        s2, done = torch.from_numpy(rp["s2"][idx]), torch.from_numpy(rp["done"][idx])
        r = rp["r"][idx].astype(np.float64)
        mean = float(r.mean())
        if self.moving_average is None:
            self.moving_average = mean
        else:
            self.moving_average += c.moving_alpha * (mean - self.moving_average)
        r_t = torch.from_numpy((r - self.moving_average).astype(np.float32))[:, None]
        with torch.no_grad():
            q_next = self.critic_target(s2, self.actor_target(s2))
            target = r_t + c.discount * (1 - done[:, None]) * q_next
        loss_c = nn.functional.mse_loss(self.critic(s, a), target)
        self.critic_opt.zero_grad()
        loss_c.backward()
        self.critic_opt.step()
        loss_a = -self.critic(s, self.actor(s)).mean()
        self.actor_opt.zero_grad()
        loss_a.backward()
        self.actor_opt.step()
        with torch.no_grad():
            for net, tgt in ((self.actor, self.actor_target), (self.critic, self.critic_target)):
                for p, pt in zip(net.parameters(), tgt.parameters(), strict=True):
                    pt.mul_(1 - c.tau).add_(p, alpha=c.tau)
        self.updates += 1

    # ---- checkpoints -----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "seed": self.seed,
            "actor": self.actor.state_dict(), "critic": self.critic.state_dict(),
            "actor_target": self.actor_target.state_dict(),
            "critic_target": self.critic_target.state_dict(),
            "actor_opt": self.actor_opt.state_dict(), "critic_opt": self.critic_opt.state_dict(),
            "replay": self.replay, "replay_size": self.replay_size,
            "replay_pos": self.replay_pos, "rng": self.rng.bit_generator.state,
            "next_id": self.next_id, "episodes_asked": self.episodes_asked,
            "episodes_learned": self.episodes_learned, "updates": self.updates,
            "moving_average": self.moving_average, "pending": self.pending, "best": self.best,
        })

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        state = copy.deepcopy(dict(state))
        self.seed = int(state["seed"])
        for name in ("actor", "critic", "actor_target", "critic_target", "actor_opt",
                     "critic_opt"):
            getattr(self, name).load_state_dict(state[name])
        self.replay = state["replay"]
        self.replay_size, self.replay_pos = int(state["replay_size"]), int(state["replay_pos"])
        self.rng = np.random.default_rng()
        self.rng.bit_generator.state = state["rng"]
        self.next_id = int(state["next_id"])
        self.episodes_asked = int(state["episodes_asked"])
        self.episodes_learned = int(state["episodes_learned"])
        self.updates = int(state["updates"])
        self.moving_average = state["moving_average"]
        self.pending = state["pending"]
        self.best = state["best"]
