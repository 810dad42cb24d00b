"""Baselines of automated compression, in the same harness as AMC.

- ``uniform_policy``: one prune ratio for every channel group, the least that meets the target;
  ``uniform_fill``: the same with the budget that whole channels leave unspent given back.
- ``shallow_first`` / ``deep_first``: AMC's handcrafted rules, prune ratio growing linearly
  towards the shallow (resp. deep) end of the network, scaled to just meet the target.
- ``NetAdaptAgent`` (Yang et al., ECCV 2018): shrink the resource budget step by step; each
  step proposes one candidate per layer (that layer alone pruned just enough to save this
  step's reduction), keeps the candidate that loses least accuracy per unit of resource saved,
  and repeats until the target is met. With the ``depth`` control each step also proposes
  dropping each remaining removable block (a block cannot be dropped "just enough": its
  candidate saves what it saves, and the loss-per-saving ranking weighs it fairly).

The heuristics are one fixed policy each, so they are functions (``FixedPolicyAgent`` wraps one
behind ask/tell for the search loop; ``UniformAgent``, ``ShallowFirstAgent`` and
``DeepFirstAgent`` are the registered agents, one evaluation each is enough). NetAdapt is
iterative and adaptive, so it is an ask/tell agent: ``ask`` hands out the current step's
candidates, the step ends when all are told. All four are registered (``uniform``,
``shallow_first``, ``deep_first``, ``netadapt``) and declare ``requires_target_space``: they
need a compression space with a target, so they pass the compression contract suite
(``tests/compression/test_agent_contract.py``) rather than the generic one.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

from agents.base import Agent, Objective, Proposal, TrialResult
from spaces.base import Architecture, Space
from spaces.compression import CompressionSpace, smallest_fitting


def _prune_names(space: CompressionSpace) -> list[str]:
    return [s.decisions["prune"] for s in space.steps if "prune" in s.decisions]


def _need_target(space: Space) -> CompressionSpace:
    if not isinstance(space, CompressionSpace) or space.target is None:
        raise ValueError("compression baselines need a compression space with a target")
    if "prune" not in space.controls:
        raise ValueError("compression baselines prune channels: the space needs control 'prune'")
    return space


def _depth_names(space: CompressionSpace) -> list[tuple[str, str | None]]:
    """(depth decision, prune decision of the same step or None) per removable block."""
    return [(s.decisions["depth"], s.decisions.get("prune")) for s in space.steps
            if "depth" in s.decisions]


def scaled_policy(space: CompressionSpace, weights: Sequence[float]) -> Architecture:
    """Prune ratio ``min(high_i, s * w_i)`` per group (``high_i``: its decision's bound), with
    the least ``s`` meeting the target (bisection; cost falls as ``s`` grows).

    With the ``depth`` control, in two passes: the width rule alone gives ``s0``; a block
    whose first layer's prune action (ratio / its bound) at ``s0`` reaches 0.5, the bin
    of "drop" when any agent maps an action to a keep/drop decision, is dropped (blocks
    without a prune decision follow the mean weight); then the least ``s`` meeting the
    target with those blocks dropped is taken, so their budget goes back to the width of
    the layers that remain. A rule that prunes a block hard removes it instead."""
    space = _need_target(space)
    names = _prune_names(space)
    if len(weights) != len(names):
        raise ValueError(f"need {len(names)} weights, got {len(weights)}")
    depth = _depth_names(space)
    weight_of = dict(zip(names, weights, strict=True))
    mean_w = sum(weights) / max(1, len(weights))

    def policy(s: float, dropped: Sequence[str] = ()) -> Architecture:
        arch = space.identity()
        for n, w in zip(names, weights, strict=True):
            arch[n] = min(space.prune_high(n), max(0.0, s * w))
        for n in dropped:
            arch[n] = "drop"
        return arch

    hi = max((space.prune_high(n) / w for n, w in zip(names, weights, strict=True) if w > 0),
             default=space.max_prune / 1e-9)
    every = [n for n, _ in depth]
    if not space.fits(policy(hi, every)):
        raise ValueError("the target cannot be met by this rule within max_prune")
    if space.fits(policy(0.0)):
        return policy(0.0)
    s0 = hi if not space.fits(policy(hi)) else \
        smallest_fitting(lambda x: space.fits(policy(x)), hi, 60)
    dropped = [n for n, p in depth
               if min(1.0, s0 * (weight_of[p] if p else mean_w)
                      / max(space.prune_high(p) if p else space.max_prune, 1e-12)) >= 0.5]
    if not dropped:
        return policy(s0)
    if space.fits(policy(0.0, dropped)):
        return policy(0.0, dropped)
    return policy(smallest_fitting(lambda x: space.fits(policy(x, dropped)), hi, 60),
                  dropped)


def uniform_policy(space: CompressionSpace) -> Architecture:
    return scaled_policy(space, [1.0] * len(_prune_names(_need_target(space))))


def fill_budget(space: CompressionSpace, arch: Architecture) -> Architecture:
    """``arch`` with channels given back while it still meets the target: one step of the
    channel grid at a time, always to the group that keeps the smallest fraction of its
    channels (among those that can take one more and still fit; ties to the shallower).

    Whole channels leave a rule below its budget (uniform pruning kept 4.58% of the FLOPs
    at a 5% target in the benchmark); this spends the rest without changing the rule's
    shape, so a comparison with a search that fills its budget is like for like."""
    space = _need_target(space)
    if not space.fits(arch):
        raise ValueError("fill_budget needs a policy that meets the target")
    out = dict(arch)
    names = [n for n in _prune_names(space) if out.get(n) != "drop"]
    channels = {n: space.table.groups[space.group_of(n)].channels for n in names}
    step = max(1, space.channel_multiple)
    full = set()
    while len(full) < len(names):
        kept = {n: space.keep(space.group_of(n), out[n]) for n in names if n not in full}
        name = min(kept, key=lambda n: kept[n] / channels[n])  # first (shallowest) of ties
        if kept[name] >= channels[name]:
            full.add(name)
            continue
        trial = {**out, name: space.snap(name, 1.0 - min(channels[name], kept[name] + step)
                                         / channels[name])}
        if space.fits(trial) and space.keep(space.group_of(name), trial[name]) > kept[name]:
            out = trial
        else:
            full.add(name)
    return out


def uniform_fill(space: CompressionSpace) -> Architecture:
    """``uniform_policy`` with the budget that whole channels left unspent given back
    (``fill_budget``)."""
    return fill_budget(space, uniform_policy(space))


def _depth_weights(space: CompressionSpace, deep: bool) -> list[float]:
    n = len(_prune_names(_need_target(space)))
    depth = [i / max(1, n - 1) for i in range(n)]
    return [0.5 + d if deep else 1.5 - d for d in depth]


def shallow_first(space: CompressionSpace) -> Architecture:
    """Prune shallow layers most (AMC's 'shallow' handcrafted rule)."""
    return scaled_policy(space, _depth_weights(space, deep=False))


def deep_first(space: CompressionSpace) -> Architecture:
    """Prune deep layers most (AMC's 'deep' handcrafted rule)."""
    return scaled_policy(space, _depth_weights(space, deep=True))


HEURISTICS: dict[str, Callable[[CompressionSpace], Architecture]] = {
    "uniform": uniform_policy, "shallow_first": shallow_first, "deep_first": deep_first,
    "uniform_fill": uniform_fill,
}


class FixedPolicyAgent(Agent):
    """Proposes one heuristic policy, again and again (the loop's cache answers repeats)."""

    name: ClassVar[str] = "fixed_policy"
    supports_continuous: ClassVar[bool] = True
    requires_target_space: ClassVar[bool] = True

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0,
                 rule: str = "uniform") -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        if rule not in HEURISTICS:
            raise ValueError(f"rule must be one of {sorted(HEURISTICS)}, got {rule!r}")
        self.rule = rule
        self.policy = HEURISTICS[rule](_need_target(space))
        self.next_id = 0
        self.pending: set[int] = set()

    def ask(self) -> Proposal:
        self.next_id += 1
        self.pending.add(self.next_id - 1)
        return Proposal(self.next_id - 1, dict(self.policy), {"rule": self.rule})

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self.pending:
            raise ValueError(f"trial {trial_id} was not proposed or was told already")
        self.pending.discard(trial_id)

    def state_dict(self) -> dict[str, Any]:
        return {"next_id": self.next_id, "pending": sorted(self.pending)}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.next_id = int(state["next_id"])
        self.pending = set(state["pending"])


class UniformAgent(FixedPolicyAgent):
    """One prune ratio for every group, the least that meets the target."""

    name: ClassVar[str] = "uniform"

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (),
                 seed: int = 0) -> None:
        super().__init__(space, objectives=objectives, seed=seed, rule="uniform")


class UniformFillAgent(FixedPolicyAgent):
    """The uniform rule with the budget whole channels leave unspent given back
    (``fill_budget``): on ResNet at 5% of the FLOPs it fine-tuned better than AMC's policies
    on every one of five references (README, issue 15's sixteenth run)."""

    name: ClassVar[str] = "uniform_fill"

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (),
                 seed: int = 0) -> None:
        super().__init__(space, objectives=objectives, seed=seed, rule="uniform_fill")


class ShallowFirstAgent(FixedPolicyAgent):
    """AMC's handcrafted rule: shallow layers pruned most."""

    name: ClassVar[str] = "shallow_first"

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (),
                 seed: int = 0) -> None:
        super().__init__(space, objectives=objectives, seed=seed, rule="shallow_first")


class DeepFirstAgent(FixedPolicyAgent):
    """AMC's handcrafted rule: deep layers pruned most."""

    name: ClassVar[str] = "deep_first"

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (),
                 seed: int = 0) -> None:
        super().__init__(space, objectives=objectives, seed=seed, rule="deep_first")


class NetAdaptAgent(Agent):
    """NetAdapt behind ask/tell (see the module docstring).

    ``initial_reduction``: the first step's reduction, as a fraction of the uncompressed
    resource; ``decay``: its factor per step (NetAdapt's schedule). The resource is the
    space's target metric; candidates are priced with the space's cost model and, when a
    result carries the target metric measured (``latency_ms`` for latency), with that.
    ``short_term_finetune``: rank candidates by their accuracy after the evaluator's short
    fine-tuning (``val_acc_after_finetune``, NetAdapt's short-term fine-tuning) rather than
    by the reward; the compress evaluator reports it when its ``finetune_epochs`` > 0.
    """

    name: ClassVar[str] = "netadapt"
    supports_continuous: ClassVar[bool] = True
    requires_target_space: ClassVar[bool] = True
    FINETUNED: ClassVar[str] = "val_acc_after_finetune"

    def __init__(self, space: Space, *, objectives: Sequence[Objective] = (), seed: int = 0,
                 initial_reduction: float = 0.1, decay: float = 0.96,
                 short_term_finetune: bool = False) -> None:
        super().__init__(space, objectives=objectives, seed=seed)
        self.cspace = _need_target(space)
        if not 0 < initial_reduction < 1:
            raise ValueError(f"initial_reduction must be in (0, 1), got {initial_reduction}")
        if not 0 < decay <= 1:
            raise ValueError(f"decay must be in (0, 1], got {decay}")
        self.initial_reduction, self.decay = float(initial_reduction), float(decay)
        self.short_term_finetune = bool(short_term_finetune)
        self.metric = self.cspace.target.metric  # type: ignore[union-attr]
        self.full = self.cspace.uncompressed(self.metric)
        self.current: Architecture = self.cspace.identity()
        self.current_reward: float | None = None
        self.step = 0
        self.queue: list[tuple[Architecture, dict[str, Any]]] = []
        self.results: dict[int, tuple[Architecture, dict[str, Any], float | None, float]] = {}
        self.pending: dict[int, tuple[Architecture, dict[str, Any]]] = {}
        self.next_id = 0
        self.history: list[dict[str, Any]] = []
        self._plan()

    @property
    def done(self) -> bool:
        return self.cspace.fits(self.current)

    def _plan(self) -> None:
        """Candidates of the next step: each group pruned alone, just enough to save Δ."""
        if self.done:
            return
        delta = self.initial_reduction * self.decay ** self.step * self.full
        now = self.cspace.cost(self.current, self.metric)
        goal = max(now - delta, self.cspace.budget or 0.0)
        gone = self.cspace.removed_ops(self.current)
        leaders = {g.index: g.leader for g in self.cspace.table.groups}
        for name, _ in _depth_names(self.cspace):  # a block: drop it whole (no partial drop)
            if self.current[name] != "drop":
                cand = dict(self.current)
                cand[name] = "drop"
                self.queue.append((cand, {"step": self.step, "layer": name,
                                          "cost": self.cspace.cost(cand, self.metric)}))
        for name in _prune_names(self.cspace):
            g = self.cspace.group_of(name)
            if leaders[g] in gone:  # inside a dropped block: nothing left to prune
                continue
            channels = self.cspace.table.groups[g].channels
            start = self.cspace.keep(g, self.current[name])
            for keep in range(start - 1, 0, -1):
                ratio = 1.0 - keep / channels
                if ratio > self.cspace.prune_high(name):
                    break
                cand = dict(self.current)
                cand[name] = ratio
                cost = self.cspace.cost(cand, self.metric)
                if cost <= goal:
                    self.queue.append((cand, {"step": self.step, "layer": name,
                                              "keep": keep, "cost": cost}))
                    break
        if not self.queue:  # no single layer can save Δ: take the largest saving there is
            best = None
            for name in _prune_names(self.cspace):
                cand = dict(self.current)
                cand[name] = self.cspace.prune_high(name)
                cost = self.cspace.cost(cand, self.metric)
                if cost < now and (best is None or cost < best[1]["cost"]):
                    best = (cand, {"step": self.step, "layer": name, "cost": cost})
            if best is None:
                raise ValueError("NetAdapt cannot reduce the resource further: target out "
                                 "of reach")
            self.queue.append(best)

    def ask(self) -> Proposal:
        trial_id = self.next_id
        self.next_id += 1
        if self.queue:
            arch, info = self.queue.pop(0)
        else:  # finished, or waiting for this step's results: propose the current policy
            arch, info = dict(self.current), {"step": self.step, "current": True,
                                              "final": self.done}
        self.pending[trial_id] = (arch, info)
        return Proposal(trial_id, self.cspace.validate(arch), dict(info))

    def tell(self, trial_id: int, result: TrialResult) -> None:
        if trial_id not in self.pending:
            raise ValueError(f"trial {trial_id} was not proposed or was told already")
        arch, info = self.pending.pop(trial_id)
        if "layer" not in info:
            return
        measured = {"latency": "latency_ms"}.get(self.metric, self.metric)
        cost = float(result.metrics.get(measured, info["cost"]))
        score = result.reward if result.ok else None
        if score is not None and self.short_term_finetune:
            if self.FINETUNED not in result.metrics:
                raise ValueError(f"short_term_finetune: results carry no {self.FINETUNED!r}; "
                                 "set the compress evaluator's finetune_epochs > 0")
            score = float(result.metrics[self.FINETUNED])
        self.results[trial_id] = (arch, info, score, cost)
        waiting = any("layer" in i for _, i in self.pending.values())
        if self.queue or waiting:
            return
        self._finish_step()

    def _finish_step(self) -> None:
        scored = [(a, i, r, c) for a, i, r, c in self.results.values() if r is not None]
        if scored:
            now = self.cspace.cost(self.current, self.metric)
            base = self.current_reward if self.current_reward is not None else \
                max(r for _, _, r, _ in scored)

            def loss_per_saving(item: tuple) -> float:
                _, _, r, c = item
                return (base - r) / max(now - c, 1e-12)

            arch, info, reward, _ = min(scored, key=loss_per_saving)
            self.current, self.current_reward = arch, reward
            self.history.append({"step": self.step, "layer": info["layer"], "reward": reward})
        self.results = {}
        self.step += 1
        self._plan()

    def state_dict(self) -> dict[str, Any]:
        return copy.deepcopy({
            "current": self.current, "current_reward": self.current_reward, "step": self.step,
            "queue": self.queue, "results": self.results, "pending": self.pending,
            "next_id": self.next_id, "history": self.history})

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        s = copy.deepcopy(dict(state))
        self.current, self.current_reward = s["current"], s["current_reward"]
        self.step, self.queue, self.results = s["step"], s["queue"], s["results"]
        self.pending, self.next_id, self.history = s["pending"], s["next_id"], s["history"]
