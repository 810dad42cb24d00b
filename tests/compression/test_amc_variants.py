"""AMC's variants: the budget-aware state on a hand-made model, penalty vs clip, options."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from agents.amc_ddpg import AMCAgent
from agents.base import TrialResult, TrialState
from agents.registry import AGENTS
from search.compression.graph import analyze
from search.compression.reference import build_reference
from spaces.compression import CompressionSpace, GroupInfo, LayerTable, OpInfo

FAST = {"hidden1": 32, "hidden2": 32, "batch_size": 32}


def tiny_space(ratio: float = 0.5) -> CompressionSpace:
    """conv1 (1->4, 3x3, 4x4 out) -> bn -> conv2 (4->8, 3x3, stride 2, 2x2 out) -> fc (8->2).

    FLOPs (MACs, bias included): conv1 4*1*9*16 = 576, conv2 8*4*9*4 = 1152, fc 8*2+2 = 18;
    1746 in all. Most compressed (one channel per group): 144 + 36 + 4 = 184.
    """
    ops = (OpInfo("conv1", "conv", 1, 4, kernel=3, out_hw=16, out_group=0),
           OpInfo("bn1", "bn", 4, 4, in_group=0, out_group=0),
           OpInfo("conv2", "conv", 4, 8, kernel=3, stride=2, out_hw=4, in_group=0, out_group=1),
           OpInfo("fc", "linear", 8, 2, bias=True, in_group=1))
    table = LayerTable(ops, (GroupInfo(0, 4, "conv1"), GroupInfo(1, 8, "conv2")), (1, 4, 4))
    return CompressionSpace(table, controls=["prune"], target={"metric": "flops",
                                                                "ratio": ratio})


def test_budget_state_matches_hand_computed_values() -> None:
    space = tiny_space(0.5)  # budget 873: the target needs 873 FLOPs removed
    assert space.cost({}, "flops") == 1746 and space.budget == 873
    agent = AMCAgent(space, lbound=None, **FAST)  # space's own bound: one channel per group
    ep = agent.episode
    assert ep.feature_names() == [
        "index", "type", "c_in", "c_out", "stride", "kernel", "flops", "out_hw",
        "flops_removed", "flops_to_remove", "share_of_reducible", "needed_per_reducible",
        "prev_prune"]
    # step 0, nothing decided: conv1 alone at one channel leaves 144 + 288 + 18 = 450
    # (saves 1296); both at one channel leave 184 (the rest can remove 1562)
    s0 = ep.state(0, {}, np.zeros(1))
    expected0 = [0, 0, 0, 0, 0, 0, 0, 1,  # min-max scaled; conv1 has the larger h x w (16)
                 0.0, 1.0, 1296 / 1562, 873 / 1562, 0.0]
    np.testing.assert_allclose(s0, expected0, rtol=1e-6, atol=1e-7)
    # conv1 keeps 2 of 4: 288 + 576 + 18 = 882; conv2 at one channel: 288 + 72 + 4 = 364
    partial = {"prune:conv1": 0.5}
    s1 = ep.state(1, partial, np.array([0.5]))
    expected1 = [1, 0, 1, 1, 1, 0, 1, 0,
                 864 / 873, 9 / 873, 1.0, 9 / 518, 0.5]
    np.testing.assert_allclose(s1, expected1, rtol=1e-6, atol=1e-7)


def test_paper_state_is_the_papers() -> None:
    agent = AMCAgent(tiny_space(0.5), variant="paper", lbound=None, **FAST)
    assert agent.constraint == "clip"
    names = agent.episode.feature_names()
    assert "out_hw" not in names and names[-3:] == ["reduced", "rest", "prev_prune"]
    s1 = agent.episode.state(1, {"prune:conv1": 0.5}, np.array([0.5]))
    # reduced: (1746 - 882) / 1746; rest: FLOPs of later layers (none) / 1746
    np.testing.assert_allclose(s1[-3:], [864 / 1746, 0.0, 0.5], rtol=1e-6)


def test_budget_state_with_another_target_metric_adds_its_fractions() -> None:
    space = tiny_space()
    params = CompressionSpace(space.table, controls=["prune"],
                              target={"metric": "params", "ratio": 0.5})
    ep = AMCAgent(params, lbound=None, **FAST).episode
    assert ep.metrics == ("flops", "params")
    s0 = ep.state(0, {}, np.zeros(1))
    names = ep.feature_names()
    # no FLOPs target: FLOPs fractions are of the whole model; params of the target's cut
    assert s0[names.index("flops_removed")] == 0 and s0[names.index("flops_to_remove")] == 1
    assert s0[names.index("params_to_remove")] == pytest.approx(1.0)


def test_largest_first_visits_layers_by_flops() -> None:
    table = analyze(build_reference("resnet_small", width=0.5), (1, 8, 8)).table
    space = CompressionSpace(table, controls=["prune"], target={"metric": "flops",
                                                                "ratio": 0.3})
    agent = AMCAgent(space, order="largest_first", **FAST)
    flops = [space.steps[i].features[6] for i in agent.episode.index]
    assert flops == sorted(flops, reverse=True) and agent.episode.index != sorted(
        agent.episode.index)
    for _ in range(5):
        assert space.fits(agent.ask().arch)


def test_penalty_lets_actions_overshoot_and_repairs_clip_limits_them() -> None:
    """Random episodes at a 20% FLOPs target: clipped ones meet it as taken, so the later
    layers are forced to prune more than the early ones; penalty ones miss it as taken, are
    moved onto it by spreading the reduction over every layer (early and late alike), and are
    told a penalized reward."""
    table = analyze(build_reference("resnet_small", width=0.5), (1, 8, 8)).table
    space = CompressionSpace(table, controls=["prune"], target={"metric": "flops",
                                                                "ratio": 0.2})
    names = [s.decisions["prune"] for s in space.steps]
    clip = AMCAgent(space, seed=0, warmup=50, constraint="clip", **FAST)
    pen = AMCAgent(space, seed=0, warmup=50, constraint="penalty", penalty=2.0, **FAST)
    misses, ratios = [], {"clip": [], "penalty": []}
    for _ in range(16):
        a, b = clip.ask(), pen.ask()
        assert space.fits(a.arch) and space.fits(b.arch)
        assert "target_miss" not in a.info
        misses.append(b.info["target_miss"])
        ratios["clip"].append([a.arch[n] for n in names])
        ratios["penalty"].append([b.arch[n] for n in names])
        if b.info["target_miss"] > 0:  # repaired: the least move onto the target (groups
            # of 8-16 channels: one channel moves the cost by several percent)
            assert space.cost(b.arch, "flops") > 0.7 * space.budget
        clip.tell(a.trial_id, TrialResult(TrialState.COMPLETE, reward=0.8))
        pen.tell(b.trial_id, TrialResult(TrialState.COMPLETE, reward=0.8))
    assert max(misses) > 0.1  # uniform random actions rarely reach 20% on their own
    half = len(names) // 2
    late_minus_early = {k: float(np.mean(np.array(v)[:, half:]) - np.mean(np.array(v)[:, :half]))
                        for k, v in ratios.items()}
    assert late_minus_early["clip"] > 0.15 > 0.05 > abs(late_minus_early["penalty"]), \
        late_minus_early
    # what penalty mode learns from: stored rewards fall with the miss
    stored = pen.replay["r"][: pen.replay_size].reshape(16, -1)[:, 0]
    expected = [0.8 - 2.0 * m * 0.8 for m in misses]
    np.testing.assert_allclose(stored, expected, rtol=1e-4, atol=1e-4)
    assert np.all(clip.replay["r"][: clip.replay_size] == pytest.approx(0.8))


def test_penalty_zero_learns_the_plain_reward() -> None:
    space = tiny_space(0.2)
    agent = AMCAgent(space, seed=1, warmup=10, penalty=0.0, lbound=None, **FAST)
    for _ in range(4):
        p = agent.ask()
        agent.tell(p.trial_id, TrialResult(TrialState.COMPLETE, reward=0.5))
    assert np.all(agent.replay["r"][: agent.replay_size] == pytest.approx(0.5))


def test_meet_target_spreads_the_missing_reduction() -> None:
    space = tiny_space(0.3)
    arch = space.meet_target({"prune:conv1": 0.0, "prune:conv2": 0.0})
    assert space.fits(arch) and arch["prune:conv1"] > 0 and arch["prune:conv2"] > 0
    ok = {"prune:conv1": 0.75, "prune:conv2": 0.5}
    assert space.fits(ok) and space.meet_target(ok) == ok


@pytest.mark.parametrize(("options", "field"), [
    ({"variant": "fast"}, "variant"), ({"constraint": "soft"}, "constraint"),
    ({"order": "random"}, "order"), ({"penalty": -1.0}, "penalty"),
    ({"variant": "paper", "order": "largest_first"}, "order"),
])
def test_bad_variant_options_name_the_field(options: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        AMCAgent(tiny_space(), **options)
    with pytest.raises(ValidationError, match=field):
        AGENTS.get("amc").parse_options(options)
