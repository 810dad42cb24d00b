"""Every block builds, runs forward and backward, keeps its shape contract, and rejects bad
arguments with a clear error."""

from __future__ import annotations

import math

import pytest
import torch

from spaces import blocks as B

BLOCKS = [B.PlainConv, B.BasicResidual, B.Bottleneck, B.DenseUnit, B.Fire,
          B.DepthwiseSeparable, B.InvertedResidual, B.ShuffleUnit]


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
@pytest.mark.parametrize("cin,cout,stride", [(8, 8, 1), (8, 16, 2), (16, 8, 1), (16, 8, 2)])
@pytest.mark.parametrize("size", [8, 9, 16])
def test_block_shapes_and_gradients(cls, cin, cout, stride, size):
    torch.manual_seed(0)
    block = cls(cin, cout, kernel=3, stride=stride, se_ratio=0.25, residual=True)
    x = torch.randn(2, cin, size, size, requires_grad=True)
    y = block(x)
    assert y.shape == (2, cout, math.ceil(size / stride), math.ceil(size / stride))
    assert block.in_channels == cin and block.out_channels == cout
    y.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name, p in block.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name


@pytest.mark.parametrize("cls", BLOCKS, ids=lambda c: c.__name__)
def test_kernel_5_and_no_se(cls):
    block = cls(16, 16, kernel=5, stride=1, se_ratio=0.0, residual=False)
    assert not any(isinstance(m, B.SqueezeExcite) for m in block.modules())
    assert block(torch.randn(1, 16, 6, 6)).shape == (1, 16, 6, 6)


def test_identity_shortcut_only_where_shapes_match():
    assert B.InvertedResidual(16, 16, stride=1, residual=True).use_residual
    assert not B.InvertedResidual(16, 16, stride=2, residual=True).use_residual
    assert not B.InvertedResidual(8, 16, stride=1, residual=True).use_residual
    assert not B.InvertedResidual(16, 16, stride=1, residual=False).use_residual


def test_inverted_residual_is_identity_when_the_projection_is_zero():
    block = B.InvertedResidual(8, 8, expand_ratio=6).eval()
    torch.nn.init.zeros_(block.project[1].weight)  # BN gamma of the linear bottleneck
    torch.nn.init.zeros_(block.project[1].bias)
    x = torch.randn(1, 8, 5, 5)
    assert torch.allclose(block(x), x)
    assert block.expand[0].out_channels == 48  # expansion 6
    assert not any(isinstance(m, torch.nn.ReLU6) for m in block.project.modules())


def test_mbconv1_has_no_expansion_layer():
    block = B.InvertedResidual(8, 8, expand_ratio=1)
    assert isinstance(block.expand, torch.nn.Identity)


def test_depthwise_separable_uses_a_depthwise_conv():
    block = B.DepthwiseSeparable(12, 24, kernel=5)
    dw = block.depthwise[0]
    assert dw.groups == 12 and dw.kernel_size == (5, 5)
    assert block.pointwise[0].kernel_size == (1, 1)


def test_channel_shuffle_interleaves_groups():
    x = torch.arange(6.0).view(1, 6, 1, 1)
    assert B.channel_shuffle(x, 2).flatten().tolist() == [0, 3, 1, 4, 2, 5]
    assert B.channel_shuffle(x, 3).flatten().tolist() == [0, 2, 4, 1, 3, 5]


def test_shuffle_unit_downsampling_concatenates_pooled_input():
    unit = B.ShuffleUnit(8, 24, stride=2, groups=2)
    assert unit.concat and unit.expand[0].out_channels == 16
    assert unit.reduce[0].groups == 2 and unit.expand[0].groups == 2
    assert unit(torch.randn(1, 8, 8, 8)).shape == (1, 24, 4, 4)


def test_fire_module_concatenates_expands():
    fire = B.Fire(16, 32, kernel=3)
    assert fire.expand1.out_channels + fire.expand_k.out_channels == 32
    assert fire.squeeze.out_channels == 4


def test_dense_block_grows_channels():
    block = B.DenseBlock(8, growth=4, num_layers=3)
    assert block.out_channels == 20
    y = block(torch.randn(1, 8, 4, 4))
    assert y.shape == (1, 20, 4, 4)


def test_dense_layer_keeps_its_input():
    layer = B.DenseLayer(6, growth=4)
    x = torch.randn(1, 6, 3, 3)
    assert torch.equal(layer(x)[:, :6], x)


def test_squeeze_excite_gates_channels_in_0_1():
    se = B.SqueezeExcite(8, 0.25)
    x = torch.rand(2, 8, 4, 4) + 0.1
    ratio = se(x) / x
    assert ((ratio > 0) & (ratio < 1)).all()
    assert se.reduce.out_channels == 2


def test_resnet_blocks_project_when_shapes_change():
    assert B.BasicResidual(8, 16, stride=2).shortcut is not None
    assert B.BasicResidual(16, 16, stride=1).shortcut is None
    assert B.Bottleneck(16, 32, stride=1).reduce[0].out_channels == 8


@pytest.mark.parametrize("make,match", [
    (lambda: B.ShuffleUnit(9, 18, groups=2), "groups=2 must divide"),
    (lambda: B.InvertedResidual(8, 8, stride=3), "stride must be 1 or 2"),
    (lambda: B.PlainConv(8, 8, kernel=4), "kernel must be an odd"),
    (lambda: B.DepthwiseSeparable(8, 8, se_ratio=1.5), "se_ratio must be in"),
    (lambda: B.InvertedResidual(8, 8, expand_ratio=0.5), "expand_ratio must be >= 1"),
    (lambda: B.Fire(0, 8), "in_channels must be a positive"),
])
def test_bad_arguments_raise_clear_errors(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_make_divisible():
    assert B.make_divisible(30) == 32
    assert B.make_divisible(12) == 16  # 8 would drop more than 10%
    assert B.make_divisible(3) == 8
    assert B.make_divisible(96 * 0.75) == 72
