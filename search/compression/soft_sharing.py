"""Soft weight sharing: retrain under a Gaussian mixture prior, then quantize to its means.

Ullrich, Meeds and Welling, "Soft Weight-Sharing for Neural Network Compression" (ICLR 2017).
The weights ``w`` of the chosen layers get the prior

    p(w) = pi_0 N(w | 0, s_0^2) + sum_j pi_j N(w | mu_j, s_j^2)

whose means, variances and mixing proportions are learned with the network; the zero
component keeps a fixed, high proportion ``pi_0`` so that most weights are drawn to zero.
Gamma hyperpriors on the precisions (the paper's values) keep the components narrow.
Training minimises ``CE + tau * (-log p(w) - log p(precisions)) / N`` (N: weights under the
prior), with Adam for the weights and the mixture. Afterwards
every weight takes the mean of its most responsible component, and weights of the zero
component are pruned: the layer becomes a codebook model, stored like the k-means control's
(``quantize.Share``: codebook indices, a float32 codebook, a mask of non-zero weights), so
its size against float32 is counted by the same rule (``spaces.compression.weight_bytes``).

``scope="layer"`` gives each layer its own mixture; ``"global"`` one mixture for all.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from search.compression.data import Split, batches
from search.compression.quantize import Share
from spaces.compression import SoftShareOptions

SCOPES = ("layer", "global")


class MixturePrior(nn.Module):
    """A 1-D Gaussian mixture with a zero-mean component of fixed proportion ``pi_zero``."""

    #: Gamma(alpha, beta) hyperpriors on the precisions 1/s^2 (the paper's values): they keep
    #: the zero component narrow, so it does not swallow weights that still carry signal.
    ZERO_PRECISION = (5000.0, 2.0)
    PRECISION = (250.0, 0.1)

    def __init__(self, components: int, weights: torch.Tensor, pi_zero: float = 0.99) -> None:
        super().__init__()
        if components < 1:
            raise ValueError(f"components must be >= 1 (besides zero), got {components}")
        if not 0 < pi_zero < 1:
            raise ValueError(f"pi_zero must be in (0, 1), got {pi_zero}")
        w = weights.detach().flatten()
        span = float(w.abs().max()) if w.numel() else 1.0
        # Means spread over the weights' range (the paper's initialisation), both signs.
        self.means = nn.Parameter(torch.linspace(-span, span, components))
        std = 0.02  # near the precision hyperpriors' modes
        self.log_var = nn.Parameter(torch.full((components + 1,), 2 * math.log(std)))
        self.logits = nn.Parameter(torch.zeros(components))
        self.pi_zero = float(pi_zero)

    def log_proportions(self) -> torch.Tensor:
        rest = torch.log_softmax(self.logits, 0) + math.log(1 - self.pi_zero)
        return torch.cat([rest.new_tensor([math.log(self.pi_zero)]), rest])

    def all_means(self) -> torch.Tensor:
        return torch.cat([self.means.new_zeros(1), self.means])

    def component_log_prob(self, w: torch.Tensor) -> torch.Tensor:
        """``(N, components + 1)``: log pi_j + log N(w | mu_j, s_j^2), zero component first."""
        var = self.log_var.exp()
        diff = w.reshape(-1, 1) - self.all_means()[None, :]
        log_normal = -0.5 * (diff ** 2 / var + self.log_var + math.log(2 * math.pi))
        return log_normal + self.log_proportions()[None, :]

    def neg_log_prob(self, w: torch.Tensor) -> torch.Tensor:
        """``-sum log p(w)`` over the weights."""
        return -torch.logsumexp(self.component_log_prob(w), 1).sum()

    def neg_log_hyperprior(self) -> torch.Tensor:
        """``-log`` of the Gamma hyperpriors of the precisions (up to a constant)."""
        alpha = self.log_var.new_tensor([self.ZERO_PRECISION[0]] + [self.PRECISION[0]]
                                        * (len(self.log_var) - 1))
        beta = self.log_var.new_tensor([self.ZERO_PRECISION[1]] + [self.PRECISION[1]]
                                       * (len(self.log_var) - 1))
        log_precision = -self.log_var
        return -((alpha - 1) * log_precision - beta * log_precision.exp()).sum()

    @torch.no_grad()
    def assign(self, w: torch.Tensor) -> torch.Tensor:
        """The most responsible component of each weight (0 = the zero component)."""
        return self.component_log_prob(w).argmax(1).reshape(w.shape)


@dataclass
class SoftShareResult:
    losses: list[float]
    components_used: int  # non-zero codebook entries after quantization
    zero_fraction: float  # weights pruned to the zero component


def _weights(layers: Sequence[nn.Module]) -> list[torch.Tensor]:
    return [m.weight for m in layers]


def retrain(model: nn.Module, layers: Sequence[nn.Module], split: Split, *,
            components: int | Sequence[int] = 8, scope: str = "layer", tau: float = 5e-3,
            epochs: float = 1.0, lr: float = 1e-3,
            prior_lr: float = 5e-4, pi_zero: float = 0.99, batch_size: int = 64,
            seed: int = 0) -> list[MixturePrior]:
    """Retrain ``model`` with the mixture prior on ``layers``' weights (Adam, as the paper).

    ``components``: non-zero components, one count for all layers or one per layer (a global
    mixture takes the largest)."""
    counts = ([int(components)] * len(layers) if isinstance(components, int)
              else [int(c) for c in components])
    if len(counts) != len(layers):
        raise ValueError(f"components: {len(counts)} counts for {len(layers)} layers")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {list(SCOPES)}, got {scope!r}")
    if tau < 0 or epochs < 0:
        raise ValueError(f"tau and epochs must be >= 0, got {tau} and {epochs}")
    weights = _weights(layers)
    if scope == "global":
        priors = [MixturePrior(max(counts), torch.cat([w.detach().flatten() for w in weights]),
                               pi_zero)]
        groups = [weights]
    else:
        priors = [MixturePrior(c, w, pi_zero) for c, w in zip(counts, weights, strict=True)]
        groups = [[w] for w in weights]
    n_weights = sum(w.numel() for w in weights)
    opt = torch.optim.Adam([{"params": [p for p in model.parameters() if p.requires_grad],
                             "lr": lr},
                            {"params": [p for pr in priors for p in pr.parameters()],
                             "lr": prior_lr}])
    total = int(round(epochs * math.ceil(len(split) / batch_size)))
    gen = torch.Generator().manual_seed(seed)
    model.train()
    step, losses = 0, []
    while step < total:
        for x, y in batches(split, batch_size, shuffle=True, generator=gen):
            complexity = sum(pr.neg_log_prob(torch.cat([w.flatten() for w in group]))
                             + pr.neg_log_hyperprior()
                             for pr, group in zip(priors, groups, strict=True))
            loss = F.cross_entropy(model(x), y) + tau * complexity / n_weights
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
            step += 1
            if step >= total:
                break
    return priors


@torch.no_grad()
def quantize_to_mixture(layers: Sequence[nn.Module], priors: Sequence[MixturePrior]
                        ) -> SoftShareResult:
    """Set every weight to its component's mean, prune the zero component, and store each
    layer as a codebook model (``quantize.Share``) of the components it uses."""
    if len(priors) == 1 and len(layers) > 1:
        priors = list(priors) * len(layers)
    used_total, zeros, count = 0, 0, 0
    for layer, prior in zip(layers, priors, strict=True):
        w = layer.weight.detach()
        comp = prior.assign(w)
        means = prior.all_means().detach()
        nonzero = comp != 0
        used = torch.unique(comp[nonzero])
        bits = max(1, math.ceil(math.log2(max(2, len(used)))))
        share = Share(torch.where(nonzero, w, torch.zeros_like(w)) + 0.0, 1)
        share.bits = bits
        share.codebook = nn.Parameter(torch.zeros(2 ** bits))
        share.codebook.data[:len(used)] = means[used]
        remap = torch.zeros(len(means), dtype=torch.int64)
        remap[used] = torch.arange(len(used))
        share.nonzero = nonzero
        share.index = remap[comp[nonzero]]
        parametrize.register_parametrization(layer, "weight", share, unsafe=True)
        used_total += len(used)
        zeros += int((~nonzero).sum())
        count += w.numel()
    return SoftShareResult([], used_total, zeros / max(1, count))


def soft_share(model: nn.Module, layers: Sequence[tuple[nn.Module, int]], split: Split,
               options: SoftShareOptions, *, seed: int = 0) -> SoftShareResult:
    """The ``share`` control by soft weight sharing: ``layers`` pairs each layer with its
    codebook bits ``b`` (``2**b - 1`` non-zero components, so its codebook fits ``2**b``
    entries, as k-means sharing's); ``options`` is a ``SoftShareOptions``."""
    modules = [m for m, _ in layers]
    priors = retrain(model, modules, split, components=[max(1, 2 ** b - 1) for _, b in layers],
                     scope=options.scope, tau=options.tau, epochs=options.epochs,
                     lr=options.lr, prior_lr=options.prior_lr, pi_zero=options.pi_zero,
                     seed=seed)
    return quantize_to_mixture(modules, priors)
