"""A performance predictor for model-based search: a Gaussian process on architectures.

The controller's Dyna-style planning (Sutton 1991) needs a cheap model of the reward of
architectures not evaluated yet. Predictor-guided NAS (BANANAS, White et al. 2021; NPENAS,
Wei et al. 2022; BRP-NAS, Dudziak et al. 2020) shows that a small surrogate fitted on the
evaluations so far ranks unseen architectures well enough to steer the search. A GP is the
smallest such model that also says how unsure it is: its mean plus ``kappa`` standard
deviations (UCB, Srinivas et al. 2010) is the reward the planning updates learn from, so the
policy moves toward architectures that are good *or* unexplored.

Kernel: ``exp(-theta * h / d)`` on categorical choices, ``h`` the number of the ``d``
decisions on which two architectures differ (the Hamming distance of their one-hot codes);
``theta`` and the noise level are picked by the marginal likelihood over a small grid, on
standardized targets, so nothing depends on the reward's scale or on the table.
"""

from __future__ import annotations

import numpy as np

THETAS = (0.5, 1.0, 2.0, 4.0, 8.0)
NOISES = (1e-3, 1e-2, 1e-1)


class HammingGP:
    """GP regression on rows of choice indices (``[n, d]`` ints)."""

    def __init__(self, max_points: int = 400) -> None:
        self.max_points = int(max_points)
        self._x: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> HammingGP:
        """Fit on (at most ``max_points``: the best half and the most recent rest) points."""
        x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.float64)
        if len(x) > self.max_points:
            best = np.argsort(-y)[: self.max_points // 2]
            rest = np.setdiff1d(np.arange(len(x)), best)[-(self.max_points - len(best)):]
            keep = np.concatenate([best, rest])
            x, y = x[keep], y[keep]
        self._mu, self._sd = float(y.mean()), float(y.std()) or 1.0
        z = (y - self._mu) / self._sd
        h = _hamming(x, x) / x.shape[1]
        best_fit: tuple[float, float, float, np.ndarray, np.ndarray] | None = None
        for theta in THETAS:
            k = np.exp(-theta * h)
            for noise in NOISES:
                try:
                    chol = np.linalg.cholesky(k + noise * np.eye(len(x)))
                except np.linalg.LinAlgError:
                    continue
                alpha = np.linalg.solve(chol.T, np.linalg.solve(chol, z))
                nll = 0.5 * z @ alpha + np.log(np.diag(chol)).sum()
                if best_fit is None or nll < best_fit[0]:
                    best_fit = (nll, theta, noise, chol, alpha)
        if best_fit is None:  # pragma: no cover - the largest noise keeps K positive
            raise np.linalg.LinAlgError("no kernel setting gave a positive-definite matrix")
        _, self.theta, self.noise, self._chol, self._alpha = best_fit
        self._x = x
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (in the targets' units) at rows ``x``."""
        if self._x is None:
            raise RuntimeError("fit the predictor first")
        x = np.asarray(x, dtype=np.int64)
        ks = np.exp(-self.theta * _hamming(x, self._x) / x.shape[1])
        mean = ks @ self._alpha
        v = np.linalg.solve(self._chol, ks.T)
        var = np.clip(1.0 - (v * v).sum(0), 1e-12, None)
        return self._mu + self._sd * mean, self._sd * np.sqrt(var)


def _hamming(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise count of differing decisions, ``[len(a), len(b)]``."""
    return (a[:, None, :] != b[None, :, :]).sum(-1).astype(np.float64)
