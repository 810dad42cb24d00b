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
import torch

THETAS = (0.5, 1.0, 2.0, 4.0, 8.0)
NOISES = (1e-3, 1e-2, 1e-1)


class HammingGP:
    """GP regression on rows of choice indices (``[n, d]`` ints). Linear algebra in torch
    (float64), so it keeps to the thread count the process set (``torch.set_num_threads``)."""

    def __init__(self, max_points: int = 256) -> None:
        self.max_points = int(max_points)
        self._x: torch.Tensor | None = None

    def fit(self, x: np.ndarray, y: np.ndarray) -> HammingGP:
        """Fit on (at most ``max_points``: the best half and the most recent rest) points."""
        x, y = np.asarray(x, dtype=np.int64), np.asarray(y, dtype=np.float64)
        if len(x) > self.max_points:
            best = np.argsort(-y)[: self.max_points // 2]
            rest = np.setdiff1d(np.arange(len(x)), best)[-(self.max_points - len(best)):]
            keep = np.concatenate([best, rest])
            x, y = x[keep], y[keep]
        self._mu, self._sd = float(y.mean()), float(y.std()) or 1.0
        xt = torch.as_tensor(x)
        z = torch.as_tensor((y - self._mu) / self._sd).unsqueeze(1)
        h = _hamming(xt, xt) / x.shape[1]
        eye = torch.eye(len(x), dtype=torch.float64)
        best_fit = None
        for theta in THETAS:
            k = torch.exp(-theta * h)
            for noise in NOISES:
                chol, info = torch.linalg.cholesky_ex(k + noise * eye)
                if int(info) != 0:
                    continue
                alpha = torch.cholesky_solve(z, chol)
                nll = float(0.5 * (z * alpha).sum() + torch.log(torch.diagonal(chol)).sum())
                if best_fit is None or nll < best_fit[0]:
                    best_fit = (nll, theta, noise, chol, alpha)
        if best_fit is None:  # pragma: no cover - the largest noise keeps K positive
            raise np.linalg.LinAlgError("no kernel setting gave a positive-definite matrix")
        _, self.theta, self.noise, self._chol, self._alpha = best_fit
        self._x = xt
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation (in the targets' units) at rows ``x``."""
        if self._x is None:
            raise RuntimeError("fit the predictor first")
        xt = torch.as_tensor(np.asarray(x, dtype=np.int64))
        ks = torch.exp(-self.theta * _hamming(xt, self._x) / xt.shape[1])
        mean = (ks @ self._alpha).squeeze(1)
        v = torch.linalg.solve_triangular(self._chol, ks.T, upper=False)
        var = (1.0 - (v * v).sum(0)).clamp(min=1e-12)
        return (self._mu + self._sd * mean.numpy(), self._sd * var.sqrt().numpy())


def _hamming(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pairwise count of differing decisions, ``[len(a), len(b)]`` (float64)."""
    return (a[:, None, :] != b[None, :, :]).sum(-1).double()
