"""The compression space: decisions from a model's layers, cost model, action limiting."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from search.compression.graph import analyze
from search.compression.reference import build_reference
from spaces.base import Continuous
from spaces.compression import CompressionSpace, CompressionSpaceOptions, LayerTable


@pytest.fixture(scope="module")
def table() -> LayerTable:
    return analyze(build_reference("resnet_small", width=0.5), (1, 8, 8)).table


def test_groups_follow_residual_coupling(table: LayerTable) -> None:
    leaders = [g.leader for g in table.groups]
    # Three residual streams (one per stage) plus the inner channels of six blocks.
    assert len(leaders) == 9
    assert "stem.0" in leaders and "fc" not in leaders
    stream = next(g.index for g in table.groups if g.leader == "stem.0")
    coupled = {o.name for o in table.ops if o.out_group == stream}
    assert {"stem.0", "layers.0.conv2", "layers.1.conv2"} <= coupled


def test_decisions_steps_and_round_trip(table: LayerTable) -> None:
    space = CompressionSpace(table, controls=["prune", "bits"])
    assert len([d for d in space.decisions if isinstance(d, Continuous)]) == 9
    assert all("bits" in s.decisions for s in space.steps)
    assert all(len(s.features) == 7 for s in space.steps)
    arch = space.sample(np.random.default_rng(0))
    assert space.from_json(space.to_json(arch)) == arch
    assert LayerTable.from_dict(table.to_dict()) == table
    assert space.value_to_action("prune:stem.0", 0.0) == 0.0
    assert space.action_to_value("bits:fc", 1.0) == 1 and space.action_to_value("bits:fc", 0) == 8


def test_bad_options_name_the_field(table: LayerTable) -> None:
    with pytest.raises(ValueError, match="controls"):
        CompressionSpace(table, controls=["bits", "share"])
    with pytest.raises(ValueError, match="controls"):
        CompressionSpace(table, controls=["quantum"])
    with pytest.raises(ValueError, match="target.ratio"):
        CompressionSpace(table, target={"metric": "flops", "ratio": 0.001})
    with pytest.raises(ValidationError, match="exactly one"):
        CompressionSpaceOptions(model={"reference": "resnet_small", "artifact": "x.pt"})
    with pytest.raises(ValidationError, match="model"):
        CompressionSpaceOptions()


@pytest.mark.parametrize("metric,ratio,controls", [
    ("flops", 0.1, ["prune"]),
    ("flops", 0.3, ["prune", "bits"]),
    ("params", 0.2, ["prune", "sparsity"]),
    ("size", 0.05, ["prune", "bits"]),
    ("size", 0.2, ["sparsity", "share"]),
])
def test_constrained_walk_never_exceeds_the_target(table, metric, ratio, controls) -> None:
    """Whatever the actions, limiting each one as it is taken meets the target."""
    space = CompressionSpace(table, controls=controls, target={"metric": metric, "ratio": ratio})
    rng = np.random.default_rng(0)
    costs = []
    for episode in range(60):
        partial: dict = {}
        for step in space.steps:
            for name in step.decisions.values():
                a = rng.uniform() if episode % 3 else 0.0  # some episodes ask for no compression
                partial[name] = space.constrain(partial, name, space.action_to_value(name, a))
        arch = space.validate(partial)
        cost = space.cost(arch, metric)
        assert cost <= space.budget * (1 + 1e-9)
        costs.append(cost / space.budget)
    # and the limit is tight: episodes that ask for no compression land right at the target
    assert max(costs) > 0.9


def test_progress_features(table: LayerTable) -> None:
    space = CompressionSpace(table, target={"metric": "flops", "ratio": 0.5})
    reduced, rest = space.progress({}, 0)
    assert reduced == 0.0 and 0 < rest < 1
    arch = {n: 0.5 for n in space.identity()}
    reduced, rest_last = space.progress(arch, len(space.steps) - 1)
    assert 0.4 < reduced < 1 and rest_last == 0.0


def test_min_keep_bounds_a_group_by_channels_and_survives_bounded(table: LayerTable) -> None:
    """``min_keep`` (least channels per group, e.g. a bound counted on a model this one was
    pruned from) lowers that group's prune bound only; ``bounded`` keeps it, and the
    uniform rule and the most compressed policy respect it."""
    from agents.compression_baselines import uniform_policy

    stem = next(g for g in table.groups if g.leader == "stem.0")
    space = CompressionSpace(table, controls=["prune"], min_keep={"stem.0": stem.channels - 1},
                             target={"metric": "flops", "ratio": 0.5})
    assert space.prune_high("prune:stem.0") == pytest.approx(1 / stem.channels)
    assert space.prune_high("prune:layers.0.conv1") == space.max_prune
    most = space.most_compressed()
    assert space.keep(stem.index, most["prune:stem.0"]) == stem.channels - 1
    tighter = space.bounded(0.5)
    assert tighter.prune_high("prune:stem.0") == pytest.approx(1 / stem.channels)
    assert tighter.prune_high("prune:layers.0.conv1") == 0.5
    arch = uniform_policy(space)
    assert space.fits(arch) and space.keep(stem.index, arch["prune:stem.0"]) >= stem.channels - 1
    with pytest.raises(ValueError, match="leads no channel group"):
        CompressionSpace(table, controls=["prune"], min_keep={"fc": 1})
    with pytest.raises(ValueError, match=r"must be in \[1, "):
        CompressionSpace(table, controls=["prune"], min_keep={"stem.0": stem.channels + 1})
