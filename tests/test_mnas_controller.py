"""The LSTM controllers (MnasNet's PPO, REINFORCE): loss, learning, bookkeeping, checkpoints."""

from __future__ import annotations

import copy
import itertools
import json
import math
from collections.abc import Sequence

import numpy as np
import pytest
import torch

from agents.base import Objective, TrialResult, TrialState
from agents.controller import LSTMController
from agents.mnas_controller import (
    MnasController,
    ReinforceController,
    batch_advantages,
    ppo_clip_loss,
)
from agents.registry import AGENTS
from search.objectives import mnas_reward
from spaces.base import Categorical, Continuous, Space
from spaces.nb201 import NB201Space

torch.set_num_threads(1)


class ToySpace(Space):
    """Decisions of unequal sizes, so padded heads and masks are exercised."""

    name = "toy"

    def __init__(self, sizes: Sequence[int] = (3, 5, 2, 4)) -> None:
        self._decisions = tuple(Categorical(f"d{i}", tuple(range(s))) for i, s in enumerate(sizes))

    @property
    def decisions(self) -> Sequence[Categorical]:
        return self._decisions


TARGET = {"d0": 2, "d1": 4, "d2": 0, "d3": 1}


def matches(arch: dict) -> float:
    return float(sum(arch[k] == v for k, v in TARGET.items()))


def complete(reward: float, **metrics: float) -> TrialResult:
    return TrialResult(TrialState.COMPLETE, reward, dict(metrics))


# ---- the PPO loss ---------------------------------------------------------------------------
def test_ppo_loss_clips_the_ratio_on_a_hand_case() -> None:
    old = torch.log(torch.tensor([0.5, 0.5, 0.5, 0.5]))
    new = torch.log(torch.tensor([0.8, 0.8, 0.25, 0.25])).requires_grad_()
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    loss = ppo_clip_loss(new, old, adv, clip=0.2)
    # ratios 1.6, 1.6, 0.5, 0.5 -> min(r*A, clip(r)*A): 1.2, -1.6, 0.5, -0.8
    assert loss.item() == pytest.approx(-(1.2 - 1.6 + 0.5 - 0.8) / 4, abs=1e-6)
    loss.backward()
    grad = new.grad.tolist()
    # Clipped terms carry no gradient; unclipped ones carry -r*A/n.
    assert grad[0] == 0.0 and grad[3] == 0.0
    assert grad[1] == pytest.approx(1.6 / 4, abs=1e-6)
    assert grad[2] == pytest.approx(-0.5 / 4, abs=1e-6)


def test_ppo_loss_equals_policy_gradient_at_ratio_one() -> None:
    logp = torch.tensor([-1.0, -2.0], requires_grad=True)
    adv = torch.tensor([0.5, -2.0])
    ppo_clip_loss(logp, logp.detach(), adv, clip=0.2).backward()
    assert logp.grad.tolist() == pytest.approx((-adv / 2).tolist())


def test_advantages() -> None:
    r = np.array([1.0, 2.0, 3.0, 4.0])
    assert batch_advantages(r, 2.5, "baseline").tolist() == [-1.5, -0.5, 0.5, 1.5]
    norm = batch_advantages(r, 2.5, "normalized")
    assert norm.tolist() == pytest.approx((r - 2.5) / r.std())
    rank = batch_advantages(r, 2.5, "rank")
    assert rank.tolist() == pytest.approx([-1, -1 / 3, 1 / 3, 1])
    tied = batch_advantages(np.array([1.0, 1.0, 5.0]), 0.0, "rank")
    assert tied[0] == tied[1] < tied[2]
    assert batch_advantages(np.array([3.0, 3.0]), 3.0, "normalized").tolist() == [0, 0]


# ---- the network ----------------------------------------------------------------------------
def test_network_sample_and_log_prob_agree() -> None:
    net = LSTMController([3, 5, 2, 4], 16, cond_dim=1, tanh_constant=2.5)
    gen = torch.Generator().manual_seed(0)
    cond = torch.rand(500, 1)
    actions, logp = net.sample(500, gen, cond)
    assert actions.shape == (500, 4)
    assert (actions.max(0).values == torch.tensor([2, 4, 1, 3])).all()  # never a padded choice
    assert (actions.min(0).values == 0).all()
    again, entropy = net.log_prob(actions, cond)
    assert torch.allclose(logp, again, atol=1e-5)
    assert (entropy > 0).all() and (entropy <= math.log(3 * 5 * 2 * 4) + 1e-4).all()
    with pytest.raises(ValueError, match="cond"):
        net.sample(2, gen)


# ---- learning -------------------------------------------------------------------------------
def drive(agent, reward_fn, n: int) -> list[dict]:
    archs = []
    for _ in range(n):
        p = agent.ask()
        archs.append(p.arch)
        agent.tell(p.trial_id, complete(reward_fn(p.arch)))
    return archs


def target_prob(agent) -> float:
    space = agent.space
    actions = torch.tensor([space.encode(TARGET)])
    with torch.no_grad():
        logp, _ = agent.net.log_prob(actions)
    return float(logp.exp())


def all_probs(agent) -> dict[tuple[int, ...], float]:
    """The policy's probability of every architecture of the toy space (120 of them)."""
    archs = list(itertools.product(*(range(d.size) for d in agent.space.decisions)))
    with torch.no_grad():
        logp, _ = agent.net.log_prob(torch.tensor(archs))
    return dict(zip(archs, logp.exp().tolist(), strict=True))


@pytest.mark.parametrize("cls", [MnasController, ReinforceController])
def test_controller_learns_a_toy_target(cls) -> None:
    """Default options: fresh sampling finds the target, the update concentrates on it (mnas
    bounds its logits by default, so no architecture can exceed about 0.63 here)."""
    agent = cls(ToySpace(), seed=3)
    before = target_prob(agent)
    assert before == pytest.approx(1 / 120, rel=0.5)  # near-uniform start
    drive(agent, matches, 240)
    assert agent.updates == 240 // agent.batch_size
    assert_learned(agent)


def assert_learned(agent) -> None:
    """The target is the policy's mode, with over half the probability when the logits are
    unbounded, and over 0.3 (36x its uniform start) under a bound that caps it near 0.63."""
    probs = all_probs(agent)
    target = tuple(TARGET[d.name] for d in agent.space.decisions)
    assert max(probs, key=probs.get) == target
    assert probs[target] > (0.5 if agent.net.tanh_constant is None else 0.3)


def test_bounded_logits_keep_every_single_edit_in_reach() -> None:
    """mnas's default ``tanh_constant`` (1.5): each choice of a decision stays within e ** 3
    of the likeliest given the choices before it. (An edit of an early decision also moves
    the later ones' conditionals, so the bound on a whole edit is what this seeded run shows,
    not a theorem.) Unbounded, the same run leaves some single edits far less likely."""
    bounded, unbounded = (MnasController(ToySpace(), seed=3, **kw)
                          for kw in ({}, {"tanh_constant": None}))
    for agent in (bounded, unbounded):
        drive(agent, matches, 240)
    ratios = {}
    for name, agent in (("bounded", bounded), ("unbounded", unbounded)):
        probs = all_probs(agent)
        mode = max(probs, key=probs.get)
        edits = [a for a in probs if sum(x != y for x, y in zip(a, mode, strict=True)) == 1]
        ratios[name] = min(probs[a] for a in edits) / probs[mode]
    assert ratios["bounded"] >= math.exp(-3.0) * 0.99
    assert ratios["unbounded"] < ratios["bounded"]


def test_plain_ppo_learns_a_toy_target_with_the_masked_sampler_only() -> None:
    # fresh_tries=0 (every proposal from the exact masked sampler) and no self-imitation:
    # the PPO update alone (no planning) must find the target, and every proposal is new.
    agent = MnasController(ToySpace(), seed=0, fresh_tries=0, sil_weight=0.0, dyna_updates=0)
    archs = drive(agent, matches, 110)
    assert target_prob(agent) > 0.5
    assert len({json.dumps(a, sort_keys=True) for a in archs}) == 110


def test_self_imitation_pulls_toward_the_best_architecture() -> None:
    agents = [MnasController(ToySpace(), seed=5, sil_weight=w, learning_rate=0.01)
              for w in (0.0, 1.0)]
    batches = [[a.ask() for _ in range(8)] for a in agents]
    assert [p.arch for p in batches[0]] == [p.arch for p in batches[1]]  # same start
    best = max(batches[0], key=lambda p: matches(p.arch)).arch
    actions = torch.tensor([agents[0].space.encode(best)])
    for agent, batch in zip(agents, batches, strict=True):
        for p in batch:
            agent.tell(p.trial_id, complete(matches(p.arch)))
    with torch.no_grad():
        plain, sil = (float(a.net.log_prob(actions)[0]) for a in agents)
    assert sil > plain + 0.1


def collapse(agent) -> None:
    """Make the policy near-deterministic: one choice per decision gets logit +30. The logit
    bound is lifted first (``tanh_constant: null``, a user's option): mnas's default bound
    keeps a policy from collapsing, and these tests are about what happens when it does."""
    agent.net.tanh_constant = None
    with torch.no_grad():
        agent.net.head_w.zero_()
        agent.net.head_b.zero_()
        agent.net.head_b[:, 0] = 30.0


def test_a_collapsed_policy_still_proposes_new_architectures() -> None:
    space = ToySpace((2, 3, 2))  # 12 architectures
    agent = MnasController(space, seed=0, batch_size=100)  # no update: stays collapsed
    collapse(agent)
    assert target_prob_of(agent, [0, 0, 0]) > 0.999
    props = [agent.ask() for _ in range(12)]
    assert len({json.dumps(p.arch, sort_keys=True) for p in props}) == 12  # all, no repeat
    # Every architecture proposed: the next ask is a repeat, not a hang or an error.
    assert agent.ask().arch in [p.arch for p in props]


def target_prob_of(agent, row: list[int]) -> float:
    with torch.no_grad():
        return float(agent.net.log_prob(torch.tensor([row]))[0].exp())


def enumerate_probs(net: LSTMController) -> dict[tuple[int, ...], float]:
    rows = list(itertools.product(*[range(s) for s in net.sizes]))
    with torch.no_grad():
        logp, _ = net.log_prob(torch.tensor(rows))
    return {r: float(p) for r, p in zip(rows, logp.double().exp(), strict=True)}


@pytest.mark.parametrize("sharp", [False, True])
def test_restricted_sampling_matches_enumeration(sharp: bool) -> None:
    """The masked sampler draws from pi(a) / (1 - pi(S)) over a not in S, and the agent
    stores (and PPO re-computes) exactly that log-probability."""
    space = ToySpace((2, 3, 2))
    agent = MnasController(space, seed=3, fresh_tries=0)
    if sharp:
        collapse(agent)
        with torch.no_grad():
            agent.net.head_b[:, 0] = 3.0  # sharp but not numerically degenerate
    else:
        with torch.no_grad():
            agent.net.head_b.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    probs = enumerate_probs(agent.net)
    excluded = sorted(probs, key=lambda r: -probs[r])[:5]  # the policy's favourites
    for row in excluded:
        agent._exclude(list(row))
    rest = 1.0 - sum(probs[r] for r in excluded)
    expected = {r: p / rest for r, p in probs.items() if r not in excluded}
    gen = torch.Generator().manual_seed(0)
    n = 4000
    counts: dict[tuple[int, ...], int] = {}
    for _ in range(n):
        row, logp = agent.net.sample_excluding(excluded, gen)
        assert tuple(row) not in excluded
        assert logp == pytest.approx(math.log(probs[tuple(row)]), abs=1e-4)
        counts[tuple(row)] = counts.get(tuple(row), 0) + 1
    for r, q in expected.items():
        assert counts.get(r, 0) / n == pytest.approx(q, abs=4 * math.sqrt(q * (1 - q) / n)
                                                     + 1e-3)
    # The stored log-prob of a proposal is the restricted one, and the update's agrees.
    p = agent.ask()
    row = tuple(space.encode(p.arch))
    assert row not in excluded
    assert p.info["log_prob"] == pytest.approx(math.log(expected[row]), abs=1e-3)
    logp_r, _ = agent.restricted_log_prob(torch.tensor([list(row)]), [5])
    assert float(logp_r[0].detach()) == pytest.approx(math.log(expected[row]), abs=1e-4)
    everything = [list(r) for r in probs]
    assert agent.net.sample_excluding(everything, gen) is None



@pytest.mark.parametrize("prefix_input", [False, True])
def test_per_decision_restricted_probabilities_are_a_factorization(prefix_input: bool) -> None:
    """The critic's PPO update uses one restricted log-prob per decision: at every prefix
    they are a distribution over the next choice (zero where every completion is excluded),
    and their product over decisions is the restricted probability pi(a) / (1 - pi(S))."""
    space = ToySpace((2, 3, 2))
    agent = MnasController(space, seed=3, fresh_tries=0, critic=True, prefix_input=prefix_input)
    with torch.no_grad():
        agent.net.head_b.normal_(0, 1, generator=torch.Generator().manual_seed(1))
    probs = enumerate_probs(agent.net)
    excluded = sorted(probs, key=lambda r: -probs[r])[:5]
    excluded += [(1, 2, 0), (1, 2, 1)]  # every completion of the prefix (1, 2)
    for row in dict.fromkeys(excluded):
        agent._exclude(list(row))
    k = len(agent._excluded)
    rest = 1.0 - sum(probs[tuple(r)] for r in agent._excluded)
    free = [r for r in probs if list(r) not in agent._excluded]
    with torch.no_grad():
        steps, _, value = agent.restricted_step_log_prob(torch.tensor(free), [k] * len(free))
    assert value is not None and value.shape == (len(free), 3)
    for row, lp in zip(free, steps.double(), strict=True):
        assert float(lp.sum()) == pytest.approx(math.log(probs[row] / rest), abs=1e-4)
    # Per prefix, the next choice's restricted probabilities sum to one.
    by_prefix: dict[tuple[int, ...], dict[int, float]] = {}
    for row, lp in zip(free, steps.double().exp(), strict=True):
        for t in range(3):
            by_prefix.setdefault(row[:t], {})[row[t]] = float(lp[t])
    for choices in by_prefix.values():
        assert sum(choices.values()) == pytest.approx(1.0, abs=1e-5)


def test_prefix_input_network_samples_what_it_scores() -> None:
    net = LSTMController([3, 5, 2, 4], 16, cond_dim=1, prefix_input=True, value_head=True)
    gen = torch.Generator().manual_seed(0)
    cond = torch.rand(300, 1)
    actions, logp = net.sample(300, gen, cond)
    again, _ = net.log_prob(actions, cond)
    assert torch.allclose(logp, again, atol=1e-5)
    row, lp = net.sample_excluding(actions[:5].tolist(), gen, cond[:1])
    assert row not in actions[:5].tolist()
    with torch.no_grad():
        again_one = float(net.log_prob(torch.tensor([row]), cond[:1])[0])
    assert lp == pytest.approx(again_one, abs=1e-5)


@pytest.mark.parametrize("prefix_input", [False, True])
def test_critic_ppo_learns_a_toy_target(prefix_input: bool) -> None:
    agent = MnasController(ToySpace(), seed=3, critic=True, prefix_input=prefix_input,
                           learning_rate=0.003, entropy_weight=0.02, clip=0.3)
    drive(agent, matches, 240)
    assert_learned(agent)


def test_restriction_keeps_the_ppo_ratio_at_one_before_the_update() -> None:
    """Before the first gradient step, new / old log-prob is 1 for every sample of a batch,
    including those drawn late, when many architectures were already excluded."""
    space = ToySpace((2, 3, 2))
    agent = MnasController(space, seed=0, batch_size=10, fresh_tries=2)
    collapse(agent)
    with torch.no_grad():
        agent.net.head_b[:, 0] = 2.0
    props = [agent.ask() for _ in range(10)]
    entries = [agent._pending[p.trial_id] for p in props]
    logp, _ = agent.restricted_log_prob(torch.tensor([e["actions"] for e in entries]),
                                        [e["k"] for e in entries])
    old = torch.tensor([e["logp"] for e in entries])
    assert torch.allclose(logp, old, atol=1e-4)
    assert [e["k"] for e in entries] == list(range(10))


def test_fused_update_terms_match_the_separate_ones() -> None:
    """One LSTM pass for batch, normalizer and elites (the fast path of the update) gives the
    values of ``restricted_log_prob`` + ``_sil_loss``, and their gradient up to the
    normalizer's tolerance (the least likely excluded architectures enter as constants)."""
    space = ToySpace((3, 4, 3, 2))  # 72 architectures
    agent = MnasController(space, seed=0, batch_size=100)
    with torch.no_grad():
        agent.net.head_b.normal_(0, 2, generator=torch.Generator().manual_seed(2))
    probs = enumerate_probs(agent.net)
    ranked = sorted(probs, key=lambda r: probs[r])
    for row in ranked[:30] + ranked[-3:]:  # many unlikely ones, a few favourites
        agent._exclude(list(row))
    entries = [agent._pending[agent.ask().trial_id] for _ in range(10)]
    actions = torch.tensor([e["actions"] for e in entries])
    ks = [e["k"] for e in entries]
    elites = (torch.tensor([list(r) for r in ranked[-3:]]), None, torch.tensor([1.0, 0.5, 2.0]))
    live = agent._live_rows(torch.tensor(agent._excluded_probs(), dtype=torch.float64))
    assert 3 <= len(live) < len(agent._excluded)  # unlikely rows leave the backward pass

    def grads(loss: torch.Tensor) -> torch.Tensor:
        agent.net.zero_grad()
        loss.backward()
        return torch.cat([p.grad.flatten() for p in agent.net.parameters() if p.grad is not None])

    logp, ent, sil = agent._policy_terms(actions, ks, None, elites)
    ref_logp, ref_ent = agent.restricted_log_prob(actions, ks)
    ref_sil = agent._sil_loss(elites)
    assert torch.allclose(logp, ref_logp, atol=1e-5) and torch.allclose(ent, ref_ent, atol=1e-5)
    assert float(sil.detach()) == pytest.approx(float(ref_sil.detach()), abs=1e-5)
    g = grads(logp.sum() + ent.sum() + sil)
    ref = grads(ref_logp.sum() + ref_ent.sum() + ref_sil)
    assert float((g - ref).norm()) <= 1e-2 * float(ref.norm())


# ---- bookkeeping ----------------------------------------------------------------------------
def test_several_in_flight_and_update_after_batch() -> None:
    agent = MnasController(ToySpace(), seed=1, batch_size=4)
    props = [agent.ask() for _ in range(6)]
    assert len({p.trial_id for p in props}) == 6
    for p in reversed(props[:3]):
        agent.tell(p.trial_id, complete(matches(p.arch)))
    assert agent.updates == 0
    agent.tell(props[3].trial_id, complete(1.0))
    assert agent.updates == 1
    with pytest.raises(ValueError, match="not a pending trial"):
        agent.tell(props[0].trial_id, complete(1.0))  # told twice
    with pytest.raises(ValueError, match="not a pending trial"):
        agent.tell(999, complete(1.0))
    with pytest.raises(ValueError, match="running"):
        agent.tell(props[4].trial_id, TrialResult(TrialState.RUNNING))


def test_failed_trials_get_the_lowest_reward() -> None:
    agent = MnasController(ToySpace(), seed=2, batch_size=2)
    a, b = agent.ask(), agent.ask()
    agent.tell(a.trial_id, TrialResult(TrialState.FAILED, error="boom"))
    agent.tell(b.trial_id, TrialResult(TrialState.INVALID))
    assert agent.updates == 0  # nothing known yet: left out
    # Once rewards are known, failures are penalized: the policy moves away from them.
    bad = {"d0": 0, "d1": 0, "d2": 1, "d3": 0}
    actions = torch.tensor([agent.space.encode(bad)])
    with torch.no_grad():
        start = float(agent.net.log_prob(actions)[0])
    for _ in range(10):
        ps = [agent.ask() for _ in range(2)]
        for p in ps:
            if p.arch == bad or matches(p.arch) == 0:
                agent.tell(p.trial_id, TrialResult(TrialState.PRUNED))
            else:
                agent.tell(p.trial_id, complete(10.0 + matches(p.arch)))
    assert agent.updates >= 9
    with torch.no_grad():
        assert float(agent.net.log_prob(actions)[0]) < start


def test_seeded_and_deterministic() -> None:
    def run(seed: int) -> list[dict]:
        return drive(MnasController(NB201Space(), seed=seed, batch_size=4),
                     lambda a: float(sum(v == "nor_conv_3x3" for v in a.values())), 24)

    assert run(5) == run(5)
    assert run(5) != run(6)
    state = torch.random.get_rng_state()
    run(7)
    assert torch.equal(state, torch.random.get_rng_state())  # global RNG untouched


@pytest.mark.parametrize("pareto", [False, True])
@pytest.mark.parametrize(("cls", "critic"), [(MnasController, True), (MnasController, False),
                                             (ReinforceController, False)])
def test_state_round_trip_gives_the_same_next_proposals(cls, pareto: bool,
                                                         critic: bool) -> None:
    """``critic`` is PPO's (MnasController's) option; False there is the plain update."""
    space = ToySpace()
    objectives = PARETO_OBJECTIVES if pareto else ()

    def result(p) -> TrialResult:
        return pareto_result(p, matches(p.arch))

    def run(agent, n: int) -> list[tuple[dict, dict]]:
        out = []
        for _ in range(n):
            p = agent.ask()
            out.append((p.arch, p.info))
            agent.tell(p.trial_id, result(p))
        return out

    extra = {"critic": True, "prefix_input": True} if critic else {}
    agent = cls(space, objectives=objectives, seed=4, batch_size=4, pareto=pareto,
                dyna_updates=2, dyna_pareto=pareto, **extra)
    run(agent, 18)  # mid-batch: two trials told since the last update
    in_flight = [agent.ask() for _ in range(2)]
    state = copy.deepcopy(agent.state_dict())
    clone = cls(space, objectives=objectives, seed=99, batch_size=4, pareto=pareto,
                dyna_updates=2, dyna_pareto=pareto, **extra)
    clone.load_state_dict(state)
    for p in in_flight:  # pending proposals survive the round trip
        agent.tell(p.trial_id, result(p))
        clone.tell(p.trial_id, result(p))
    assert run(agent, 12) == run(clone, 12)
    for a, b in zip(agent.net.parameters(), clone.net.parameters(), strict=True):
        assert torch.equal(a, b)
    with pytest.raises(ValueError, match="agent"):
        MnasController(space).load_state_dict({**state, "agent": "random"})


def test_state_dict_is_a_snapshot() -> None:
    agent = MnasController(ToySpace(), seed=0, batch_size=2)
    drive(agent, matches, 4)
    state = agent.state_dict()
    saved = copy.deepcopy(state)
    drive(agent, matches, 4)  # further updates must not change the checkpoint taken
    for k, v in saved["net"].items():
        assert torch.equal(v, state["net"][k])
    assert str(saved["optimizer"]) == str(state["optimizer"])


# ---- pareto mode ----------------------------------------------------------------------------
PARETO_OBJECTIVES = (Objective("acc", "max"), Objective("lat", "min"))


def toy_metrics(arch: dict) -> dict[str, float]:
    """A trade-off: bigger choices are more accurate and slower (latency 1..11)."""
    size = sum(arch.values())
    return {"acc": 50.0 + 5.0 * size - 0.2 * size**2, "lat": 1.0 + size}


def pareto_result(p, reward: float = 0.0) -> TrialResult:
    """What the loop tells in Pareto mode: the job's reward, and the agent's own reward
    (the MnasNet reward the proposal asked for, from the one function in search) as a metric."""
    metrics = toy_metrics(p.arch)
    request = p.info.get("reward")
    if request is not None:
        metrics["agent_reward"] = mnas_reward(
            metrics[request["accuracy"]], metrics[request["latency"]], request["target"],
            w=request["w"], mode=request["mode"])
    return complete(reward, **metrics)


def test_pareto_mode_draws_and_uses_a_target_per_proposal() -> None:
    agent = MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, seed=0, batch_size=4,
                           pareto=True)
    targets = []
    for _ in range(40):
        p = agent.ask()
        targets.append(p.info.get("latency_target"))
        if p.info.get("latency_target") is not None:
            assert p.info["reward"] == {"kind": "mnas", "accuracy": "acc", "latency": "lat",
                                        "target": p.info["latency_target"], "mode": "hard",
                                        "w": -0.07}
        agent.tell(p.trial_id, pareto_result(p))
    assert targets[0] is None  # nothing seen yet: no target to draw
    later = targets[4:]
    assert all(t is not None for t in later) and len(set(later)) == len(later)
    assert 0.7 <= min(later) and max(later) <= 12.0  # about the latencies seen
    assert agent.updates >= 8


def test_pareto_normalizer_with_live_rows_matches_the_exact_one() -> None:
    """Pareto mode's update: with ``p_cond`` (probabilities before the update) only the live
    excluded rows go through the LSTM, yet the per-decision log-probs equal the exact ones
    (every excluded row under each sample's own condition) and the gradient stays within the
    normalizer's tolerance; the exact path agrees with one LSTM pass per sample."""
    space = ToySpace((2, 3, 2))
    agent = MnasController(space, objectives=PARETO_OBJECTIVES, seed=3, fresh_tries=0,
                           critic=True, pareto=True)
    with torch.no_grad():
        agent.net.head_b.normal_(0, 2, generator=torch.Generator().manual_seed(1))
    rows = list(itertools.product(*[range(s) for s in agent.net.sizes]))
    for row in rows[:7]:
        agent._exclude(list(row))
    free = torch.tensor(rows[7:])
    n, k = len(free), len(agent._excluded)
    ks = [k - i % 3 for i in range(n)]  # samples drawn at different exclusion counts
    cond = torch.linspace(-1, 1, n).unsqueeze(1)
    ex = torch.tensor(agent._excluded)
    with torch.no_grad():
        per_sample = torch.stack([agent.net.log_prob(ex, cond[i : i + 1].expand(k, -1))[0]
                                  for i in range(n)]).double().exp()
    p_cond = agent.conditioned_excluded_probs(ks, cond)
    assert torch.allclose(p_cond, per_sample, atol=1e-9)

    def terms(p: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        agent.net.zero_grad()
        steps, _, _ = agent.restricted_step_log_prob(free, ks, cond, p)
        steps.sum().backward()
        grad = torch.cat([q.grad.flatten() for q in agent.net.parameters()
                          if q.grad is not None])
        return steps.detach(), grad

    exact, g_exact = terms(None)
    live, g_live = terms(p_cond)
    assert torch.allclose(live, exact, atol=1e-5)
    assert float((g_live - g_exact).norm()) <= 1e-2 * float(g_exact.norm())
    for i, kk in enumerate(ks):  # each sample's steps sum to log pi(a|c) - log(1 - pi(S_k|c))
        with torch.no_grad():
            lp = float(agent.net.log_prob(free[i : i + 1], cond[i : i + 1])[0])
        mass = 1.0 - float(per_sample[i, :kk].sum())
        assert float(exact[i].double().sum()) == pytest.approx(lp - math.log(mass), abs=1e-4)


def test_without_pareto_a_two_objective_job_learns_from_the_jobs_reward() -> None:
    """Two objectives, pareto off (the default): no target, and the update follows the job's
    reward (here: prefer *small* choices, against the accuracy objective)."""
    agent = MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, seed=0)
    assert not agent.pareto
    small = {"d0": 0, "d1": 0, "d2": 0, "d3": 0}
    before = target_prob_of(agent, ToySpace().encode(small))
    for _ in range(120):
        p = agent.ask()
        assert "latency_target" not in p.info and "reward" not in p.info
        agent.tell(p.trial_id, complete(-float(sum(p.arch.values())), **toy_metrics(p.arch)))
    assert target_prob_of(agent, ToySpace().encode(small)) > 20 * before


def test_pareto_target_steers_the_latency_of_samples() -> None:
    """After training, the controller proposes slow architectures for a large target and
    fast ones for a small target: one policy covers the front."""
    agent = MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, seed=1, pareto=True)
    for _ in range(160):
        p = agent.ask()
        agent.tell(p.trial_id, pareto_result(p))
    gen = torch.Generator().manual_seed(0)
    mean_lat = {}
    for target in (2.0, 5.0, 11.0):
        actions, _ = agent.net.sample(300, gen, agent._cond(target).expand(300, 1))
        mean_lat[target] = float(actions.sum(1).float().mean()) + 1.0
    assert mean_lat[2.0] < 3.5 < mean_lat[5.0] < 7.0 < mean_lat[11.0]


def mean_true_reward(agent: MnasController, target: float, n: int = 400) -> float:
    gen = torch.Generator().manual_seed(5)
    actions, _ = agent.net.sample(n, gen, agent._cond(target).expand(n, 1))
    rewards = []
    for row in actions.tolist():
        m = toy_metrics(agent._decode(row))
        rewards.append(mnas_reward(m["acc"], m["lat"], target, mode="hard"))
    return float(np.mean(rewards))


def told_pareto_agent(seed: int) -> MnasController:
    """A Pareto-mode controller that has been told 32 toy results, planning off (tests switch
    planning on in copies of it)."""
    agent = MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, seed=seed, batch_size=8,
                           pareto=True, dyna_updates=0, sil_weight=0.0)
    for _ in range(32):
        p = agent.ask()
        agent.tell(p.trial_id, pareto_result(p))
    return agent


def test_pareto_planning_moves_the_policy_toward_better_rewards_at_each_target() -> None:
    """Planning in Pareto mode (``dyna_pareto``): steps on the predictors' accuracy and
    latency, scored by MnasNet's hard reward under drawn targets, raise the true reward of
    the policy's samples at a loose and at a tight target (the predictors learned from 32
    evaluations only)."""
    agent = told_pareto_agent(seed=3)
    planned = copy.deepcopy(agent)
    planned.dyna_updates, planned.dyna_pareto = 40, True
    planned._plan_pareto()
    for target in (2.5, 11.0):
        before, after = mean_true_reward(agent, target), mean_true_reward(planned, target)
        assert after > before + 1.0, (target, before, after)


def test_pareto_planning_is_off_by_default_and_needs_targets() -> None:
    agent = MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, seed=0, pareto=True)
    assert not agent.dyna_pareto
    state = {k: v.clone() for k, v in agent.net.state_dict().items()}
    agent.dyna_pareto = True
    agent._plan_pareto()  # nothing told: no predictor, no target range, no step
    for k, v in agent.net.state_dict().items():
        assert torch.equal(v, state[k])


def test_pareto_planning_stops_once_as_many_rewards_as_dyna_pareto_until_are_known() -> None:
    agent = told_pareto_agent(seed=3)
    known = sum(v is not None for v in agent._known.values())

    def planned_moves(until: int) -> bool:
        planned = copy.deepcopy(agent)
        planned.dyna_updates, planned.dyna_pareto, planned.dyna_pareto_until = 4, True, until
        before = {k: v.clone() for k, v in planned.net.state_dict().items()}
        planned._plan_pareto()
        return any(not torch.equal(v, before[k]) for k, v in planned.net.state_dict().items())

    assert planned_moves(0) and planned_moves(known + 1)
    assert not planned_moves(known)
    with pytest.raises(ValueError, match="dyna_pareto_until"):
        MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, pareto=True,
                       dyna_pareto_until=-1)


def test_pareto_planning_is_optimistic_on_latency_only_when_asked() -> None:
    """``dyna_latency_kappa`` changes what planning teaches the policy (the samples are the
    same: one generator state), and it must not be negative."""
    agent = told_pareto_agent(seed=5)

    def planned(kappa: float) -> dict[str, torch.Tensor]:
        copy_ = copy.deepcopy(agent)
        copy_.dyna_updates, copy_.dyna_pareto, copy_.dyna_latency_kappa = 4, True, kappa
        copy_._plan_pareto()
        return copy_.net.state_dict()

    mean_only, again, optimistic = planned(0.0), planned(0.0), planned(3.0)
    assert all(torch.equal(v, again[k]) for k, v in mean_only.items())
    assert any(not torch.equal(v, optimistic[k]) for k, v in mean_only.items())
    with pytest.raises(ValueError, match="dyna_latency_kappa"):
        MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, pareto=True,
                       dyna_latency_kappa=-0.5)


def test_pareto_invalid_trials_are_penalized_not_fatal() -> None:
    agent = MnasController(ToySpace(), objectives=PARETO_OBJECTIVES, seed=2, batch_size=4,
                           pareto=True)
    for i in range(24):
        p = agent.ask()
        if i % 3 == 0:  # e.g. no latency measured on the device: INVALID, no metrics
            agent.tell(p.trial_id, TrialResult(TrialState.INVALID, error="not measured"))
        else:
            agent.tell(p.trial_id, pareto_result(p))
    # The first batch was drawn before any latency was seen (no target): nothing to learn.
    assert agent.updates == 5


def test_pareto_needs_accuracy_and_latency_objectives() -> None:
    with pytest.raises(ValueError, match="pareto"):
        MnasController(ToySpace(), objectives=[Objective("a"), Objective("b")], pareto=True)
    with pytest.raises(ValueError, match="pareto"):
        MnasController(ToySpace(), objectives=[Objective("a")], pareto=True)
    MnasController(ToySpace(), objectives=[Objective("a"), Objective("b")])  # off: fine


# ---- options --------------------------------------------------------------------------------
def test_bad_options_name_the_field() -> None:
    space = ToySpace()
    for kwargs, field in [({"batch_size": 0}, "batch_size"), ({"clip": 0}, "clip"),
                          ({"ppo_epochs": 0}, "ppo_epochs"), ({"advantage": "x"}, "advantage"),
                          ({"baseline_decay": 1.0}, "baseline_decay")]:
        with pytest.raises(ValueError, match=field):
            MnasController(space, **kwargs)

    class Mixed(Space):
        decisions = (Categorical("a", (1, 2)), Continuous("b", 0.0, 1.0))

    with pytest.raises(ValueError, match="'b' is continuous"):
        ReinforceController(Mixed())


def test_registry_builds_both_agents() -> None:
    space = NB201Space()
    for name in ("mnas", "reinforce"):
        agent = AGENTS.create(name, space, options={"batch_size": 2}, seed=0)
        p = agent.ask()
        assert space.validate(p.arch) == p.arch
