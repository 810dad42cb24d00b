"""MnasNet's RNN controller behind ask/tell: an LSTM policy trained with PPO or REINFORCE.

``ask`` samples a whole architecture from the LSTM (one softmax per decision) and stores its
log-probability under the trial id, so any number of proposals may be in flight; once
``batch_size`` trials have been told, the policy is updated on them: PPO's clipped surrogate
over ``ppo_epochs`` passes (MnasNet, Tan et al. 2019) or one REINFORCE step (the NAS-Bench-201
baseline), both against an exponential moving-average reward baseline, with an entropy bonus.

What makes it sample-efficient when repeats cost no budget (defaults of ``mnas``):

- ``fresh_tries``: ``ask`` draws up to that many samples and proposes the first architecture
  not proposed before, so a sharp policy enumerates the neighbourhood of its mode instead of
  resubmitting it; the log-prob stored is the policy's own, as PPO needs.
- advantages are divided by the batch's reward spread (``advantage='normalized'``): the step
  size does not depend on the reward's scale.
- self-imitation (``sil_weight``, Oh et al. 2018): each update also raises the likelihood of
  the ``sil_top`` best architectures told so far, weighted by how far they beat the baseline.
  PPO's clip limits how far one batch moves the policy, so without it a lucky architecture
  is seen once and forgotten; the weight fades as the policy's own samples catch up.
- failed, invalid and pruned trials (no reward) get the lowest reward seen so far, so the
  policy learns to avoid them; before any reward is seen they are left out.

Pareto mode (two or more objectives): a scalar reward finds one point, not a front. Each
proposal draws its own latency target ``T`` (log-uniform over the latencies seen, from the
fastest architecture with at least half the best accuracy to the slowest, reaching a little
below), the LSTM gets ``log T`` as an input feature, and the trial's reward is MnasNet's
``ACC * (LAT / T) ** w`` with that trial's own ``T`` (``w = pareto_alpha`` when ``LAT <= T``,
``pareto_beta`` above), computed from the metrics: accuracy is the max-direction objective,
latency the min-direction one. Self-imitation then targets the current front, each point
conditioned on its own latency. ``T`` goes into ``Proposal.info["latency_target"]``.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from agents.base import Agent, Objective, Proposal, TrialResult, TrialState
from agents.controller import LSTMController
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space
from spaces.isolation import seeded

AdvantageKind = Literal["baseline", "normalized", "rank"]
_Elites = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # actions, cond, weights


def ppo_clip_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantage: torch.Tensor, clip: float
) -> torch.Tensor:
    """PPO's clipped surrogate, negated for minimization (Schulman et al. 2017, eq. 7)."""
    ratio = torch.exp(logp - old_logp)
    clipped = torch.clamp(ratio, 1.0 - clip, 1.0 + clip)
    return -torch.min(ratio * advantage, clipped * advantage).mean()


def batch_advantages(rewards: np.ndarray, baseline: float, kind: AdvantageKind) -> np.ndarray:
    """Advantages of one batch against the moving-average ``baseline``.

    ``baseline``: ``r - b`` as in MnasNet/ENAS. ``normalized``: the same divided by the
    batch's reward spread, so the step size is scale-free. ``rank``: centred ranks within the
    batch in ``[-1, 1]`` shifted by the baseline's rank position (robust to outliers).
    """
    adv = rewards - baseline
    if kind == "baseline":
        return adv
    if kind == "normalized":
        scale = float(rewards.std())
        return adv / scale if scale > 1e-12 else np.zeros_like(adv)
    n = len(rewards)
    if n < 2:
        return np.sign(adv)
    order = rewards.argsort(kind="stable")
    ranks = np.empty(n)
    ranks[order] = np.arange(n)
    # Ties share their mean rank.
    for value in np.unique(rewards):
        tied = rewards == value
        ranks[tied] = ranks[tied].mean()
    centred = ranks / (n - 1) * 2.0 - 1.0
    shift = float(np.mean(rewards < baseline)) * 2.0 - 1.0
    return centred - shift


class _ControllerAgent(Agent):
    """Sampling, bookkeeping, rewards and checkpoints shared by the PPO and REINFORCE agents."""

    name: ClassVar[str] = "controller"

    def __init__(
        self,
        space: Space,
        *,
        objectives: Sequence[Objective] = (),
        seed: int = 0,
        hidden_size: int = 64,
        learning_rate: float = 0.01,
        batch_size: int = 8,
        entropy_weight: float = 0.05,
        baseline_decay: float = 0.95,
        temperature: float = 1.0,
        tanh_constant: float | None = None,
        advantage: AdvantageKind = "normalized",
        fresh_tries: int = 64,
        sil_weight: float = 1.0,
        sil_top: int = 4,
        pareto: Literal["auto", "off", "on"] = "auto",
        pareto_alpha: float = -0.07,
        pareto_beta: float = -1.0,
        pareto_reach: float = 0.1,
    ) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        for d in space.decisions:
            if not isinstance(d, Categorical):
                raise ValueError(f"{self.name} handles categorical decisions only; "
                                 f"{d.name!r} is continuous")
        _check("batch_size", batch_size >= 1, f"must be >= 1, got {batch_size}")
        _check("learning_rate", learning_rate > 0, f"must be > 0, got {learning_rate}")
        _check("baseline_decay", 0 <= baseline_decay < 1,
               f"must be in [0, 1), got {baseline_decay}")
        _check("entropy_weight", entropy_weight >= 0, f"must be >= 0, got {entropy_weight}")
        _check("fresh_tries", fresh_tries >= 0, f"must be >= 0, got {fresh_tries}")
        _check("advantage", advantage in ("baseline", "normalized", "rank"),
               f"must be 'baseline', 'normalized' or 'rank', got {advantage!r}")
        _check("pareto", pareto in ("auto", "off", "on"),
               f"must be 'auto', 'off' or 'on', got {pareto!r}")
        self.batch_size = int(batch_size)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.advantage = advantage
        self.fresh_tries = int(fresh_tries)
        self.sil_weight = float(sil_weight)
        self.sil_top = int(sil_top)
        self.pareto_alpha = float(pareto_alpha)
        self.pareto_beta = float(pareto_beta)
        self.pareto_reach = float(pareto_reach)
        self.pareto = pareto == "on" or (pareto == "auto" and len(self.objectives) >= 2)
        self.accuracy_metric = self.latency_metric = ""
        if self.pareto:
            maxs = [o.metric for o in self.objectives if o.direction == "max"]
            mins = [o.metric for o in self.objectives if o.direction == "min"]
            _check("pareto", bool(maxs and mins),
                   "needs one objective to maximize (accuracy) and one to minimize "
                   f"(latency), got {[(o.metric, o.direction) for o in self.objectives]}")
            self.accuracy_metric, self.latency_metric = maxs[0], mins[0]
        with seeded(self.seed):  # per job: other jobs' draws are not disturbed
            self.net = LSTMController(
                [d.size for d in space.decisions], hidden_size,
                cond_dim=1 if self.pareto else 0,
                temperature=temperature, tanh_constant=tanh_constant,
            )
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self._gen = torch.Generator().manual_seed(self.seed)
        self._next_id = 0
        self._pending: dict[int, dict[str, Any]] = {}
        self._buffer: list[dict[str, Any]] = []
        self._seen: set[str] = set()
        self._known: dict[str, Any] = {}  # arch key -> reward (or objectives) once told
        self._baseline: float | None = None
        self._min_reward: float | None = None
        self._scale: float | None = None  # moving average of |reward - baseline|
        self._observed: list[tuple[float, float]] = []  # (accuracy, latency), pareto mode
        self._cond_scale: tuple[float, float] | None = None
        self.updates = 0

    # ---- ask ------------------------------------------------------------------------------
    def ask(self) -> Proposal:
        target = self._draw_target() if self.pareto else None
        cond = self._cond(target)
        actions, logp, arch = self._sample_fresh(cond)
        key = self.space.key(arch)
        trial_id = self._next_id
        self._next_id += 1
        self._seen.add(key)
        self._pending[trial_id] = {"actions": actions, "logp": logp, "target": target,
                                   "key": key}
        info: dict[str, Any] = {"log_prob": round(logp, 4)}
        if self.pareto:
            info["latency_target"] = target
        return Proposal(trial_id, arch, info)

    def _sample_fresh(self, cond: torch.Tensor | None) -> tuple[list[int], float, Architecture]:
        """The first valid sample not proposed before; else the first valid; else the first.

        Samples come in growing rounds (4, 16, 64...), cheap while most samples are new."""
        first: tuple[list[int], float, Architecture] | None = None
        first_valid: tuple[list[int], float, Architecture] | None = None
        budget, n = max(1, self.fresh_tries), 4
        decisions = self.space.decisions
        while budget > 0:
            n = min(n, budget)
            budget -= n
            actions, logps = self.net.sample(
                n, self._gen, None if cond is None else cond.expand(n, 1))
            for row, lp in zip(actions.tolist(), logps.tolist(), strict=True):
                arch = {d.name: d.choices[a] for d, a in zip(decisions, row, strict=True)}
                first = first or (row, lp, arch)
                try:
                    self.space.check(arch)
                except InvalidArchitecture:
                    continue
                if self.fresh_tries == 0 or self.space.key(arch) not in self._seen:
                    return row, lp, arch
                first_valid = first_valid or (row, lp, arch)
            n *= 4
        result = first_valid or first
        assert result is not None  # at least one sample was drawn
        return result

    # ---- pareto targets -------------------------------------------------------------------
    def _target_range(self) -> tuple[float, float] | None:
        """Log-latency range worth targeting: from the fastest architecture that is not
        broken (at least half the best accuracy seen) to the slowest one seen."""
        if not self._observed:
            return None
        obs = np.array(self._observed)
        useful = obs[obs[:, 0] >= 0.5 * obs[:, 0].max()]
        if len(useful) == 0:
            useful = obs
        lo = float(np.log(max(useful[:, 1].min(), 1e-12)))
        return lo, max(float(np.log(max(obs[:, 1].max(), 1e-12))), lo)

    def _draw_target(self) -> float | None:
        """A latency target, once the conditioning scale is fixed (at the first update)."""
        u = float(torch.rand(1, generator=self._gen))
        rng = self._target_range()
        if rng is None or self._cond_scale is None:
            return None
        # Reach a little below the fastest useful architecture seen, so faster ones are
        # sought too: the fast end of a front holds most of its hypervolume.
        lo = rng[0] - self.pareto_reach * (rng[1] - rng[0])
        return float(math.exp(lo + u * (rng[1] - lo)))

    def _fix_cond_scale(self) -> None:
        """Fix the input feature's centre and scale once, from the first batch's latencies,
        so that a given ``log T`` keeps one meaning for the whole search."""
        rng = self._target_range()
        if self._cond_scale is None and rng is not None and rng[1] - rng[0] > 1e-6:
            self._cond_scale = ((rng[0] + rng[1]) / 2, (rng[1] - rng[0]) / 2)

    def _cond(self, target: float | None) -> torch.Tensor | None:
        """The controller's input feature: log latency target, centred and scaled (0 before
        the scale is fixed, i.e. the middle of the latency range)."""
        if not self.pareto:
            return None
        if target is None or self._cond_scale is None:
            return torch.zeros(1, 1)
        centre, half = self._cond_scale
        return torch.tensor([[(math.log(target) - centre) / half]], dtype=torch.float32)

    def pareto_reward(self, accuracy: float, latency: float, target: float) -> float:
        """MnasNet's ``ACC * (LAT / T) ** w`` with ``w`` alpha below the target, beta above."""
        w = self.pareto_alpha if latency <= target else self.pareto_beta
        return float(accuracy * (max(latency, 1e-12) / target) ** w)

    # ---- tell -----------------------------------------------------------------------------
    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        entry = self._pending.pop(trial_id)
        if self.pareto:
            acc = result.metrics.get(self.accuracy_metric)
            lat = result.metrics.get(self.latency_metric)
            ok = result.state is TrialState.COMPLETE and acc is not None and lat is not None
            entry["objectives"] = (float(acc), float(lat)) if ok else None
            if ok:
                self._observed.append((float(acc), float(lat)))
            self._known[entry["key"]] = (entry["actions"], entry["objectives"])
        else:
            entry["reward"] = float(result.reward) if result.ok else None
            self._known[entry["key"]] = (entry["actions"], entry["reward"])
        self._buffer.append(entry)
        if len(self._buffer) >= self.batch_size:
            batch, self._buffer = self._buffer, []
            self._learn(batch)

    def _rewards(self, batch: list[dict[str, Any]]) -> list[float | None]:
        if not self.pareto:
            return [e["reward"] for e in batch]
        self._fix_cond_scale()
        if self._cond_scale is None:
            return [None] * len(batch)  # no latency spread seen yet: nothing to target
        out: list[float | None] = []
        for e in batch:
            if e["target"] is None:
                # Sampled before the scale was fixed, with input 0: the centre's target.
                e["target"] = math.exp(self._cond_scale[0])
            out.append(None if e["objectives"] is None
                       else self.pareto_reward(*e["objectives"], e["target"]))
        return out

    def _learn(self, batch: list[dict[str, Any]]) -> None:
        rewards = self._rewards(batch)
        known = [r for r in rewards if r is not None]
        if known:
            low = min(known)
            self._min_reward = low if self._min_reward is None else min(self._min_reward, low)
        if self._min_reward is None:
            return  # nothing to learn from yet
        kept = [(e, self._min_reward if r is None else r)
                for e, r in zip(batch, rewards, strict=True)]
        r = np.array([x[1] for x in kept], dtype=np.float64)
        if self._baseline is None:
            self._baseline = float(r.mean())
        adv = batch_advantages(r, self._baseline, self.advantage)
        spread = float(np.abs(r - self._baseline).mean())
        decay = self.baseline_decay
        self._scale = spread if self._scale is None else decay * self._scale + (1 - decay) * spread
        self._baseline = decay * self._baseline + (1 - decay) * float(r.mean())
        actions = torch.tensor([e["actions"] for e, _ in kept], dtype=torch.long)
        old_logp = torch.tensor([e["logp"] for e, _ in kept], dtype=torch.float32)
        cond = (torch.cat([self._cond(e["target"]) for e, _ in kept]) if self.pareto else None)
        self._update(actions, old_logp, torch.tensor(adv, dtype=torch.float32), cond,
                     self._elites())
        self.updates += 1

    def _elites(self) -> _Elites | None:
        """Self-imitation targets (Oh et al. 2018): the best architectures told so far.

        Single objective: the ``sil_top`` best, weighted by how far their reward is above the
        moving-average baseline (in units of the mean absolute advantage), so imitation fades
        once the policy's own samples are as good: it sharpens without freezing on a point.
        Pareto mode: the current front (within the target range), each conditioned on its own
        latency, the target for which it is the best architecture known."""
        if self.sil_weight <= 0 or not self._known:
            return None
        if not self.pareto:
            base, scale = self._baseline or 0.0, max(self._scale or 0.0, 1e-12)
            scored = sorted(((v, a) for a, v in self._known.values()
                             if v is not None and v > base), key=lambda x: -x[0])
            top = scored[: self.sil_top]
            if not top:
                return None
            weights = torch.tensor([(v - base) / scale for v, _ in top], dtype=torch.float32)
            return torch.tensor([a for _, a in top], dtype=torch.long), None, weights
        pts = [(o[0], o[1], a) for a, o in self._known.values() if o is not None and o[1] > 0]
        rng = self._target_range()
        if not pts or rng is None:
            return None
        pts.sort(key=lambda x: (x[1], -x[0]))
        front, best = [], -math.inf
        for acc, lat, a in pts:
            if acc > best and math.log(lat) >= rng[0] - 1e-9:
                front.append((lat, a))
                best = acc
        if not front:
            return None
        cond = torch.cat([self._cond(lat) for lat, _ in front])
        return (torch.tensor([a for _, a in front], dtype=torch.long), cond,
                torch.ones(len(front)))

    def _sil_loss(self, elites: _Elites | None) -> torch.Tensor:
        if elites is None:
            return torch.zeros(())
        actions, cond, weights = elites
        logp, _ = self.net.log_prob(actions, cond)
        return -self.sil_weight * (weights * logp).mean()

    @abstractmethod
    def _update(self, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                cond: torch.Tensor | None,
                elites: _Elites | None) -> None:
        """One policy update on a batch of told trials (the algorithm's own rule)."""

    def _step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad()
        loss.backward()
        self.optimizer.step()

    # ---- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """A snapshot, cheap enough for the loop to take after every batch: tensors are
        cloned, containers copied one level (the lists and tuples inside are never mutated)."""
        return {
            "agent": self.name,
            "net": {k: v.detach().clone() for k, v in self.net.state_dict().items()},
            "optimizer": _clone_tensors(self.optimizer.state_dict()),
            "rng": self._gen.get_state(),
            "next_id": self._next_id,
            "pending": {k: dict(v) for k, v in self._pending.items()},
            "buffer": [dict(e) for e in self._buffer],
            "seen": list(self._seen),
            "known": dict(self._known),
            "baseline": self._baseline,
            "min_reward": self._min_reward,
            "scale": self._scale,
            "observed": list(self._observed),
            "cond_scale": self._cond_scale,
            "updates": self.updates,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if state.get("agent") != self.name:
            raise ValueError(f"state is for agent {state.get('agent')!r}, not {self.name!r}")
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(copy.deepcopy(state["optimizer"]))
        self._gen.set_state(state["rng"])
        self._next_id = int(state["next_id"])
        self._pending = {int(k): dict(v) for k, v in copy.deepcopy(state["pending"]).items()}
        self._buffer = [dict(e) for e in copy.deepcopy(state["buffer"])]
        self._seen = set(state["seen"])
        self._known = copy.deepcopy(dict(state["known"]))
        self._baseline = state["baseline"]
        self._min_reward = state["min_reward"]
        self._scale = state["scale"]
        self._observed = [tuple(x) for x in state["observed"]]
        self._cond_scale = None if state["cond_scale"] is None else tuple(state["cond_scale"])
        self.updates = int(state["updates"])


def _clone_tensors(value: Any) -> Any:
    """Deep copy of nested dicts/lists, cloning tensors (faster than ``copy.deepcopy``)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone_tensors(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_clone_tensors(v) for v in value)
    return value


def _check(option: str, ok: bool, message: str) -> None:
    if not ok:
        raise ValueError(f"{option}: {message}")


class MnasController(_ControllerAgent):
    """MnasNet's controller: PPO with the clipped surrogate, several epochs per batch."""

    name: ClassVar[str] = "mnas"

    def __init__(self, space: Space, *, clip: float = 0.2, ppo_epochs: int = 4,
                 **options: Any) -> None:
        _check("clip", 0 < clip <= 1, f"must be in (0, 1], got {clip}")
        _check("ppo_epochs", ppo_epochs >= 1, f"must be >= 1, got {ppo_epochs}")
        self.clip = float(clip)
        self.ppo_epochs = int(ppo_epochs)
        super().__init__(space, **options)

    def _update(self, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                cond: torch.Tensor | None,
                elites: _Elites | None) -> None:
        for _ in range(self.ppo_epochs):
            logp, ent = self.net.log_prob(actions, cond)
            loss = ppo_clip_loss(logp, old_logp, adv, self.clip)
            self._step(loss - self.entropy_weight * ent.mean() + self._sil_loss(elites))


class ReinforceController(_ControllerAgent):
    """The same controller trained with REINFORCE and a moving-average baseline."""

    name: ClassVar[str] = "reinforce"

    def __init__(self, space: Space, *, batch_size: int = 1, entropy_weight: float = 0.0,
                 baseline_decay: float = 0.9, advantage: AdvantageKind = "baseline",
                 sil_weight: float = 0.0, **options: Any) -> None:
        super().__init__(space, batch_size=batch_size, entropy_weight=entropy_weight,
                         baseline_decay=baseline_decay, advantage=advantage,
                         sil_weight=sil_weight, **options)

    def _update(self, actions: torch.Tensor, old_logp: torch.Tensor, adv: torch.Tensor,
                cond: torch.Tensor | None,
                elites: _Elites | None) -> None:
        logp, ent = self.net.log_prob(actions, cond)
        self._step(-(logp * adv).mean() - self.entropy_weight * ent.mean()
                   + self._sil_loss(elites))
