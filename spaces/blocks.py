"""The efficient building blocks of the field, each a small PyTorch module.

Every block maps ``(N, in_channels, H, W)`` to ``(N, out_channels, ceil(H/stride),
ceil(W/stride))`` and exposes ``in_channels``/``out_channels``, so a search space can chain
them freely. ``residual`` everywhere means "add an identity shortcut where input and output
shapes match"; shape-changing shortcuts that define a block (ResNet projections, ShuffleNet's
pooled concatenation) are part of the block itself.

References: ResNet (He et al. 2016), DenseNet (Huang et al. 2017), SqueezeNet (Iandola et al.
2016), MobileNet (Howard et al. 2017), MobileNetV2 (Sandler et al. 2018), ShuffleNet (Zhang et
al. 2018), squeeze-and-excitation (Hu et al. 2018).
"""

from __future__ import annotations

import torch
from torch import nn


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (MobileNetV2)."""
    min_value = divisor if min_value is None else min_value
    out = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if out < 0.9 * value:
        out += divisor
    return out


def _check_positive(**values: int) -> None:
    for name, v in values.items():
        if int(v) != v or v < 1:
            raise ValueError(f"{name} must be a positive integer, got {v!r}")


def _check_stride(stride: int) -> None:
    if stride not in (1, 2):
        raise ValueError(f"stride must be 1 or 2, got {stride!r}")


def _check_kernel(kernel: int) -> None:
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be an odd positive integer, got {kernel!r}")


def _check_ratio(se_ratio: float) -> None:
    if not 0.0 <= se_ratio <= 1.0:
        raise ValueError(f"se_ratio must be in [0, 1], got {se_ratio!r}")


class ConvBNAct(nn.Sequential):
    """Convolution (no bias), batch norm, optional activation: the unit every block uses."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 groups: int = 1, act: type[nn.Module] | None = nn.ReLU) -> None:
        _check_positive(in_channels=in_channels, out_channels=out_channels, groups=groups)
        _check_kernel(kernel)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"groups={groups} must divide in_channels={in_channels} and "
                             f"out_channels={out_channels}")
        layers: list[nn.Module] = [
            nn.Conv2d(in_channels, out_channels, kernel, stride, kernel // 2, groups=groups,
                      bias=False),
            nn.BatchNorm2d(out_channels),
        ]
        if act is not None:
            layers.append(act())
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels


class SqueezeExcite(nn.Module):
    """Squeeze-and-excitation: per-channel gates from globally pooled features."""

    def __init__(self, channels: int, ratio: float = 0.25) -> None:
        super().__init__()
        _check_positive(channels=channels)
        if not 0.0 < ratio <= 1.0:
            raise ValueError(f"squeeze-and-excitation ratio must be in (0, 1], got {ratio!r}")
        hidden = max(1, round(channels * ratio))
        self.reduce = nn.Conv2d(channels, hidden, 1)
        self.expand = nn.Conv2d(hidden, channels, 1)
        self.in_channels = self.out_channels = channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean((2, 3), keepdim=True)
        s = self.expand(torch.relu(self.reduce(s)))
        return x * torch.sigmoid(s)


def _se(channels: int, se_ratio: float) -> nn.Module:
    _check_ratio(se_ratio)
    return SqueezeExcite(channels, se_ratio) if se_ratio > 0 else nn.Identity()


class _Block(nn.Module):
    """Common bookkeeping: channel counts, stride and whether the identity shortcut applies."""

    def _setup(self, in_channels: int, out_channels: int, stride: int, residual: bool) -> None:
        _check_positive(in_channels=in_channels, out_channels=out_channels)
        _check_stride(stride)
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.use_residual = bool(residual) and stride == 1 and in_channels == out_channels


class PlainConv(_Block):
    """A regular convolution (conv-BN-ReLU), optionally with SE and an identity shortcut."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = False) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        self.conv = ConvBNAct(in_channels, out_channels, kernel, stride)
        self.se = _se(out_channels, se_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.conv(x))
        return x + y if self.use_residual else y


class BasicResidual(_Block):
    """ResNet's basic block: two kxk convolutions and a (projection) shortcut, then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = True) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        self.conv1 = ConvBNAct(in_channels, out_channels, kernel, stride)
        self.conv2 = ConvBNAct(out_channels, out_channels, kernel, 1, act=None)
        self.se = _se(out_channels, se_ratio)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.conv2(self.conv1(x)))
        if self.use_residual:
            y = y + x
        elif self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)


class Bottleneck(_Block):
    """ResNet's bottleneck: 1x1 reduce, kxk, 1x1 expand (``out = mid * expansion``)."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = True, expansion: int = 4) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        _check_positive(expansion=expansion)
        mid = max(1, out_channels // expansion)
        self.reduce = ConvBNAct(in_channels, mid, 1)
        self.conv = ConvBNAct(mid, mid, kernel, stride)
        self.expand = ConvBNAct(mid, out_channels, 1, act=None)
        self.se = _se(out_channels, se_ratio)
        self.shortcut = _projection(in_channels, out_channels, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.expand(self.conv(self.reduce(x))))
        if self.use_residual:
            y = y + x
        elif self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)


def _projection(in_channels: int, out_channels: int, stride: int) -> nn.Module | None:
    """ResNet's option-B shortcut for shape-changing blocks (None when shapes match)."""
    if stride == 1 and in_channels == out_channels:
        return None
    return ConvBNAct(in_channels, out_channels, 1, stride, act=None)


class DenseLayer(nn.Module):
    """DenseNet-BC layer: BN-ReLU-conv1x1 (4 x growth), BN-ReLU-conv kxk (growth), concat."""

    def __init__(self, in_channels: int, growth: int, kernel: int = 3) -> None:
        super().__init__()
        _check_positive(in_channels=in_channels, growth=growth)
        _check_kernel(kernel)
        self.body = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.ReLU(),
            nn.Conv2d(in_channels, 4 * growth, 1, bias=False),
            nn.BatchNorm2d(4 * growth), nn.ReLU(),
            nn.Conv2d(4 * growth, growth, kernel, 1, kernel // 2, bias=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x, self.body(x)], 1)


class DenseBlock(nn.Module):
    """``num_layers`` densely connected layers: ``out = in + num_layers * growth`` channels."""

    def __init__(self, in_channels: int, growth: int, num_layers: int, kernel: int = 3) -> None:
        super().__init__()
        _check_positive(num_layers=num_layers)
        self.layers = nn.Sequential(*(
            DenseLayer(in_channels + i * growth, growth, kernel) for i in range(num_layers)))
        self.in_channels = in_channels
        self.out_channels = in_channels + num_layers * growth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


class Transition(nn.Sequential):
    """DenseNet transition: BN-ReLU-conv1x1 to ``out_channels``, 2x2 average pool if stride 2."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 2) -> None:
        _check_positive(in_channels=in_channels, out_channels=out_channels)
        _check_stride(stride)
        layers: list[nn.Module] = [nn.BatchNorm2d(in_channels), nn.ReLU(),
                                   nn.Conv2d(in_channels, out_channels, 1, bias=False)]
        if stride == 2:
            layers.append(nn.AvgPool2d(2, ceil_mode=True))
        super().__init__(*layers)
        self.in_channels, self.out_channels = in_channels, out_channels


class DenseUnit(_Block):
    """A dense block of two layers and a transition: DenseNet as a chainable unit."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = False, num_layers: int = 2) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        growth = max(4, out_channels // 4)
        self.dense = DenseBlock(in_channels, growth, num_layers, kernel)
        self.transition = Transition(self.dense.out_channels, out_channels, stride)
        self.se = _se(out_channels, se_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.se(self.transition(self.dense(x)))
        return x + y if self.use_residual else y


class Fire(_Block):
    """SqueezeNet's fire module: 1x1 squeeze, then 1x1 and kxk expands concatenated.

    ``squeeze`` defaults to ``out/8`` (SqueezeNet's squeeze ratio 0.125 of the expand width).
    Batch norm follows each convolution (SqueezeNet has none; it trains far better in a few
    epochs with it). Stride 2 is a 3x3 max pool first, as SqueezeNet downsamples.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = False, squeeze: int | None = None
                 ) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        if out_channels < 2:
            raise ValueError(f"a fire module needs out_channels >= 2, got {out_channels}")
        squeeze = squeeze or max(4, out_channels // 8)
        e1 = out_channels // 2
        self.pool = nn.MaxPool2d(3, 2, 1) if stride == 2 else nn.Identity()
        self.squeeze = ConvBNAct(in_channels, squeeze, 1)
        self.expand1 = ConvBNAct(squeeze, e1, 1)
        self.expand_k = ConvBNAct(squeeze, out_channels - e1, kernel)
        self.se = _se(out_channels, se_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.squeeze(self.pool(x))
        y = self.se(torch.cat([self.expand1(s), self.expand_k(s)], 1))
        return x + y if self.use_residual else y


class DepthwiseSeparable(_Block):
    """MobileNet's depthwise-separable convolution: kxk depthwise, (SE), 1x1 pointwise."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = False) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        self.depthwise = ConvBNAct(in_channels, in_channels, kernel, stride, groups=in_channels)
        self.se = _se(in_channels, se_ratio)
        self.pointwise = ConvBNAct(in_channels, out_channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.pointwise(self.se(self.depthwise(x)))
        return x + y if self.use_residual else y


class InvertedResidual(_Block):
    """MobileNetV2's MBConv: 1x1 expand (ReLU6), kxk depthwise (ReLU6), (SE), linear 1x1.

    The last projection has no activation (the linear bottleneck); the identity shortcut joins
    the narrow ends when shapes match.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = True, expand_ratio: float = 6) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        if expand_ratio < 1:
            raise ValueError(f"expand_ratio must be >= 1, got {expand_ratio!r}")
        hidden = round(in_channels * expand_ratio)
        self.expand = (ConvBNAct(in_channels, hidden, 1, act=nn.ReLU6)
                       if hidden != in_channels else nn.Identity())
        self.depthwise = ConvBNAct(hidden, hidden, kernel, stride, groups=hidden, act=nn.ReLU6)
        self.se = _se(hidden, se_ratio)
        self.project = ConvBNAct(hidden, out_channels, 1, act=None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.use_residual else y


def channel_shuffle(x: torch.Tensor, groups: int) -> torch.Tensor:
    """Interleave channels across groups so the next group convolution mixes them."""
    n, c, h, w = x.shape
    return x.view(n, groups, c // groups, h, w).transpose(1, 2).reshape(n, c, h, w)


class ChannelShuffle(nn.Module):
    def __init__(self, groups: int) -> None:
        super().__init__()
        self.groups = groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_shuffle(x, self.groups)


class ShuffleUnit(_Block):
    """ShuffleNet (v1) unit: 1x1 group conv, channel shuffle, kxk depthwise, 1x1 group conv.

    Stride 2 with more output than input channels concatenates a 3x3 average-pooled input
    (ShuffleNet's downsampling unit); other shape changes add a 1x1 projection shortcut.
    ``groups`` must divide the input and output channels.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel: int = 3, stride: int = 1,
                 se_ratio: float = 0.0, residual: bool = True, groups: int = 2) -> None:
        super().__init__()
        self._setup(in_channels, out_channels, stride, residual)
        _check_positive(groups=groups)
        if in_channels % groups or out_channels % groups:
            raise ValueError(f"shuffle groups={groups} must divide in_channels={in_channels} "
                             f"and out_channels={out_channels}")
        self.concat = stride == 2 and out_channels - in_channels >= groups
        branch_out = out_channels - in_channels if self.concat else out_channels
        mid = make_divisible(max(out_channels // 4, groups), groups, groups)
        self.groups = groups
        self.reduce = ConvBNAct(in_channels, mid, 1, groups=groups)
        self.shuffle = ChannelShuffle(groups)
        self.depthwise = ConvBNAct(mid, mid, kernel, stride, groups=mid, act=None)
        self.se = _se(mid, se_ratio)
        self.expand = ConvBNAct(mid, branch_out, 1, groups=groups, act=None)
        if self.concat:
            self.shortcut: nn.Module | None = nn.AvgPool2d(3, 2, 1)
        elif stride == 1 and in_channels == out_channels:
            self.shortcut = None
        else:
            pool = nn.AvgPool2d(3, 2, 1) if stride == 2 else nn.Identity()
            self.shortcut = nn.Sequential(pool, ConvBNAct(in_channels, out_channels, 1,
                                                          act=None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.expand(self.se(self.depthwise(self.shuffle(self.reduce(x)))))
        if self.concat:
            return torch.relu(torch.cat([self.shortcut(x), y], 1))
        if self.use_residual:
            y = y + x
        elif self.shortcut is not None:
            y = y + self.shortcut(x)
        return torch.relu(y)
