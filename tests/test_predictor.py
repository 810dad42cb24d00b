"""The Dyna planner's performance predictor: a GP on architecture choices."""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import spearmanr

from agents.predictor import HammingGP

torch.set_num_threads(1)


def test_gp_ranks_unseen_architectures_and_knows_where_it_is_unsure():
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(6, 5))  # an additive score over 6 decisions x 5 choices

    def score(x: np.ndarray) -> np.ndarray:
        return weights[np.arange(6), x].sum(-1) * 3.0 + 90.0  # scale and offset: no matter

    x_train = rng.integers(0, 5, size=(60, 6))
    x_test = rng.integers(0, 5, size=(200, 6))
    gp = HammingGP().fit(x_train, score(x_train))
    mean, sd = gp.predict(x_test)
    assert spearmanr(mean, score(x_test)).statistic > 0.7
    # At a training point the GP is sure and right; far from the data it is less sure.
    m0, s0 = gp.predict(x_train[:5])
    assert np.allclose(m0, score(x_train[:5]), atol=0.5 * score(x_train).std())
    assert s0.mean() < sd.mean()


def test_gp_keeps_the_best_and_the_latest_points_when_capped():
    rng = np.random.default_rng(1)
    x = rng.integers(0, 5, size=(300, 6))
    y = rng.normal(size=300)
    gp = HammingGP(max_points=50).fit(x, y)
    assert gp._x.shape == (50, 6)
    best = x[np.argmax(y)]
    assert (gp._x.numpy() == best).all(1).any()
