"""Soft weight sharing (Ullrich et al. 2017): prior gradient, quantization, size, accuracy."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from search.compression.quantize import Share, weight_format
from search.compression.soft_sharing import MixturePrior, quantize_to_mixture, retrain
from spaces.compression import weight_bytes


def test_prior_gradient_matches_a_numeric_one():
    torch.manual_seed(0)
    prior = MixturePrior(4, torch.randn(50) * 0.1).double()
    w = (torch.randn(30, dtype=torch.float64) * 0.1).requires_grad_()
    params = [w, prior.means.detach().clone().requires_grad_(),
              prior.log_var.detach().clone().requires_grad_(),
              prior.logits.detach().clone().requires_grad_()]
    assert torch.autograd.gradcheck(lambda *p: _functional(prior, *p), params, eps=1e-6,
                                    atol=1e-5)


def _functional(prior, w, means, log_var, logits):
    """``neg_log_prob`` as a function of every learned tensor (for gradcheck)."""
    var = log_var.exp()
    rest = torch.log_softmax(logits, 0) + math.log(1 - prior.pi_zero)
    log_pi = torch.cat([rest.new_tensor([math.log(prior.pi_zero)]), rest])
    all_means = torch.cat([means.new_zeros(1), means])
    diff = w.reshape(-1, 1) - all_means[None, :]
    log_n = -0.5 * (diff ** 2 / var + log_var + math.log(2 * math.pi))
    out = -torch.logsumexp(log_n + log_pi[None, :], 1).sum()
    # the module's own computation must agree with this reference
    with torch.no_grad():
        prior.means.copy_(means)
        prior.log_var.copy_(log_var)
        prior.logits.copy_(logits)
        torch.testing.assert_close(prior.neg_log_prob(w), out)
    return out


def test_prior_is_a_normalised_density():
    prior = MixturePrior(3, torch.linspace(-1, 1, 20))
    grid = torch.linspace(-20, 20, 200001)
    with torch.no_grad():
        density = torch.exp(-torch.stack([prior.neg_log_prob(v[None]) for v in grid[::100]]))
    integral = float(density.sum() * (grid[100] - grid[0]))
    assert integral == pytest.approx(1.0, rel=1e-2)


def test_quantization_uses_component_means_and_prunes_the_zero_component():
    torch.manual_seed(0)
    layer = nn.Linear(40, 20, bias=False)
    prior = MixturePrior(3, layer.weight)
    result = quantize_to_mixture([layer], [prior])
    fmt = weight_format(layer)
    assert isinstance(fmt, Share)
    w = layer.weight.detach()
    values = set(torch.unique(w).tolist())
    means = set(prior.all_means().detach().tolist())
    assert values <= means | {0.0}
    assert result.zero_fraction == pytest.approx(float((w == 0).float().mean()))
    assert 1 <= result.components_used <= 3
    index, codebook = fmt.codes(w)
    assert codebook.numel() == 2 ** fmt.bits and index.max() < result.components_used
    # size against float32 by the same rule as k-means sharing
    size = weight_bytes(w.numel(), int((w != 0).sum()), None, fmt.bits, 20)
    assert size < 4 * w.numel()


def test_retraining_on_digits_prunes_most_weights_and_keeps_accuracy():
    from search.compression.data import load_dataset
    from search.compression.finetune import evaluate_accuracy, train_epochs

    data = load_dataset("digits", seed=0)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))
    train_epochs(model, data.train, epochs=15, lr=0.05, seed=0)
    before = evaluate_accuracy(model, data.val)
    layers = [model[1], model[3]]
    priors = retrain(model, layers, data.train, components=6, tau=0.01, epochs=20, lr=1e-3,
                     prior_lr=3e-3, seed=0)
    result = quantize_to_mixture(layers, priors)
    after = evaluate_accuracy(model, data.val)
    dense = sum(4 * m.weight.numel() for m in layers)
    packed = sum(weight_bytes(m.weight.numel(), int((m.weight != 0).sum()), None,
                              weight_format(m).bits, m.weight.shape[0]) for m in layers)
    assert before > 0.9
    assert after > before - 0.03, (before, after)
    assert result.zero_fraction > 0.4, result
    assert packed / dense < 0.15, packed / dense


# ---- as the compression space's ``share`` control ---------------------------------------------
MODEL = {"reference": "resnet_small", "dataset": "digits", "limit": 600, "epochs": 6,
         "width": 0.5, "seed": 0}


@pytest.mark.parametrize("scope", ["layer", "global"])
def test_the_share_control_by_soft_weight_sharing_exports_a_codebook_model(cache, tmp_path,
                                                                            scope):
    from search.compression.export import load_artifact
    from search.compression.factory import make_space
    from search.evaluators.compress import CompressionEvaluator

    space = make_space(model=MODEL, controls=["share"], share_choices=[3, 2],
                       soft_share={"scope": scope, "epochs": 8 if scope == "layer" else 2})
    evaluator = CompressionEvaluator(model=MODEL, export_dir=str(tmp_path))
    arch = {d.name: d.choices[-1] for d in space.decisions}  # 2-bit codebooks everywhere
    ev = evaluator.evaluate(arch, space, seed=1)
    model, manifest = load_artifact(ev.artifacts["model"])
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    values = [set(torch.unique(c.weight.detach()).tolist()) - {0.0} for c in convs]
    assert all(len(v) <= 3 for v in values)  # 2**2 - 1 non-zero components per codebook
    zero = sum(int((c.weight == 0).sum()) for c in convs) / sum(c.weight.numel() for c in convs)
    assert zero > 0.2, zero
    assert ev.metrics["size_ratio"] < 0.1, ev.metrics  # against float32
    if scope == "global":  # one mixture: every layer draws from the same three means
        assert len(set().union(*values)) <= 3
    else:  # the digits ResNet keeps most of its accuracy (base ~97%)
        assert ev.metrics["val_acc"] > 80, ev.metrics
