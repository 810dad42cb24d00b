"""Weight formats as parametrizations: b-bit integers, binarization, k-means weight sharing.

Each parametrization computes the weight the layer uses from a float "shadow" weight, with a
straight-through estimator so fine-tuning trains through it (quantization-aware training);
the exporter reads the integer codes back from the same object, so what is exported is
exactly what was evaluated.

- ``Quantize(b)``: symmetric, one scale per output channel, integers in
  ``[-(2**(b-1) - 1), 2**(b-1) - 1]`` (2 bits: ternary -1/0/+1).
- ``Binarize``: XNOR-Net weights ``alpha * sign(w)`` with ``alpha`` the channel's mean
  magnitude (Rastegari et al. 2016); zeros from a sparsity mask stay zero.
- ``Share(b)``: Deep Compression's weight sharing: the layer's non-zero weights are clustered
  into ``2**b`` centroids (k-means, linear initialisation); the codebook is trainable and the
  weight is ``codebook[index]``, so fine-tuning updates the shared values.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize


def _per_channel(w: torch.Tensor) -> torch.Tensor:
    return w.reshape(w.shape[0], -1)


class Quantize(nn.Module):
    def __init__(self, bits: int) -> None:
        super().__init__()
        if not 2 <= bits <= 16:
            raise ValueError(f"bits must be in 2..16 (1 is Binarize), got {bits}")
        self.bits = int(bits)
        self.qmax = 2 ** (self.bits - 1) - 1

    def scale(self, w: torch.Tensor) -> torch.Tensor:
        return (_per_channel(w).abs().amax(1) / self.qmax).clamp_min(1e-12)

    def codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Integer codes (same shape as ``w``) and per-channel float scales."""
        s = self.scale(w.detach())
        q = torch.clamp(torch.round(_per_channel(w.detach()) / s[:, None]), -self.qmax, self.qmax)
        return q.reshape(w.shape).to(torch.int32), s

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        q, s = self.codes(w)
        wq = (_per_channel(q.to(w.dtype)) * s[:, None]).reshape(w.shape)
        return w + (wq - w).detach()


class Binarize(nn.Module):
    bits = 1

    def codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Signs in {-1, 0, +1} (0 only where a mask zeroed the weight) and channel scales."""
        flat = _per_channel(w.detach())
        nonzero = (flat != 0).sum(1).clamp_min(1)
        alpha = flat.abs().sum(1) / nonzero
        return torch.sign(w.detach()).to(torch.int32), alpha

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        signs, alpha = self.codes(w)
        wb = (_per_channel(signs.to(w.dtype)) * alpha[:, None]).reshape(w.shape)
        return w + (wb - w).detach()


def kmeans_1d(values: torch.Tensor, k: int, iters: int = 30) -> tuple[torch.Tensor, torch.Tensor]:
    """Lloyd's algorithm in one dimension with linear initialisation (Han et al. 2016)."""
    v = values.detach().flatten()
    if v.numel() == 0:
        return torch.zeros(k), torch.zeros(0, dtype=torch.int64)
    k = max(1, min(k, v.numel()))
    centroids = torch.linspace(float(v.min()), float(v.max()), k)
    idx = torch.zeros(v.numel(), dtype=torch.int64)
    for _ in range(iters):
        idx = (v[:, None] - centroids[None, :]).abs().argmin(1)
        sums = torch.zeros(k).index_add_(0, idx, v)
        counts = torch.zeros(k).index_add_(0, idx, torch.ones_like(v))
        new = torch.where(counts > 0, sums / counts.clamp_min(1), centroids)
        if torch.allclose(new, centroids):
            break
        centroids = new
    idx = (v[:, None] - centroids[None, :]).abs().argmin(1)
    return centroids, idx


class Share(nn.Module):
    def __init__(self, weight: torch.Tensor, bits: int) -> None:
        super().__init__()
        if not 1 <= bits <= 8:
            raise ValueError(f"share bits must be in 1..8, got {bits}")
        self.bits = int(bits)
        w = weight.detach()
        nonzero = w != 0
        centroids, idx = kmeans_1d(w[nonzero], 2 ** self.bits)
        self.codebook = nn.Parameter(torch.zeros(2 ** self.bits))
        self.codebook.data[: centroids.numel()] = centroids
        self.register_buffer("nonzero", nonzero)
        self.register_buffer("index", idx)

    def codes(self, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.index, self.codebook.detach()

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        out = torch.zeros_like(w)
        out = out.masked_scatter(self.nonzero, self.codebook[self.index])
        return out


def weight_format(module: nn.Module) -> nn.Module | None:
    """The quantizer attached to ``module.weight`` (the last parametrization), if any."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    last = module.parametrizations.weight[-1]
    return last if isinstance(last, Quantize | Binarize | Share) else None


def apply_format(module: nn.Module, bits: int | None = None, share: int | None = None) -> None:
    """Attach a weight format after any mask (so masked weights stay zero)."""
    if share is not None:
        parametrize.register_parametrization(module, "weight", Share(module.weight, share),
                                             unsafe=True)
    elif bits is not None and bits < 32:
        p = Binarize() if bits == 1 else Quantize(bits)
        parametrize.register_parametrization(module, "weight", p)
