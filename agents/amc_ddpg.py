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

Variants (``variant``; the paper's agent is kept for comparison):

- ``"paper"``: the state above, the layers first to last, actions clipped as they are taken.
- ``"budget"`` (default): a budget-aware state. Each layer's static features add its output
  feature-map size h x w (the paper's state has it, ours lacked it); the dynamic features are,
  for FLOPs and for the target's metric when that is another one, the cost already removed and
  the cost still to remove, both as fractions of the reduction the target needs, then this
  layer's share of the cost the remaining layers can still remove, and the reduction still
  needed per unit of that reducible cost (>= 1: out of reach). Default ``constraint:
  "penalty"``: actions are not clipped; a finished episode that misses the target is moved
  onto it by one common fraction of the way from every action to its most compressed value
  (``CompressionSpace.meet_target``, so every proposal still meets the target), and the agent
  learns from the reward minus ``penalty`` x (relative miss) x (mean |reward| so far): it is
  taught to meet the target itself instead of having its last layers forced to the bound.
  ``constraint: "clip"`` keeps the paper's per-step limit. ``order: "largest_first"`` visits
  layers by decreasing FLOPs, so the costliest decisions are taken while the budget is free.

On spaces other than ``compression`` (e.g. NAS-Bench-201) every decision is one step with
features (index, kind, number of choices); categorical values come from the action as in
HAQ (equal-width bins over the choices).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from torch import nn

from agents.base import Agent, Objective, Proposal, TrialResult
from spaces.base import Architecture, Categorical, Continuous, Space
from spaces.compression import CompressionSpace, action_to_value, value_to_action
from spaces.isolation import seeded

VARIANTS = ("paper", "budget")
CONSTRAINTS = ("clip", "penalty")
ORDERS = ("forward", "largest_first")


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
    variant: Literal["paper", "budget"] = "budget"  # see the module docstring
    # how a resource target is kept: None takes the variant's own (paper: clip, budget: penalty)
    constraint: Literal["clip", "penalty"] | None = None
    order: Literal["forward", "largest_first"] = "forward"  # the walk's layer order
    penalty: float = 1.0  # penalty mode: weight of the relative miss, in units of mean |reward|

    def __post_init__(self) -> None:
        for name, allowed in (("variant", VARIANTS), ("constraint", (*CONSTRAINTS, None)),
                              ("order", ORDERS)):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {list(allowed)}, "
                                 f"got {getattr(self, name)!r}")
        if self.variant == "paper" and self.order != "forward":
            raise ValueError(f"order: variant 'paper' walks the layers first to last, got "
                             f"{self.order!r} (use variant 'budget')")
        if not 0 <= self.penalty <= 1e6:
            raise ValueError(f"penalty must be in [0, 1e6], got {self.penalty}")
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

    @property
    def resolved_constraint(self) -> str:
        """``constraint``, or the variant's own when unset."""
        return self.constraint or ("clip" if self.variant == "paper" else "penalty")


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
    """How the agent walks a space: steps, their features, and action limiting.

    ``t`` everywhere is the position in the walk (``order``), ``self.steps[t]`` the decision
    names taken there; ``self.index[t]`` is that step's index in the space's own order.
    """

    def __init__(self, space: Space, variant: str = "paper", order: str = "forward") -> None:
        self.space = space
        self.variant = variant
        self.budget_state = variant == "budget" and isinstance(space, CompressionSpace)
        if isinstance(space, CompressionSpace):
            self.controls: tuple[str, ...] = space.controls
            steps = list(space.steps)
            self.index = list(range(len(steps)))
            if order == "largest_first":  # by FLOPs (the last static feature), stable
                self.index.sort(key=lambda i: -steps[i].features[6])
            self.steps = [tuple(steps[i].decisions.get(c) for c in self.controls)
                          for i in self.index]
            ops = {o.name: o for o in space.table.ops}
            rows = [list(steps[i].features) for i in self.index]
            if self.budget_state:
                rows = [r + [float(ops[steps[i].layer].out_hw)]
                        for r, i in zip(rows, self.index, strict=True)]
            raw = np.array(rows, dtype=np.float64)
        else:
            self.controls = ("value",)
            self.steps = [(d.name,) for d in space.decisions]
            self.index = list(range(len(self.steps)))
            raw = np.array([[i, isinstance(d, Continuous),
                             d.size if isinstance(d, Categorical) else 0]
                            for i, d in enumerate(space.decisions)], dtype=np.float64)
        lo, hi = raw.min(0), raw.max(0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        self.static = np.where(hi - lo > 0, (raw - lo) / span, 0.0)  # AMC's min-max scaling
        self._by_name = {d.name: d for d in space.decisions}
        self.n_action = len(self.controls)
        self.metrics: tuple[str, ...] = ()
        if self.budget_state:
            assert isinstance(space, CompressionSpace)
            metric = space.target.metric if space.target is not None else "flops"
            self.metrics = ("flops",) if metric == "flops" else ("flops", metric)
            self._most = space.most_compressed()
            self._full = {m: space.uncompressed(m) for m in self.metrics}
            n_dynamic = 2 * len(self.metrics) + 2
        else:
            n_dynamic = 2
        self.n_state = self.static.shape[1] + n_dynamic + self.n_action

    def feature_names(self) -> list[str]:
        """Names of the state's entries, in order (reports and tests)."""
        if isinstance(self.space, CompressionSpace):
            static = ["index", "type", "c_in", "c_out", "stride", "kernel", "flops"]
            if self.budget_state:
                static.append("out_hw")
        else:
            static = ["index", "continuous", "choices"]
        if self.budget_state:
            dynamic = [f"{m}_{k}" for m in self.metrics for k in ("removed", "to_remove")]
            dynamic += ["share_of_reducible", "needed_per_reducible"]
        else:
            dynamic = ["reduced", "rest"]
        return static + dynamic + [f"prev_{c}" for c in self.controls]

    def _budget_features(self, t: int, partial: Mapping[str, Any]) -> list[float]:
        space = self.space
        assert isinstance(space, CompressionSpace)
        out: list[float] = []
        for m in self.metrics:
            full = self._full[m]
            budget = space.budget if (space.target is not None and m == space.target.metric
                                      and space.budget is not None) else 0.0
            need = (full - budget) or 1.0
            now = space.cost(partial, m)
            out += [(full - now) / need, max(0.0, now - budget) / need]
        m = self.metrics[-1]  # the target's metric (FLOPs without a target)
        now = space.cost(partial, m)
        here = dict(partial)
        for name in self.steps[t]:
            if name is not None:
                here[name] = self._most[name]
        rest = dict(partial)
        for names in self.steps[t:]:
            for name in names:
                if name is not None:
                    rest[name] = self._most[name]
        reducible = now - space.cost(rest, m)
        share = (now - space.cost(here, m)) / reducible if reducible > 0 else 0.0
        budget = space.budget if space.target is not None and space.budget is not None else 0.0
        still = max(0.0, now - budget)
        needed = min(2.0, still / reducible) if reducible > 0 else (0.0 if still == 0 else 2.0)
        return out + [share, needed]

    def state(self, t: int, partial: Mapping[str, Any], prev: np.ndarray) -> np.ndarray:
        if self.budget_state:
            dynamic = self._budget_features(t, partial)
        elif isinstance(self.space, CompressionSpace):
            dynamic = list(self.space.progress(partial, self.index[t]))
        else:
            dynamic = [t / len(self.steps), (len(self.steps) - t - 1) / len(self.steps)]
        return np.concatenate([self.static[t], dynamic, prev]).astype(np.float32)

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


def bounded_walk(space: Space, lbound: float | None) -> tuple[Space, bool]:
    """The space an episode walks under AMC's ``lbound`` (keep at least that fraction of each
    group's channels): ``space.bounded(1 - lbound)`` on a compression space, else ``space``.
    Returns ``(walk, bound_relaxed)``; ``bound_relaxed`` is True where the target is out of
    reach under the bound, so the space's own bound is kept. Shared by ``amc`` and the
    ``rllib`` agent's compression walk (``agents.envs.CompressionEnv``)."""
    if not isinstance(space, CompressionSpace) or lbound is None:
        return space, False
    try:
        return space.bounded(1.0 - lbound), False
    except ValueError:  # the target needs more than lbound allows
        return space, True


class AMCAgent(Agent):
    """AMC's DDPG agent behind ask/tell (see the module docstring)."""

    name: ClassVar[str] = "amc"
    supports_continuous: ClassVar[bool] = True

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0,
                 **options: Any) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self.config = AMCConfig(**options)
        walk, self.bound_relaxed = bounded_walk(space, self.config.lbound)
        self.episode = _Episode(walk, self.config.variant, self.config.order)
        self.constraint = self.config.resolved_constraint
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
        self.pending: dict[int, tuple[Architecture, list[tuple], float]] = {}
        self.best: tuple[float, Architecture] | None = None
        self.reward_abs_sum = 0.0  # mean |reward| scales the penalty (reward units vary)
        self.rewards_told = 0

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

    @property
    def _penalized(self) -> bool:
        return (self.config.constrain and self.constraint == "penalty"
                and isinstance(self.episode.space, CompressionSpace)
                and self.episode.space.target is not None)

    def _rollout(self, mode: str, sigma: float = 0.0
                 ) -> tuple[Architecture, list[tuple[np.ndarray, np.ndarray, np.ndarray, bool]],
                            float]:
        """One episode: the proposed policy, its transitions, and (penalty mode) the relative
        miss of the actions as taken, before the policy was moved onto the target."""
        ep = self.episode
        clip = self.config.constrain and not self._penalized
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
            taken = ep.apply(t, action, partial, clip)
            done = t == len(ep.steps) - 1
            nxt = state if done else ep.state(t + 1, partial, taken)
            transitions.append((state, taken.astype(np.float32), nxt, done))
            state = nxt
        miss = 0.0
        if self._penalized:
            walk = ep.space
            assert isinstance(walk, CompressionSpace) and walk.target and walk.budget
            miss = max(0.0, walk.cost(partial, walk.target.metric) / walk.budget - 1.0)
            partial = walk.meet_target(partial)
        return self.space.validate(partial), transitions, miss

    def ask(self) -> Proposal:
        e = self.episodes_asked
        warm = e < self.config.warmup
        sigma = self.sigma(e)
        arch, transitions, miss = self._rollout("random" if warm else "noisy", sigma)
        trial_id = self.next_id
        self.next_id += 1
        self.episodes_asked += 1
        self.pending[trial_id] = (arch, transitions, miss)
        info = {"episode": e, "warmup": warm, "sigma": None if warm else round(sigma, 6),
                "variant": self.config.variant}
        if self._penalized:
            info["target_miss"] = round(miss, 6)
        return Proposal(trial_id, arch, info)

    def greedy(self) -> Architecture:
        """The actor's policy without exploration noise (for reports and tests)."""
        return self._rollout("greedy")[0]

    def penalized_reward(self, reward: float, miss: float) -> float:
        """What the agent learns from in penalty mode (for reports and tests)."""
        scale = (self.reward_abs_sum + abs(reward)) / (self.rewards_told + 1) or 1.0
        return reward - self.config.penalty * miss * scale

    # ---- learning --------------------------------------------------------------------------
    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self.pending:
            raise ValueError(f"trial {trial_id} was not proposed by this agent or was told "
                             "already")
        arch, transitions, miss = self.pending.pop(trial_id)
        if not result.ok:
            return
        reward = float(result.reward)  # type: ignore[arg-type]
        if self.best is None or reward > self.best[0]:
            self.best = (reward, dict(arch))
        learned = self.penalized_reward(reward, miss) if miss > 0 else reward
        self.reward_abs_sum += abs(reward)
        self.rewards_told += 1
        reward = learned
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
            "reward_abs_sum": self.reward_abs_sum, "rewards_told": self.rewards_told,
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
        self.pending = {k: v if len(v) == 3 else (*v, 0.0)  # older checkpoints: no miss
                        for k, v in state["pending"].items()}
        self.best = state["best"]
        self.reward_abs_sum = float(state.get("reward_abs_sum", 0.0))
        self.rewards_told = int(state.get("rewards_told", 0))
