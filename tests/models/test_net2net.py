"""Net2Net: every transformation preserves the function on every block it claims."""

from __future__ import annotations

import pytest
import torch

from spaces.mnasnet import MnasNetSpace
from spaces.net2net import (
    DEEPEN_PLAIN_OPS,
    WIDEN_OPS,
    ChannelMap,
    Net2NetError,
    distance,
    nearest_parent,
    reachable,
    transfer,
)

ALL_OPS = ("conv", "sep", "mbconv1", "mbconv3", "mbconv6", "fire", "shuffle", "resnet",
           "bottleneck", "dense")
SPACE = MnasNetSpace(blocks=[(16, 1, 2), (24, 2, 1)], ops=ALL_OPS, head=32)
SHAPE = (1, 12, 12)


def _arch(op: str, skip: str = "identity", se: float = 0.25, layers: int = 0,
          width: float = 1.0, kernel: int = 3) -> dict:
    arch = {}
    for i in range(2):
        arch |= {f"b{i}_op": op, f"b{i}_kernel": kernel, f"b{i}_se": se, f"b{i}_skip": skip,
                 f"b{i}_layers": 0, f"b{i}_width": 1.0}
    arch |= {"b1_layers": layers, "b1_width": width, "b0_width": width}
    return arch


def _trained_like(model: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Random weights and batch-norm statistics far from their defaults, so that an
    identity that only holds at initialisation would not pass."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.copy_(0.5 + torch.rand(m.weight.shape, generator=gen))
                m.bias.copy_(0.3 * torch.randn(m.bias.shape, generator=gen))
                m.running_mean.copy_(0.2 * torch.randn(m.running_mean.shape, generator=gen))
                m.running_var.copy_(0.5 + torch.rand(m.running_var.shape, generator=gen))
    return model.eval()


def _pair(parent: dict, child: dict, seed: int = 0, noise: float = 0.05):
    torch.manual_seed(seed)
    p_model = _trained_like(SPACE.build_model(parent, SHAPE, 10), seed)
    x = torch.randn(16, *SHAPE, generator=torch.Generator().manual_seed(seed + 1))
    c_model = transfer(SPACE, parent, p_model, child, SHAPE, 10, seed=seed, noise=noise,
                       sample=x).eval()
    return p_model, c_model, x


@pytest.mark.parametrize("op", sorted(WIDEN_OPS))
@pytest.mark.parametrize("skip", ["identity", "none"])
def test_wider_network_computes_the_same_function(op, skip):
    parent, child = _arch(op, skip), _arch(op, skip, width=1.25)
    assert reachable(SPACE, parent, child, SHAPE)
    p_model, c_model, x = _pair(parent, child)
    assert sum(p.numel() for p in c_model.parameters()) > sum(
        p.numel() for p in p_model.parameters())
    with torch.no_grad():
        torch.testing.assert_close(c_model(x), p_model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", ALL_OPS)
def test_deeper_network_with_shortcut_computes_the_same_function(op):
    parent, child = _arch(op, "identity", layers=0), _arch(op, "identity", layers=1)
    assert reachable(SPACE, parent, child, SHAPE)
    p_model, c_model, x = _pair(parent, child)
    assert len(c_model[0]) == len(p_model[0]) + 1
    with torch.no_grad():
        torch.testing.assert_close(c_model(x), p_model(x), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("op", sorted(DEEPEN_PLAIN_OPS))
@pytest.mark.parametrize("se", [0.0, 0.25])
def test_deeper_network_without_shortcut_is_the_identity_in_eval_and_train_mode(op, se):
    parent, child = _arch(op, "none", se=se), _arch(op, "none", se=se, layers=1)
    p_model, c_model, x = _pair(parent, child)
    with torch.no_grad():
        torch.testing.assert_close(c_model(x), p_model(x), rtol=1e-4, atol=1e-4)
        # In train mode on the sample it was matched to, the new layer is the identity too:
        # compare the block's output before and after it.
        new_layer = c_model[0][-1]
        trunk = torch.nn.Sequential(*list(c_model[0])[:-1]).eval()
        h = trunk(x)
        new_layer.train()
        torch.testing.assert_close(new_layer(h), h, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("op", ["fire", "shuffle", "dense"])
def test_concatenating_and_grouped_blocks_do_not_claim_widening(op):
    assert not reachable(SPACE, _arch(op), _arch(op, width=1.25), SHAPE)


@pytest.mark.parametrize("op", ["mbconv6", "bottleneck", "fire", "shuffle", "dense"])
def test_layers_with_no_identity_form_do_not_claim_deepening_without_shortcut(op):
    assert not reachable(SPACE, _arch(op, "none"), _arch(op, "none", layers=1), SHAPE)


def test_wider_and_deeper_at_once():
    parent = _arch("mbconv3", "identity")
    child = _arch("mbconv3", "identity", layers=1, width=1.25)
    p_model, c_model, x = _pair(parent, child)
    with torch.no_grad():
        torch.testing.assert_close(c_model(x), p_model(x), rtol=1e-4, atol=1e-4)


def test_other_choices_are_not_reachable():
    base = _arch("conv")
    assert not reachable(SPACE, base, _arch("sep"), SHAPE)
    assert not reachable(SPACE, base, _arch("conv", kernel=5), SHAPE)
    assert not reachable(SPACE, _arch("conv", width=1.25), base, SHAPE)  # narrower
    assert not reachable(SPACE, _arch("conv", layers=1), base, SHAPE)  # shallower


def test_a_shortcut_that_appears_when_widening_blocks_it():
    # Block 0 at 16 channels and block 1 at 24: widening block 0 to 24 channels would make
    # block 1's first layer 24 -> 24 and switch its identity shortcut on.
    space = MnasNetSpace(blocks=[(16, 1, 2), (24, 1, 1)], ops=("conv",), widths=(1.0, 1.5),
                         head=32)
    parent = {"b0_op": "conv", "b0_kernel": 3, "b0_se": 0.0, "b0_skip": "identity",
              "b0_layers": 0, "b0_width": 1.0, "b1_op": "conv", "b1_kernel": 3, "b1_se": 0.0,
              "b1_skip": "identity", "b1_layers": 0, "b1_width": 1.0}
    child = parent | {"b0_width": 1.5}
    assert space.block_channels(child, 0) == space.block_channels(child, 1) == 24
    assert not reachable(space, parent, child, SHAPE)


def test_weight_split_sums_to_one_over_copies_and_breaks_symmetry():
    gen = torch.Generator().manual_seed(0)
    cmap = ChannelMap.make(4, 9, gen)
    factors = cmap.split(5, 0.1, gen)
    sums = torch.zeros(5, 4).index_add_(1, cmap.index, factors)
    torch.testing.assert_close(sums, torch.ones(5, 4))
    copies = [j for j in range(9) if cmap.counts[cmap.index[j]] > 1]
    assert len({round(float(factors[0, j]), 6) for j in copies}) == len(copies)


def test_nearest_parent_prefers_the_smallest_step():
    child = _arch("conv", layers=1, width=1.25)
    far, near = _arch("conv", layers=0, width=1.0), _arch("conv", layers=1, width=1.0)
    other = _arch("sep", layers=0, width=1.0)
    assert distance(SPACE, near, child) < distance(SPACE, far, child)
    assert nearest_parent(SPACE, child, [other, far, near], SHAPE) == near
    assert nearest_parent(SPACE, child, [other], SHAPE) is None
    assert nearest_parent(SPACE, child, [child], SHAPE) is None


def test_transfer_refuses_an_unreachable_child():
    p_model = SPACE.build_model(_arch("conv"), SHAPE, 10)
    with pytest.raises(Net2NetError):
        transfer(SPACE, _arch("conv"), p_model, _arch("sep"), SHAPE, 10)


# ---- warm starts in train jobs ----------------------------------------------------------------
SMALL = MnasNetSpace(blocks=[(16, 1, 2), (24, 1, 1)], ops=("conv", "sep"), head=32)


def _small(width: float = 1.0, layers: int = 0) -> dict:
    return {"b0_op": "sep", "b0_kernel": 3, "b0_se": 0.0, "b0_skip": "identity",
            "b0_layers": 0, "b0_width": width, "b1_op": "sep", "b1_kernel": 3, "b1_se": 0.0,
            "b1_skip": "identity", "b1_layers": layers, "b1_width": width}


def test_a_warm_started_candidate_starts_with_a_lower_loss_and_records_its_parent():
    from search.evaluators.train import TrainingEvaluator

    options = {"dataset": {"source": "digits", "seed": 0}, "epochs": 1, "lr": 0.05}
    warm = TrainingEvaluator(**options, warm_start="net2net")
    cold = TrainingEvaluator(**options)
    try:
        parent, child = _small(), _small(width=1.25, layers=1)
        first = warm.evaluate(parent, SMALL, seed=3)
        assert first.recorded["net2net_parent"] is None  # nothing trained yet
        inherited = warm.evaluate(child, SMALL, seed=3)
        scratch = cold.evaluate(child, SMALL, seed=3)
        assert inherited.recorded["net2net_parent"] == SMALL.key(parent)
        assert "net2net_parent" not in scratch.recorded
        # One epoch from the parent's function against one epoch from random weights.
        assert inherited.recorded["train_loss"] < scratch.recorded["train_loss"]
        unrelated = {**_small(), "b0_op": "conv", "b1_op": "conv"}
        assert warm.evaluate(unrelated, SMALL, seed=3).recorded["net2net_parent"] is None
    finally:
        warm.close()
        cold.close()
