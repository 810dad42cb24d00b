"""MnasNet's RNN controller behind ask/tell: an LSTM policy trained with PPO or REINFORCE.

``ask`` samples a whole architecture from the LSTM (one softmax per decision) and stores its
log-probability under the trial id, so any number of proposals may be in flight; once
``batch_size`` trials have been told, the policy is updated on them: PPO's clipped surrogate
over ``ppo_epochs`` passes (MnasNet, Tan et al. 2019) or one REINFORCE step (the NAS-Bench-201
baseline), both against an exponential moving-average reward baseline, with an entropy bonus.

The reward is the job's (``TrialResult.reward``, from the job's reward spec). With
``pareto=True`` it is MnasNet's ``ACC * (LAT / T) ** w`` with a latency target ``T`` the agent
draws per proposal: the proposal asks for it in ``Proposal.info["reward"]`` and the search
loop computes it with the one MnasNet reward function (``search.objectives``), records it as
the trial's metric ``agent_reward`` and tells it back; this module never imports ``search``.

What makes it sample-efficient when repeats cost no budget (defaults of ``mnas``):

- restricted sampling: proposals come from the policy restricted to architectures not
  proposed before, ``pi(a) / (1 - pi(S))``: first by rejection (``fresh_tries`` draws), then
  exactly by ``LSTMController.sample_excluding`` when the policy has collapsed onto ``S``.
  The log-prob stored and re-computed in the update is the restricted one, so PPO's
  importance ratio is that of the distribution that drew the sample. A job never stalls on
  repeats while a new architecture exists.
- PPO as RLlib runs it on this MDP (``critic``, the default; Schulman et al. 2017 with a
  learned state value as in RLlib's PPO): a value head on the LSTM estimates the reward of
  each prefix, each decision's advantage is ``R - V(prefix)`` (GAE with lambda = gamma = 1;
  rewards standardized by their running mean and spread, advantages over the batch's
  decisions), the clipped ratio is taken per decision and the entropy bonus is the mean per
  decision. The restricted policy factorizes over decisions (``restricted_step_log_prob``),
  so the per-decision ratios are exact for restricted samples too. On NB201's tuning seeds
  RLlib's own PPO+LSTM through ``agents.rllib_agent`` led this controller by 0.26-0.31
  points at 100-200 evaluations; ablations there (no value loss, no LSTM) located most of
  the gap in the critic and the per-decision update, which this option brings in.
  ``prefix_input`` (RLlib's observation: every choice so far, one-hot, through an MLP) is
  optional: better at 200 evaluations, worse at 50-100, and 2-3x slower per proposal.
- without the critic, advantages are divided by the batch's reward spread
  (``advantage='normalized'``): the step size does not depend on the reward's scale.
- self-imitation (``sil_weight``, Oh et al. 2018): each update also raises the likelihood of
  the ``sil_top`` best architectures told so far, weighted by how far they beat the baseline.
  Under restricted sampling this puts the policy's mass next to the elites (shared prefixes).
- Dyna-style planning (``dyna_updates``; Sutton 1991, with a learned performance predictor
  as in BANANAS / NPENAS / BRP-NAS): after each real update a Gaussian process
  (``agents.predictor.HammingGP``) is fitted on every reward told so far, and the policy takes
  ``dyna_updates`` more policy-gradient steps on ``dyna_batch`` fresh restricted samples
  scored by the predictor's upper confidence bound (mean + ``dyna_kappa`` std). The samples
  that are *proposed* still come from the policy; the model only multiplies what each real
  evaluation teaches it. Scalar rewards only (not in Pareto mode).
- cost per proposal (budget 500 on NB201 needs < 50 ms per ask + tell): the exact sampler
  reads prefix masses of the excluded set kept between policy updates (``ExclusionTree``),
  rejection is skipped once most of the policy's mass is excluded, and one LSTM pass per
  update step scores the batch, the normalizer's likely excluded architectures and the elites.
- bounded logits (``tanh_constant``, ENAS's ``c * tanh(logits)``, Pham et al. 2018; 1.5 by
  default for ``mnas``): no choice of a decision is ever more than ``e ** 3`` (about 20)
  times likelier than another, so once the policy settles on an incumbent the restricted
  sampler still spreads its mass over edits at every decision, not only at the uncertain
  ones. Tuned on seeds kept apart (1200-1299, ``val_acc`` and hypervolume); see the README.
- failed, invalid and pruned trials (no reward) get the lowest reward seen so far, so the
  policy learns to avoid them; before any reward is seen they are left out.

Pareto mode: each proposal draws its own latency target ``T`` (log-uniform over the
latencies seen, from the fastest architecture with at least half the best accuracy to the
slowest, reaching a little below), and the LSTM gets ``log T`` as an input feature; ``hard``
mode (the default: ``alpha = 0, beta = -1``) makes ``T`` a real constraint, ``soft``
(``alpha = beta = w``) only rescales the reward. Self-imitation targets the current front,
each point conditioned on its own latency.
"""

from __future__ import annotations

import copy
import math
from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np
import torch

from agents.base import (
    AGENT_REWARD,
    Agent,
    Objective,
    Proposal,
    TrialResult,
    TrialState,
    welford_add,
)
from agents.controller import ExclusionTree, LSTMController
from agents.predictor import HammingGP
from agents.rewards import mnas_reward
from spaces.base import Architecture, Categorical, InvalidArchitecture, Space
from spaces.isolation import seeded

AdvantageKind = Literal["baseline", "normalized", "rank"]
_Elites = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]  # actions, cond, weights
#: Below this unexcluded mass ``1 - pi(S)`` a plain draw is mostly a repeat: skip rejection
#: (same distribution either way: both draw from the restricted policy exactly).
_REJECTION_MIN_MASS = 0.5
#: Relative error allowed in the gradient of the normalizer ``log(1 - pi(S))`` by leaving
#: the least likely excluded architectures out of its backward pass (see ``_live_rows``).
_NORMALIZER_TOL = 1e-3
#: Floor of the unexcluded mass ``1 - pi(S)`` in the restricted log-prob: below it float
#: rounding decides, so sampling and the update use the same clamped value.
_MIN_MASS = 1e-6


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
        fresh_tries: int = 16,
        sil_weight: float = 1.0,
        sil_top: int = 4,
        dyna_updates: int = 16,
        dyna_batch: int = 32,
        dyna_kappa: float = 2.0,
        pareto: bool = False,
        pareto_mode: Literal["hard", "soft"] = "hard",
        pareto_w: float = -0.07,
        pareto_reach: float = 0.1,
        dyna_pareto: bool = False,
        dyna_pareto_until: int = 0,
        dyna_latency_kappa: float = 0.0,
        critic: bool = False,
        value_coeff: float = 1.0,
        prefix_input: bool = False,
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
        _check("dyna_updates", dyna_updates >= 0, f"must be >= 0, got {dyna_updates}")
        _check("dyna_batch", dyna_batch >= 2, f"must be >= 2, got {dyna_batch}")
        _check("dyna_pareto_until", dyna_pareto_until >= 0,
               f"must be >= 0, got {dyna_pareto_until}")
        _check("dyna_latency_kappa", dyna_latency_kappa >= 0,
               f"must be >= 0, got {dyna_latency_kappa}")
        _check("advantage", advantage in ("baseline", "normalized", "rank"),
               f"must be 'baseline', 'normalized' or 'rank', got {advantage!r}")
        _check("pareto", isinstance(pareto, bool), f"must be true or false, got {pareto!r}")
        _check("critic", isinstance(critic, bool), f"must be true or false, got {critic!r}")
        _check("value_coeff", value_coeff >= 0, f"must be >= 0, got {value_coeff}")
        _check("pareto_mode", pareto_mode in ("hard", "soft"),
               f"must be 'hard' or 'soft', got {pareto_mode!r}")
        self.batch_size = int(batch_size)
        self.entropy_weight = float(entropy_weight)
        self.baseline_decay = float(baseline_decay)
        self.advantage = advantage
        self.fresh_tries = int(fresh_tries)
        self.sil_weight = float(sil_weight)
        self.sil_top = int(sil_top)
        self.dyna_updates = int(dyna_updates)
        self.dyna_batch = int(dyna_batch)
        self.dyna_kappa = float(dyna_kappa)
        self.pareto = pareto
        self.pareto_mode = pareto_mode
        self.pareto_w = float(pareto_w)
        self.pareto_reach = float(pareto_reach)
        self.dyna_pareto = bool(dyna_pareto)
        self.dyna_pareto_until = int(dyna_pareto_until)
        self.dyna_latency_kappa = float(dyna_latency_kappa)
        self.critic = critic
        self.value_coeff = float(value_coeff)
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
                temperature=temperature, tanh_constant=tanh_constant, value_head=critic,
                prefix_input=prefix_input,
            )
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=learning_rate)
        self._gen = torch.Generator().manual_seed(self.seed)
        self._next_id = 0
        self._pending: dict[int, dict[str, Any]] = {}
        self._buffer: list[dict[str, Any]] = []
        # Architectures the restricted policy leaves out (proposed, or found invalid), in the
        # order they were added: a sample records how many were out when it was drawn.
        self._excluded: list[list[int]] = []
        self._excluded_set: set[tuple[int, ...]] = set()
        self._known: dict[tuple[int, ...], Any] = {}  # actions -> reward (or objectives)
        self._baseline: float | None = None
        self._min_reward: float | None = None
        self._scale: float | None = None  # moving average of |reward - baseline|
        self._stats = [0, 0.0, 0.0]  # count, mean, M2 of the rewards learned from (Welford)
        self._observed: list[tuple[float, float]] = []  # (accuracy, latency), pareto mode
        self._cond_scale: tuple[float, float] | None = None
        self._p_excluded: list[float] | None = None  # pi(s) of excluded s under current net
        self._tree: ExclusionTree | None = None  # their prefix sums, for the exact sampler
        self.updates = 0

    # ---- ask ------------------------------------------------------------------------------
    def ask(self) -> Proposal:
        target = self._draw_target() if self.pareto else None
        cond = self._cond(target)
        actions, logp, arch, k = self._sample_restricted(cond)
        logp_r = logp - float(self._log_unexcluded([k], cond)[0])
        trial_id = self._next_id
        self._next_id += 1
        self._exclude(actions, math.exp(logp) if cond is None else None)
        self._pending[trial_id] = {"actions": actions, "logp": logp_r, "k": k,
                                   "target": target}
        info: dict[str, Any] = {"log_prob": round(logp_r, 4)}
        if target is not None:
            info["latency_target"] = target
            info["reward"] = {"kind": "mnas", "accuracy": self.accuracy_metric,
                              "latency": self.latency_metric, "target": target,
                              "mode": self.pareto_mode, "w": self.pareto_w}
        return Proposal(trial_id, arch, info)

    def _decode(self, row: Sequence[int]) -> Architecture:
        return {d.name: d.choices[a] for d, a in zip(self.space.decisions, row, strict=True)}

    def _exclude(self, row: list[int], prob: float | None = None) -> None:
        key = tuple(row)
        if key in self._excluded_set:
            return
        self._excluded_set.add(key)
        self._excluded.append(list(row))
        if self._p_excluded is not None:
            if prob is None:
                self._forget_probs()  # recomputed when next needed
            else:
                self._p_excluded.append(prob)
                if self._tree is not None:
                    self._tree.add(row, prob)

    def _forget_probs(self) -> None:
        """The policy changed (or an exclusion came without its probability)."""
        self._p_excluded = None
        self._tree = None

    def _sample_restricted(
        self, cond: torch.Tensor | None
    ) -> tuple[list[int], float, Architecture, int]:
        """A valid architecture not proposed before, from the restricted policy; its
        unrestricted log-prob; how many architectures were excluded when it was drawn.

        Rejection first, in growing rounds (4, 16, ... up to ``fresh_tries`` draws: cheap while
        most samples are new), then the exact masked sampler. Invalid samples are excluded
        from then on. Only when every architecture is excluded does a plain (repeat) sample
        come back, with ``k = 0``: the unrestricted policy drew it."""
        budget, n = self.fresh_tries, 4
        if cond is None and sum(self._excluded_probs()) > 1.0 - _REJECTION_MIN_MASS:
            budget = 0  # most draws would be repeats: go straight to the exact sampler
        while budget > 0:
            n = min(n, budget)
            budget -= n
            actions, logps = self.net.sample(
                n, self._gen, None if cond is None else cond.expand(n, 1))
            for row, lp in zip(actions.tolist(), logps.tolist(), strict=True):
                if tuple(row) in self._excluded_set:
                    continue
                arch = self._valid(row)
                if arch is not None:
                    return row, lp, arch, len(self._excluded)
            n *= 4
        while (drawn := self.net.sample_excluding(
                self._excluded, self._gen, cond,
                tree=None if cond is not None else self._exclusion_tree())) is not None:
            row, lp = drawn
            arch = self._valid(row)
            if arch is not None:
                return row, lp, arch, len(self._excluded)
        actions, logps = self.net.sample(1, self._gen, cond)
        row = actions[0].tolist()
        return row, float(logps[0]), self._decode(row), 0

    def _valid(self, row: list[int]) -> Architecture | None:
        arch = self._decode(row)
        try:
            self.space.check(arch)
        except InvalidArchitecture:
            self._exclude(row)
            return None
        return arch

    def _log_unexcluded(self, ks: Sequence[int], cond: torch.Tensor | None,
                        *, grad: bool = False) -> torch.Tensor:
        """``log(1 - pi(S_k))`` per sample (``S_k``: the first ``k`` excluded architectures),
        clamped at ``_MIN_MASS``; with gradients for the update, else from a cache."""
        kmax = max(ks, default=0)
        if kmax == 0:
            return torch.zeros(len(ks))
        if cond is None:
            if grad:
                lp = self.net.log_prob(torch.tensor(self._excluded[:kmax]))[0].double()
                p = lp.exp()
            else:
                p = torch.tensor(self._excluded_probs()[:kmax], dtype=torch.float64)
            cum = torch.cat([torch.zeros(1, dtype=torch.float64), p.cumsum(0)])
            mass = 1.0 - cum[torch.tensor(list(ks))]
        else:
            rows = []
            for i, k in enumerate(ks):
                if k == 0:
                    rows.append(torch.ones((), dtype=torch.float64))
                    continue
                with torch.set_grad_enabled(grad):
                    lp = self.net.log_prob(torch.tensor(self._excluded[:k]),
                                           cond[i : i + 1].expand(k, 1))[0]
                rows.append(1.0 - lp.double().exp().sum())
            mass = torch.stack(rows)
        return torch.log(mass.clamp(min=_MIN_MASS)).float()

    def _exclusion_tree(self) -> ExclusionTree:
        if self._tree is None or self._tree.size != len(self._excluded):
            self._tree = ExclusionTree(self._excluded, self._excluded_probs())
        return self._tree

    def _excluded_probs(self) -> list[float]:
        if self._p_excluded is None or len(self._p_excluded) != len(self._excluded):
            with torch.no_grad():
                lp = self.net.log_prob(torch.tensor(self._excluded))[0] if self._excluded \
                    else torch.zeros(0)
            self._p_excluded = lp.double().exp().tolist()
        return self._p_excluded

    def restricted_log_prob(self, actions: torch.Tensor, ks: Sequence[int],
                            cond: torch.Tensor | None = None) -> tuple[torch.Tensor,
                                                                       torch.Tensor]:
        """Log-prob under the restricted policy that drew each sample (with gradients), and
        the unrestricted policy's entropy: what the PPO update needs."""
        logp, ent = self.net.log_prob(actions, cond)
        return logp - self._log_unexcluded(ks, cond, grad=True), ent

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

    def _log_target_bounds(self) -> tuple[float, float] | None:
        """Where latency targets are drawn (log-uniformly), once the conditioning scale is
        fixed: the target range, reaching a little below the fastest useful architecture
        seen, so faster ones are sought too (the fast end of a front holds most of its
        hypervolume)."""
        rng = self._target_range()
        if rng is None or self._cond_scale is None:
            return None
        return rng[0] - self.pareto_reach * (rng[1] - rng[0]), rng[1]

    def _draw_target(self) -> float | None:
        """A latency target, once the conditioning scale is fixed."""
        u = float(torch.rand(1, generator=self._gen))
        bounds = self._log_target_bounds()
        if bounds is None:
            return None
        lo, hi = bounds
        return float(math.exp(lo + u * (hi - lo)))

    def _draw_targets(self, n: int) -> list[float] | None:
        """``n`` targets drawn as ``_draw_target`` draws one (planning's batch)."""
        bounds = self._log_target_bounds()
        if bounds is None:
            return None
        lo, hi = bounds
        u = torch.rand(n, generator=self._gen, dtype=torch.float64).numpy()
        return np.exp(lo + u * (hi - lo)).tolist()

    def _fix_cond_scale(self) -> None:
        """Fix the input feature's centre and scale once, as soon as latencies spread, so
        that a given ``log T`` keeps one meaning for the whole search."""
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

    # ---- tell -----------------------------------------------------------------------------
    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self._pending:
            raise ValueError(f"trial_id {trial_id!r} is not a pending trial of this agent")
        if result.state is TrialState.RUNNING:
            raise ValueError(f"trial {trial_id}: tell needs a finished state, got 'running'")
        entry = self._pending.pop(trial_id)
        key = tuple(entry["actions"])
        if self.pareto:
            acc = result.metrics.get(self.accuracy_metric)
            lat = result.metrics.get(self.latency_metric)
            ok = result.state is TrialState.COMPLETE and acc is not None and lat is not None
            if ok:
                self._observed.append((float(acc), float(lat)))
                self._fix_cond_scale()
            self._known[key] = (float(acc), float(lat)) if ok else None
            reward = result.metrics.get(AGENT_REWARD)
            entry["reward"] = float(reward) if ok and reward is not None else None
            # A trial drawn before there was a target has nothing to learn from.
            entry["skip"] = entry["target"] is None
        else:
            entry["reward"] = float(result.reward) if result.ok else None
            self._known[key] = entry["reward"]
            entry["skip"] = False
        self._buffer.append(entry)
        if len(self._buffer) >= self.batch_size:
            batch, self._buffer = self._buffer, []
            self._learn([e for e in batch if not e["skip"]])

    def _learn(self, batch: list[dict[str, Any]]) -> None:
        known = [e["reward"] for e in batch if e["reward"] is not None]
        if known:
            low = min(known)
            self._min_reward = low if self._min_reward is None else min(self._min_reward, low)
        if self._min_reward is None or not batch:
            return  # nothing to learn from yet
        r = np.array([self._min_reward if e["reward"] is None else e["reward"] for e in batch],
                     dtype=np.float64)
        if self._baseline is None:
            self._baseline = float(r.mean())
        adv = batch_advantages(r, self._baseline, self.advantage)
        spread = float(np.abs(r - self._baseline).mean())
        decay = self.baseline_decay
        self._scale = spread if self._scale is None else decay * self._scale + (1 - decay) * spread
        self._baseline = decay * self._baseline + (1 - decay) * float(r.mean())
        for value in r.tolist():
            self._stats = welford_add(self._stats, value)
        actions = torch.tensor([e["actions"] for e in batch], dtype=torch.long)
        old_logp = torch.tensor([e["logp"] for e in batch], dtype=torch.float32)
        ks = [e["k"] for e in batch]
        cond = torch.cat([self._cond(e["target"]) for e in batch]) if self.pareto else None
        self._update(actions, ks, old_logp, torch.tensor(adv, dtype=torch.float32), cond,
                     self._elites(), self._standardized(r))
        self.updates += 1
        self._forget_probs()
        if self.dyna_updates and (not self.pareto or self.dyna_pareto):
            self._plan_pareto() if self.pareto else self._plan()
            self._forget_probs()

    def _standardized(self, rewards: np.ndarray) -> torch.Tensor:
        """Rewards in units of the spread of all rewards learned from so far (the critic's
        targets: a scale-free value function, as RLlib's running reward normalization)."""
        n, mean, m2 = self._stats
        sd = math.sqrt(m2 / (n - 1)) if n > 1 else 1.0
        return torch.tensor((rewards - mean) / max(sd, 1e-8), dtype=torch.float32)

    def restricted_step_log_prob(
        self, actions: torch.Tensor, ks: Sequence[int], cond: torch.Tensor | None = None,
        p_cond: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Per decision (``[n, steps]``, with gradients): the log-prob of each choice under
        the restricted policy that drew the sample, the unrestricted step entropy, and the
        critic's values.

        The restricted policy factorizes over decisions: ``pi_R(a_t | a_<t) =
        pi(a_t | a_<t) * F(a_<=t) / F(a_<t)``, ``F(p)`` the mass of the completions of prefix
        ``p`` outside the excluded set ``S`` (``pi(p)`` minus the mass of the excluded
        architectures below ``p``; ``F(empty) = 1 - pi(S)``). The per-step terms sum to
        ``log pi(a) - log(1 - pi(S))``, the sequence log-prob the sampler drew with, so
        per-decision PPO ratios are exact for restricted samples too.

        ``p_cond`` (Pareto mode, ``[n, kmax]``): the excluded architectures' probabilities
        under each sample's condition before the update (``conditioned_excluded_probs``).
        With it only the rows ``_live_rows`` keeps go through the LSTM with gradients, as
        without a condition; without it every row does (exact)."""
        logp, ent, value = self.net.step_terms(actions, cond)
        kmax = max(ks, default=0)
        if kmax == 0:
            return logp, ent, value
        n = len(actions)
        ex = torch.tensor(self._excluded[:kmax], dtype=torch.long)
        if cond is None:
            p_old = torch.tensor(self._excluded_probs()[:kmax], dtype=torch.float64)
            live = self._live_rows(p_old)
            p = p_old
            if live:
                idx = torch.tensor(live, dtype=torch.long)
                p = p_old.index_put((idx,), self.net.log_prob(ex[idx])[0].double().exp())
            p_ex = p.unsqueeze(0).expand(n, -1)
        elif p_cond is None:
            p_ex = self._conditioned_probs(ex, cond, n).view(n, kmax)
        else:
            rows = [(i, j) for i, k in enumerate(ks) for j in self._live_rows(p_cond[i, :k])]
            p_ex = p_cond[:, :kmax]
            if rows:
                ii, jj = (torch.tensor(c, dtype=torch.long) for c in zip(*rows, strict=True))
                p_ex = p_ex.index_put((ii, jj), self.net.log_prob(ex[jj], cond[ii])[0]
                                      .double().exp())
        within = (torch.arange(kmax).unsqueeze(0)
                  < torch.tensor(list(ks)).unsqueeze(1)).double()  # S_k of each sample
        w = p_ex * within  # [n, kmax]
        below = (ex.unsqueeze(0) == actions.long().unsqueeze(1)).long().cumprod(2).double()
        excluded_below = torch.einsum("nkt,nk->nt", below, w)  # under each prefix a_<=t
        joint = logp.double().cumsum(1).exp()  # pi(a_<=t)
        free = torch.maximum(joint - excluded_below, joint[:, -1:])  # >= pi(a) exactly
        free_before = torch.cat([(1.0 - w.sum(1, keepdim=True)).clamp(min=_MIN_MASS),
                                 free[:, :-1]], dim=1)
        return (free.log() - free_before.log()).float(), ent, value

    def _conditioned_probs(self, ex: torch.Tensor, cond: torch.Tensor, n: int
                           ) -> torch.Tensor:
        """pi(excluded | each sample's condition), ``[n * k]`` flat: one LSTM pass."""
        k = len(ex)
        return self.net.log_prob(ex.repeat(n, 1), cond[:n].repeat_interleave(k, 0))[0] \
            .double().exp()

    def conditioned_excluded_probs(self, ks: Sequence[int], cond: torch.Tensor
                                   ) -> torch.Tensor:
        """``[n, kmax]`` probabilities of the excluded architectures under each sample's
        condition, without gradients: ``p_cond`` of ``restricted_step_log_prob``."""
        kmax = max(ks, default=0)
        if kmax == 0:
            return torch.zeros(len(ks), 0, dtype=torch.float64)
        ex = torch.tensor(self._excluded[:kmax], dtype=torch.long)
        with torch.no_grad():
            return self._conditioned_probs(ex, cond, len(ks)).view(len(ks), kmax)

    # ---- Dyna-style planning on a learned predictor ---------------------------------------
    def _plan(self) -> None:
        """``dyna_updates`` policy-gradient steps on predicted rewards of fresh samples."""
        told = [(a, self._min_reward if v is None else v) for a, v in self._known.items()]
        if len(told) < 2 * self.batch_size:
            return
        x = np.array([a for a, _ in told], dtype=np.int64)
        y = np.array([v for _, v in told], dtype=np.float64)
        if y.std() <= 1e-12:
            return
        model = HammingGP().fit(x, y)
        for _ in range(self.dyna_updates):
            actions, _ = self.net.sample(4 * self.dyna_batch, self._gen)
            fresh = [row for row in actions.tolist() if tuple(row) not in self._excluded_set]
            fresh = fresh[: self.dyna_batch]
            if len(fresh) < 2:
                return  # the policy sits on evaluated architectures: nothing to plan on
            mean, sd = model.predict(np.array(fresh))
            # On-policy samples of the restricted policy with centred advantages: the
            # normalizer log(1 - pi(S)) is shared and drops out of the gradient.
            self._planning_step(torch.tensor(fresh), None, mean + self.dyna_kappa * sd)

    def _planning_step(self, actions: torch.Tensor, cond: torch.Tensor | None,
                       score: np.ndarray) -> None:
        """One policy-gradient step on predicted scores, standardized over the batch (no
        step when they are all alike)."""
        if score.std() <= 1e-12:
            return
        adv = torch.tensor((score - score.mean()) / score.std(), dtype=torch.float32)
        logp, ent = self.net.log_prob(actions, cond)
        self._step(-(adv * logp).mean() - self.entropy_weight * ent.mean())

    def _plan_pareto(self) -> None:
        """Planning in Pareto mode: two predictors, accuracy (UCB, as ``_plan``) and log
        latency (mean), and each fresh sample's planned reward is MnasNet's, under a latency
        target drawn for it as ``ask`` draws one (the same ``mnas_reward`` the loop records).
        Samples drawn under different targets share the batch's centred advantages; the
        restricted normalizer differs per target and is left out of this planning gradient."""
        told = [(a, v) for a, v in self._known.items() if v is not None and v[1] > 0]
        if len(told) < 2 * self.batch_size or self._cond_scale is None:
            return
        if self.dyna_pareto_until and len(told) >= self.dyna_pareto_until:
            return  # early only: later the policy learns from real evaluations alone
        x = np.array([a for a, _ in told], dtype=np.int64)
        acc = np.array([v[0] for _, v in told], dtype=np.float64)
        neg_log_lat = -np.log(np.array([v[1] for _, v in told], dtype=np.float64))
        if acc.std() <= 1e-12 or neg_log_lat.std() <= 1e-12:
            return
        acc_model, lat_model = HammingGP().fit(x, acc), HammingGP().fit(x, neg_log_lat)
        n = 4 * self.dyna_batch
        for _ in range(self.dyna_updates):
            targets = self._draw_targets(n)
            if targets is None:
                return
            cond = torch.cat([self._cond(t) for t in targets])
            actions, _ = self.net.sample(n, self._gen, cond)
            keep = [i for i, row in enumerate(actions.tolist())
                    if tuple(row) not in self._excluded_set][: self.dyna_batch]
            if len(keep) < 2:
                return  # the policy sits on evaluated architectures: nothing to plan on
            fresh = actions[keep]
            mean, sd = acc_model.predict(fresh.numpy())
            lat_mean, lat_sd = lat_model.predict(fresh.numpy())
            # optimism on both objectives (as PAL, Zuluaga et al. 2013): an architecture
            # the latency model knows little about may be faster than it looks
            neg_log_lat = lat_mean + self.dyna_latency_kappa * lat_sd
            score = np.array([mnas_reward(a, math.exp(-nl), targets[i], w=self.pareto_w,
                                          mode=self.pareto_mode)
                              for a, nl, i in zip(mean + self.dyna_kappa * sd, neg_log_lat, keep,
                                                  strict=True)])
            self._planning_step(fresh, cond[keep], score)

    # ---- self-imitation -------------------------------------------------------------------
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
            scored = sorted(((v, list(a)) for a, v in self._known.items()
                             if v is not None and v > base), key=lambda x: -x[0])
            top = scored[: self.sil_top]
            if not top:
                return None
            weights = torch.tensor([(v - base) / scale for v, _ in top], dtype=torch.float32)
            return torch.tensor([a for _, a in top], dtype=torch.long), None, weights
        pts = [(o[0], o[1], list(a)) for a, o in self._known.items()
               if o is not None and o[1] > 0]
        rng = self._target_range()
        if not pts or rng is None or self._cond_scale is None:
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

    def _policy_terms(self, actions: torch.Tensor, ks: Sequence[int],
                      cond: torch.Tensor | None, elites: _Elites | None
                      ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Restricted log-probs and entropies of a batch, and the self-imitation loss: what
        one update step needs. Without a condition the batch, the excluded architectures of
        the normalizer and the elites go through the LSTM in one call (the same values as
        ``restricted_log_prob`` + ``_sil_loss``, a third of the calls)."""
        if cond is not None:
            logp, ent = self.restricted_log_prob(actions, ks, cond)
            return logp, ent, self._sil_loss(elites)
        n, kmax = len(actions), max(ks, default=0)
        parts = [actions]
        live: list[int] = []
        if kmax:
            p_old = torch.tensor(self._excluded_probs()[:kmax], dtype=torch.float64)
            live = self._live_rows(p_old)
            parts.append(torch.tensor([self._excluded[i] for i in live], dtype=torch.long))
        if elites is not None and self.sil_weight > 0:
            parts.append(elites[0])
        lp_all, ent_all = self.net.log_prob(torch.cat(parts) if len(parts) > 1 else actions)
        logp, ent = lp_all[:n], ent_all[:n]
        m = len(live)
        if kmax:
            p = p_old.index_put((torch.tensor(live, dtype=torch.long),),
                                lp_all[n : n + m].double().exp())
            cum = torch.cat([torch.zeros(1, dtype=torch.float64), p.cumsum(0)])
            mass = 1.0 - cum[torch.tensor(list(ks))]
            logp = logp - torch.log(mass.clamp(min=_MIN_MASS)).float()
        sil = torch.zeros(())
        if elites is not None and self.sil_weight > 0:
            sil = -self.sil_weight * (elites[2] * lp_all[n + m :]).mean()
        return logp, ent, sil

    @staticmethod
    def _live_rows(p_old: torch.Tensor) -> list[int]:
        """Excluded architectures whose probability the normalizer re-computes with
        gradients: all but the least likely, whose mass together is at most
        ``_NORMALIZER_TOL`` of the smallest unexcluded mass. The rest enter as constants at
        their value under the policy before the update: the normalizer's value is unchanged
        there and its gradient loses terms of relative size <= ``_NORMALIZER_TOL``. A
        collapsed policy puts its mass on few of hundreds of excluded architectures, so the
        LSTM pass (and its backward, the update's main cost) shrinks to those few."""
        budget = _NORMALIZER_TOL * max(1.0 - float(p_old.sum()), _MIN_MASS)
        order = torch.argsort(p_old)
        dropped = int((p_old[order].cumsum(0) <= budget).sum())
        return sorted(order[dropped:].tolist())

    def _sil_loss(self, elites: _Elites | None) -> torch.Tensor:
        if elites is None:
            return torch.zeros(())
        actions, cond, weights = elites
        logp, _ = self.net.log_prob(actions, cond)
        return -self.sil_weight * (weights * logp).mean()

    @abstractmethod
    def _update(self, actions: torch.Tensor, ks: Sequence[int], old_logp: torch.Tensor,
                adv: torch.Tensor, cond: torch.Tensor | None,
                elites: _Elites | None, rewards: torch.Tensor) -> None:
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
            "excluded": list(self._excluded),
            "known": [[list(a), v] for a, v in self._known.items()],
            "baseline": self._baseline,
            "min_reward": self._min_reward,
            "scale": self._scale,
            "stats": list(self._stats),
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
        self._excluded = [list(r) for r in state["excluded"]]
        self._excluded_set = {tuple(r) for r in self._excluded}
        self._known = {tuple(a): (tuple(v) if isinstance(v, list | tuple) else v)
                       for a, v in state["known"]}
        self._baseline = state["baseline"]
        self._min_reward = state["min_reward"]
        self._scale = state["scale"]
        self._stats = list(state.get("stats", [0, 0.0, 0.0]))
        self._observed = [tuple(x) for x in state["observed"]]
        self._cond_scale = None if state["cond_scale"] is None else tuple(state["cond_scale"])
        self._forget_probs()
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

    def __init__(self, space: Space, *, clip: float = 0.3, ppo_epochs: int = 4,
                 learning_rate: float = 0.003, entropy_weight: float = 0.02,
                 critic: bool = True, tanh_constant: float | None = 1.5,
                 **options: Any) -> None:
        _check("clip", 0 < clip <= 1, f"must be in (0, 1], got {clip}")
        _check("ppo_epochs", ppo_epochs >= 1, f"must be >= 1, got {ppo_epochs}")
        self.clip = float(clip)
        self.ppo_epochs = int(ppo_epochs)
        super().__init__(space, learning_rate=learning_rate, entropy_weight=entropy_weight,
                         critic=critic, tanh_constant=tanh_constant, **options)

    def _update(self, actions: torch.Tensor, ks: Sequence[int], old_logp: torch.Tensor,
                adv: torch.Tensor, cond: torch.Tensor | None,
                elites: _Elites | None, rewards: torch.Tensor) -> None:
        if self.critic:
            self._update_per_step(actions, ks, cond, elites, rewards)
            return
        for _ in range(self.ppo_epochs):
            logp, ent, sil = self._policy_terms(actions, ks, cond, elites)
            loss = ppo_clip_loss(logp, old_logp, adv, self.clip)
            self._step(loss - self.entropy_weight * ent.mean() + sil)

    def _update_per_step(self, actions: torch.Tensor, ks: Sequence[int],
                         cond: torch.Tensor | None, elites: _Elites | None,
                         rewards: torch.Tensor) -> None:
        """PPO as RLlib runs it on this MDP (one decision per step, the reward at the end):
        a clipped ratio per decision, advantages ``R - V(prefix)`` from the critic (GAE with
        lambda = gamma = 1) standardized over the batch's decisions, a value loss, and the
        mean entropy per decision. The old log-probs are the restricted policy's at the
        start of the update (the policy that drew the batch unless proposals stayed in flight
        across an update)."""
        target = rewards.unsqueeze(1).expand(-1, self.net.steps)
        p_cond = None if cond is None else self.conditioned_excluded_probs(ks, cond)
        with torch.no_grad():
            old, _, v0 = self.restricted_step_log_prob(actions, ks, cond, p_cond)
            assert v0 is not None
            adv = target - v0
            adv = (adv - adv.mean()) / (adv.std() + 1e-8) if adv.numel() > 1 else adv
        for _ in range(self.ppo_epochs):
            logp, ent, value = self.restricted_step_log_prob(actions, ks, cond, p_cond)
            assert value is not None
            ratio = torch.exp(logp - old)
            clipped = torch.clamp(ratio, 1.0 - self.clip, 1.0 + self.clip)
            policy = -torch.min(ratio * adv, clipped * adv).mean()
            loss = (policy + self.value_coeff * ((value - target) ** 2).mean()
                    - self.entropy_weight * ent.mean() + self._sil_loss(elites))
            self._step(loss)


class ReinforceController(_ControllerAgent):
    """The same controller trained with REINFORCE and a moving-average baseline."""

    name: ClassVar[str] = "reinforce"

    def __init__(self, space: Space, *, batch_size: int = 1, entropy_weight: float = 0.0,
                 baseline_decay: float = 0.9, advantage: AdvantageKind = "baseline",
                 sil_weight: float = 0.0, dyna_updates: int = 0, **options: Any) -> None:
        super().__init__(space, batch_size=batch_size, entropy_weight=entropy_weight,
                         baseline_decay=baseline_decay, advantage=advantage,
                         sil_weight=sil_weight, dyna_updates=dyna_updates, **options)

    def _update(self, actions: torch.Tensor, ks: Sequence[int], old_logp: torch.Tensor,
                adv: torch.Tensor, cond: torch.Tensor | None,
                elites: _Elites | None, rewards: torch.Tensor) -> None:
        logp, ent, sil = self._policy_terms(actions, ks, cond, elites)
        self._step(-(logp * adv).mean() - self.entropy_weight * ent.mean() + sil)
