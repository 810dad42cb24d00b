"""The MnasNet space: sampled architectures build valid networks at several input sizes;
invalid combinations fail before training with the decision at fault."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from spaces.base import InvalidArchitecture
from spaces.mnasnet import OP_TABLE, MnasNetSpace, build_model
from spaces.registry import SPACES
from tests.conftest import REPO


def _forward_backward(model, shape, classes):
    x = torch.randn(2, *shape)
    y = model(x)
    assert y.shape == (2, classes)
    y.logsumexp(1).mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("shape", [(1, 8, 8), (3, 16, 16), (1, 11, 13)])
def test_sampled_architectures_build_and_train_step(tiny_space, shape):
    rng = np.random.default_rng(0)
    for _ in range(12):
        arch = tiny_space.sample(rng)
        model = tiny_space.build_model(arch, shape, 7)
        _forward_backward(model, shape, 7)


def test_default_space_builds_at_mnist_and_imagenet_like_sizes():
    space = MnasNetSpace()
    rng = np.random.default_rng(1)
    for shape in [(1, 28, 28), (3, 64, 64)]:
        arch = space.sample(rng)
        _forward_backward(space.build_model(arch, shape, 10), shape, 10)
    plan = space.layer_plan(arch, (3, 64, 64))
    assert plan[0].stride == 2  # the stem downsamples inputs of 64 pixels and more
    assert space.layer_plan(arch, (1, 28, 28))[0].stride == 1


@pytest.mark.parametrize("op", sorted(OP_TABLE))
def test_every_op_builds_with_every_kernel_se_and_skip(op):
    space = MnasNetSpace(blocks=[(8, 1, 1), (16, 2, 2)], ops=[op], stem=8, head=16)
    for kernel in (3, 5):
        for se in (0.0, 0.25):
            for skip in ("none", "identity"):
                arch = {**space.sample(np.random.default_rng(0)),
                        **{f"b{i}_{k}": v for i in range(2) for k, v in
                           (("kernel", kernel), ("se", se), ("skip", skip))}}
                model = space.build_model(arch, (1, 8, 8), 3)
                assert model(torch.randn(2, 1, 8, 8)).shape == (2, 3)


def test_layer_plan_matches_the_choices(tiny_space):
    arch = {"b0_op": "mbconv6", "b0_kernel": 5, "b0_se": 0.25, "b0_skip": "identity",
            "b0_layers": 1, "b0_width": 1.0,
            "b1_op": "shuffle", "b1_kernel": 3, "b1_se": 0.0, "b1_skip": "none",
            "b1_layers": 0, "b1_width": 1.25}
    plan = tiny_space.layer_plan(arch, (1, 8, 8))
    ops = [(s.op, s.cin, s.cout, s.stride, s.kernel, s.residual, s.height) for s in plan]
    assert ops == [
        ("stem", 1, 8, 1, 3, False, 8),
        ("mbconv6", 8, 8, 1, 5, True, 8),  # 2 layers (base 1 + 1), identity skip
        ("mbconv6", 8, 8, 1, 5, True, 8),
        ("shuffle", 8, 24, 2, 3, False, 8),  # width 1.25 x 16 = 20 -> 24 (divisible by 8)
        ("head", 24, 32, 1, 1, False, 4),
    ]
    model = tiny_space.build_model(arch, (1, 8, 8), 10)
    assert len(model[0]) == len(plan) - 1
    assert model[0][1].use_residual and not model[0][3].use_residual


def test_strides_stop_at_small_feature_maps():
    space = MnasNetSpace(blocks=[(8, 1, 2), (8, 1, 2), (8, 1, 2)], stem=8, head=8)
    arch = space.sample(np.random.default_rng(0))
    heights = [s.height for s in space.layer_plan(arch, (1, 8, 8))]
    assert min(heights) >= 2
    assert space.build_model(arch, (1, 8, 8), 2)(torch.randn(1, 1, 8, 8)).shape == (1, 2)


def test_zero_layers_is_invalid_and_named(tiny_space):
    arch = tiny_space.sample(np.random.default_rng(0))
    arch["b0_layers"] = -1  # base 1 - 1 = 0 layers
    with pytest.raises(InvalidArchitecture, match="b0_layers = -1 leaves block 0 with 0") as e:
        tiny_space.validate(arch)
    assert e.value.decision == "b0_layers"
    with pytest.raises(InvalidArchitecture):
        tiny_space.build_model(arch, (1, 8, 8), 10)


def test_shuffle_groups_that_do_not_divide_channels_are_invalid():
    space = MnasNetSpace(blocks=[(8, 1, 1), (16, 1, 2)], stem=8, head=16, shuffle_groups=3)
    arch = space.sample(np.random.default_rng(0))
    arch.update({"b1_op": "shuffle", "b1_layers": 0})
    with pytest.raises(InvalidArchitecture, match="shuffle_groups=3") as e:
        space.validate(arch)
    assert e.value.decision == "b1_op"


def test_sampling_only_yields_valid_architectures(tiny_space):
    rng = np.random.default_rng(3)
    archs = [tiny_space.sample(rng) for _ in range(50)]
    for arch in archs:
        assert all(tiny_space.block_layers(arch, i) >= 1 for i in range(2))
        assert tiny_space.decode(tiny_space.encode(arch)) == arch
    assert len({tiny_space.key(a) for a in archs}) > 40


def test_unknown_values_name_the_decision(tiny_space):
    arch = tiny_space.sample(np.random.default_rng(0))
    with pytest.raises(InvalidArchitecture, match="'b1_kernel' = 7 is not a valid choice"):
        tiny_space.validate({**arch, "b1_kernel": 7})


def test_bad_options_raise_clear_errors():
    with pytest.raises(ValueError, match="ops: unknown op"):
        MnasNetSpace(ops=["conv", "transformer"])
    with pytest.raises(ValueError, match=r"blocks\[1\]: stride must be 1 or 2"):
        MnasNetSpace(blocks=[(8, 1, 1), (8, 1, 3)])
    with pytest.raises(ValueError, match="num_classes"):
        MnasNetSpace().build_model(MnasNetSpace().sample(np.random.default_rng(0)),
                                   (1, 8, 8), 1)


def test_registry_round_trip_and_decision_count():
    space = SPACES.create("mnasnet", options={"blocks": [{"filters": 8, "layers": 1}],
                                              "ops": ["sep", "mbconv6"]})
    assert [d.name for d in space.decisions] == [
        "b0_op", "b0_kernel", "b0_se", "b0_skip", "b0_layers", "b0_width"]
    again = SPACES.create("mnasnet", options=space.to_config())
    assert again.to_config() == space.to_config()
    assert SPACES.create("mnasnet").size() == (7 * 2 * 2 * 2 * 3 * 3) ** 5


def test_module_level_build_model_uses_the_default_space():
    arch = MnasNetSpace().sample(np.random.default_rng(0))
    assert build_model(arch, (1, 8, 8), 4)(torch.randn(1, 1, 8, 8)).shape == (1, 4)


def test_space_and_options_are_torch_free():
    code = ("import sys, numpy as np; from spaces.registry import SPACES; "
            "s = SPACES.create('mnasnet'); a = s.sample(np.random.default_rng(0)); "
            "s.layer_plan(a, (1, 28, 28)); import search.registry, search.model_options; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True, timeout=60)
