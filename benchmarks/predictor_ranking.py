"""How well does the controller's planning model rank architectures near the top? (issue 13)

The MnasNet controller's Dyna planning learns from a GP's predictions (``agents/predictor.py``,
a Hamming kernel on the choices). The reported score at 100-200 evaluations is decided among
a handful of architectures whose ``val_acc`` differ by hundredths of a point, so a predictor
only helps if it ranks *those* well. This script fits the product's GP, and for comparison
the same GP on BANANAS's path encoding (White et al. 2021: one feature per input-to-output
path of operations), on ``n`` random architectures of the NB201 table's ``val_acc`` (the
signal the agent sees; tuning seeds only), and scores its mean on every unseen architecture:

- Spearman correlation over all unseen architectures and within the unseen top 10%;
- the true rank (0 = the table's best) of the best of the predictor's 10 top picks.

    python -m benchmarks.predictor_ranking --seeds 1000-1019 --sizes 32,64,128
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agents.predictor import HammingGP  # noqa: E402
from benchmarks.search_quality import parse_seeds  # noqa: E402
from spaces.nb201 import DATA_DIR, EDGES, OPS, NB201Space  # noqa: E402

TABLE = DATA_DIR / "nb201_cifar10.csv.gz"  # the shipped CIFAR-10 table
#: NB201's input-to-output paths (node 0 to node 3) as lists of edges.
PATHS = [[(0, 3)], [(0, 1), (1, 3)], [(0, 2), (2, 3)], [(0, 1), (1, 2), (2, 3)]]


def load_table(path: Path, signal: str) -> tuple[np.ndarray, np.ndarray]:
    """Choice indices ``[n, 6]`` (``NB201Space.encode``) and the signal of each row of a
    table keyed by ``arch_str`` (read by ``search.tables``, as the tabular evaluator does)."""
    from search.tables import read_table

    space = NB201Space()
    table = read_table(path)
    table.require_numeric([signal])
    x = np.array([space.encode(space.from_arch_str(k)) for k in table.keys()], dtype=np.int64)
    return x, np.asarray(table.column(signal), dtype=np.float64)


def true_ranks(y: np.ndarray) -> np.ndarray:
    """Each row's rank by ``y`` (0 = the best)."""
    rank = np.empty(len(y), dtype=np.int64)
    rank[np.argsort(-y)] = np.arange(len(y))
    return rank


def path_encoding(x: np.ndarray) -> np.ndarray:
    """One 0/1 feature per (path, operations on it); a path through ``none`` is cut."""
    none = OPS.index("none")
    edge_col = {e: i for i, e in enumerate(EDGES)}
    columns = {}
    for p in PATHS:
        for ops in itertools.product([o for o in range(len(OPS)) if o != none], repeat=len(p)):
            columns[(tuple(p), ops)] = len(columns)
    out = np.zeros((len(x), len(columns)))
    for i, row in enumerate(x):
        for p in PATHS:
            ops = tuple(int(row[edge_col[e]]) for e in p)
            if none not in ops:
                out[i, columns[(tuple(p), ops)]] = 1.0
    return out


class EuclideanGP:
    """The same GP (standardized targets, grid search by marginal likelihood) with a squared
    exponential kernel on real features: for the path encoding."""

    LENGTHS = (1.0, 2.0, 4.0, 8.0)
    NOISES = (1e-3, 1e-2, 1e-1)

    def fit(self, x: np.ndarray, y: np.ndarray) -> EuclideanGP:
        import torch

        self._x = torch.as_tensor(x, dtype=torch.float64)
        self._mu, self._sd = float(y.mean()), float(y.std()) or 1.0
        z = torch.as_tensor((y - self._mu) / self._sd).unsqueeze(1)
        d2 = torch.cdist(self._x, self._x) ** 2
        eye = torch.eye(len(x), dtype=torch.float64)
        best = None
        for length in self.LENGTHS:
            for noise in self.NOISES:
                chol, info = torch.linalg.cholesky_ex(torch.exp(-d2 / (2 * length**2))
                                                      + noise * eye)
                if int(info):
                    continue
                alpha = torch.cholesky_solve(z, chol)
                nll = float(0.5 * (z * alpha).sum() + torch.log(torch.diagonal(chol)).sum())
                if best is None or nll < best[0]:
                    best = (nll, length, chol, alpha)
        _, self.length, self._chol, self._alpha = best
        return self

    def predict(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard deviation at rows ``x``, as ``HammingGP.predict``."""
        import torch

        k = torch.exp(-torch.cdist(torch.as_tensor(x, dtype=torch.float64), self._x) ** 2
                      / (2 * self.length**2))
        mean = (k @ self._alpha).squeeze(1)
        v = torch.linalg.solve_triangular(self._chol, k.T, upper=False)
        var = (1.0 - (v * v).sum(0)).clamp(min=1e-12)
        return self._mu + self._sd * mean.numpy(), self._sd * var.sqrt().numpy()


def score(pred: np.ndarray, y: np.ndarray, true_rank: np.ndarray) -> dict[str, float]:
    from scipy.stats import spearmanr

    top = y > np.quantile(y, 0.9)
    picks = np.argsort(-pred)[:10]
    return {"spearman_all": float(spearmanr(pred, y).statistic),
            "spearman_top10pct": float(spearmanr(pred[top], y[top]).statistic),
            "best_pick_rank": int(true_rank[picks].min())}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1000-1019", help="first-last or a,b,c (tuning seeds)")
    ap.add_argument("--sizes", default="32,64,128", help="training set sizes")
    ap.add_argument("--signal", default="val_acc")
    ap.add_argument("--table", default=str(TABLE))
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/predictor_ranking.json"))
    args = ap.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    x, y = load_table(Path(args.table), args.signal)
    predictors = {"hamming (product)": (x, HammingGP),
                  "path encoding": (path_encoding(x), EuclideanGP)}
    true_rank = true_ranks(y)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        for name, (f, model_class) in predictors.items():
            per_seed = []
            for seed in parse_seeds(args.seeds):
                idx = np.random.default_rng(seed).choice(len(y), n, replace=False)
                rest = np.setdiff1d(np.arange(len(y)), idx)
                mean, _ = model_class().fit(f[idx], y[idx]).predict(f[rest])
                per_seed.append(score(mean, y[rest], true_rank[rest]))
            row = {"n": n, "predictor": name, "seeds": len(per_seed),
                   **{k: statistics.mean(s[k] for s in per_seed)
                      for k in ("spearman_all", "spearman_top10pct")},
                   "best_pick_rank_median": statistics.median(s["best_pick_rank"]
                                                              for s in per_seed)}
            rows.append(row)
            print(f"n={n:4d} {name:18s} spearman all {row['spearman_all']:+.3f}  top 10% "
                  f"{row['spearman_top10pct']:+.3f}  best of 10 picks: rank "
                  f"{row['best_pick_rank_median']:.0f} (median)", flush=True)
    result = {"args": vars(args), "rows": rows}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
