"""Benchmark (issue 15): which search signal ranks pruning policies by what fine-tuning makes
of them.

AMC maximizes a signal measured right after pruning; the product needs the policy that is best
after fine-tuning. This script draws a pool of policies that meet one target (the uniform,
shallow-first and deep-first rules, AMC's random warm-up policies and the best ones of a real
AMC search on the signal the benchmark uses), scores each with several candidate signals, then
fine-tunes each (1 and 3 epochs, learning-rate warm-up, the same seed for all) and scores it on
held-out validation images that no signal sees. No test image is used: what is learnt here may
be used to pick a signal without touching the benchmark's test scores.

Signals (all on the first ``--signal-val`` validation images, after pruning, least-squares refit
and batch-norm recalibration as in ``amc_fashion.Scorer``):

- ``acc``: accuracy right after pruning (what ``amc`` and ``amc_iter`` search on);
- ``neg_ce``: minus the cross-entropy (the same, but continuous);
- ``neg_kl``: minus KL(reference || pruned) of the softmax outputs (a distillation signal);
- ``ft20`` / ``ft100``: accuracy after 20 / 100 batches of fine-tuning (with the warm-up).

For each signal: Spearman's rank correlation with the held-out accuracy after 1 and 3 epochs
(95% bootstrap interval over policies), and the held-out accuracy of the policy it ranks first
and of its top 3, beside the uniform rule's. The fine-tune's own noise (the uniform policy
fine-tuned with ``--noise-seeds`` other seeds) says how far any signal could rank at all.

``--stage 2`` (the default) studies the policies of ``amc_iter``'s second stage: stage 1 is the
uniform rule to sqrt(target), fine-tuned ``--iter-ft-epochs``, as in ``uniform_iter``::

    python benchmarks/amc_signal_study.py --target mobilenetv2_small:flops:0.1 --seed 1000
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from agents.amc_ddpg import AMCAgent  # noqa: E402
from agents.base import TrialResult, TrialState  # noqa: E402
from agents.compression_baselines import HEURISTICS  # noqa: E402
from benchmarks.amc_fashion import Scorer, fashion_splits, iterative_search  # noqa: E402
from search.compression.apply import apply_policy  # noqa: E402
from search.compression.data import Split  # noqa: E402
from search.compression.finetune import evaluate_accuracy, train_epochs  # noqa: E402
from search.compression.graph import analyze  # noqa: E402
from search.compression.reference import trained_reference  # noqa: E402
from spaces.compression import CompressionSpace  # noqa: E402

SIGNALS = ("acc", "neg_ce", "neg_kl", "ft20", "ft100")


def _tail(split: Split, start: int) -> Split:
    return Split(split.x[start:], split.y[start:])


@torch.no_grad()
def _logits(model: torch.nn.Module, split: Split) -> torch.Tensor:
    model.eval()
    return torch.cat([model(split.x[i:i + 512]) for i in range(0, len(split), 512)])


def policy_pool(space: CompressionSpace, scorer: Scorer, args: argparse.Namespace,
                seed: int) -> list[tuple[str, dict]]:
    """The rules, ``--random`` of AMC's warm-up policies and the ``--amc-top`` best of an AMC
    search on the ``acc`` signal (distinct kept channels only)."""
    pool = [(name, HEURISTICS[name](space)) for name in ("uniform", "shallow_first", "deep_first")]
    agent = AMCAgent(space, seed=seed, warmup=args.warmup, lbound=args.lbound)
    seen: dict[tuple, tuple[float, dict, bool]] = {}
    for e in range(args.episodes):
        p = agent.ask()
        acc = scorer(p.arch)[0]
        agent.tell(p.trial_id, TrialResult(TrialState.COMPLETE, reward=acc))
        key = tuple(sorted(space.kept_channels(p.arch).items()))
        seen.setdefault(key, (acc, p.arch, e < args.warmup))
    rules = {tuple(sorted(space.kept_channels(a).items())) for _, a in pool}
    warm = [a for k, (_, a, w) in seen.items() if w and k not in rules][:args.random]
    learnt = sorted(((acc, a) for k, (acc, a, w) in seen.items() if not w and k not in rules),
                    key=lambda t: -t[0])[:args.amc_top]
    pool += [(f"warmup_{i}", a) for i, a in enumerate(warm)]
    pool += [(f"amc_top{i}", a) for i, (_, a) in enumerate(learnt)]
    return pool


def signals(scorer: Scorer, teacher_logits: torch.Tensor, arch: dict, data,
            signal_val: Split, args: argparse.Namespace, seed: int) -> dict[str, float]:
    m = scorer.pruned(arch)
    logits = _logits(m, signal_val)
    out = {"acc": float((logits.argmax(1) == signal_val.y).float().mean()),
           "neg_ce": -float(F.cross_entropy(logits, signal_val.y)),
           "neg_kl": -float(F.kl_div(F.log_softmax(logits, 1), F.softmax(teacher_logits, 1),
                                     reduction="batchmean"))}
    for steps in (20, 100):
        m = scorer.pruned(arch)
        train_epochs(m, data.train, epochs=steps * 64 / len(data.train), lr=args.ft_lr,
                     seed=seed, warmup=args.ft_warmup)
        out[f"ft{steps}"] = evaluate_accuracy(m, signal_val)
    return out


def outcome(model, space: CompressionSpace, arch: dict, data, held_out: Split,
            args: argparse.Namespace, seed: int) -> dict[str, float]:
    """Held-out validation accuracy after each fine-tuning budget, from the same pruned start."""
    out = {}
    for ep in args.epochs:
        comp = apply_policy(model, space, arch, calib=data.train, seed=seed,
                            least_squares=args.least_squares, calib_samples=args.calib_samples)
        train_epochs(comp.model, data.train, epochs=ep, lr=args.ft_lr, seed=seed,
                     warmup=args.ft_warmup)
        out[f"heldout_ft{ep:g}"] = evaluate_accuracy(comp.model, held_out)
    return out


def spearman(x: list[float], y: list[float]) -> float:
    from scipy import stats

    return float(stats.spearmanr(x, y).statistic)


def bootstrap_ci(x: list[float], y: list[float], n: int = 2000, seed: int = 0
                 ) -> tuple[float, float]:
    """95% percentile interval of Spearman's rho over policies resampled with replacement."""
    rng = np.random.default_rng(seed)
    xa, ya = np.asarray(x), np.asarray(y)
    rhos = []
    for _ in range(n):
        idx = rng.integers(0, len(xa), len(xa))
        if len(set(xa[idx])) > 1 and len(set(ya[idx])) > 1:
            rhos.append(spearman(list(xa[idx]), list(ya[idx])))
    return float(np.percentile(rhos, 2.5)), float(np.percentile(rhos, 97.5))


def summarize(rows: list[dict], epochs: list[float]) -> list[dict[str, Any]]:
    """Per signal and budget: rho with its interval, the held-out accuracy of the signal's
    first and of its top 3, the uniform rule's, and the best in the pool."""
    out = []
    uniform = next(r for r in rows if r["policy"] == "uniform")
    for ep in epochs:
        key = f"heldout_ft{ep:g}"
        ys = [r[key] for r in rows]
        for sig in SIGNALS:
            xs = [r[sig] for r in rows]
            order = sorted(range(len(rows)), key=lambda i: -xs[i])
            low, high = bootstrap_ci(xs, ys)
            out.append({"signal": sig, "budget": key, "rho": spearman(xs, ys), "low": low,
                        "high": high, "top1": ys[order[0]], "top1_policy": rows[order[0]]["policy"],
                        "top3_mean": float(np.mean([ys[i] for i in order[:3]])),
                        "uniform": uniform[key], "pool_best": max(ys),
                        "pool_mean": float(np.mean(ys))})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--target", default="mobilenetv2_small:flops:0.1")
    ap.add_argument("--stage", type=int, choices=[1, 2], default=2)
    ap.add_argument("--seed", type=int, default=1000,
                    help="kept apart from the benchmark's seeds 0-19")
    ap.add_argument("--episodes", type=int, default=150, help="AMC episodes (a stage's half)")
    ap.add_argument("--warmup", type=int, default=37)
    ap.add_argument("--random", type=int, default=10, help="warm-up policies in the pool")
    ap.add_argument("--amc-top", type=int, default=8, help="AMC's best policies in the pool")
    ap.add_argument("--noise-seeds", type=int, default=3)
    ap.add_argument("--lbound", type=float, default=0.2)
    ap.add_argument("--iter-bound", choices=["original", "stage"], default="original")
    ap.add_argument("--iter-ft-epochs", type=float, default=1.0)
    ap.add_argument("--ft-warmup", type=float, default=0.1)
    ap.add_argument("--ft-lr", type=float, default=0.02)
    ap.add_argument("--finetune", default="1,3")
    ap.add_argument("--signal-val", type=int, default=1000)
    ap.add_argument("--train-size", type=int, default=12000)
    ap.add_argument("--ref-epochs", type=int, default=8)
    ap.add_argument("--calib-samples", type=int, default=256)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    args.epochs = [float(e) for e in args.finetune.split(",")]
    args.least_squares, args.reward_ft_steps = True, 0
    args.val_size = args.test_size = None
    model_name, metric, ratio = args.target.split(":")
    out = Path(args.out or f"benchmarks/results/amc_signal_study_{model_name}_"
                           f"{metric}{float(ratio):g}_stage{args.stage}_seed{args.seed}.json")
    cpu0 = time.process_time()

    data, _ = fashion_splits(args)  # the test split is not used
    signal_val, held_out = data.val.head(args.signal_val), _tail(data.val, args.signal_val)
    reference, rinfo = trained_reference(model_name, data, epochs=args.ref_epochs)
    reference.eval()
    space = CompressionSpace(analyze(reference, data.input_shape).table, controls=["prune"],
                             target={"metric": metric, "ratio": float(ratio)})
    model = reference
    if args.stage == 2:
        full = argparse.Namespace(**{**vars(args), "episodes": 2 * args.episodes,
                                     "warmup": 2 * args.warmup})
        model, space, _, info = iterative_search(reference, space, data, args.seed, full,
                                                 "uniform_iter")
        print(f"# stage 1: uniform to {info['stage1_flops_ratio']:.3f} of the FLOPs, "
              f"{args.iter_ft_epochs:g} epoch(s) of fine-tuning; bound {info['iter_bound']}")
    teacher_logits = _logits(reference, signal_val)
    scorer = Scorer(model, space, data, args, args.seed)
    pool = policy_pool(space, scorer, args, args.seed)
    print(f"# {args.target}, stage {args.stage}, seed {args.seed}: {len(pool)} policies; "
          f"signals on {len(signal_val)} validation images, outcomes on {len(held_out)} others",
          flush=True)
    rows = []
    for name, arch in pool:
        row = {"policy": name,
               **signals(scorer, teacher_logits, arch, data, signal_val, args, args.seed),
               **outcome(model, space, arch, data, held_out, args, args.seed),
               "kept": {k: v for k, v in space.kept_channels(arch).items()}}
        rows.append(row)
        print(f"{name:12s} " + " ".join(f"{s}={row[s]:.3f}" for s in SIGNALS) + " | "
              + " ".join(f"ft{e:g}={row[f'heldout_ft{e:g}']:.4f}" for e in args.epochs),
              flush=True)
    uniform = dict(pool[0][1]) if pool[0][0] == "uniform" else HEURISTICS["uniform"](space)
    noise = [outcome(model, space, uniform, data, held_out, args, args.seed + 1 + k)
             for k in range(args.noise_seeds)]
    noise_sd = {k: float(np.std([n[k] for n in noise] + [rows[0][k]], ddof=1))
                for k in noise[0]} if noise else {}
    policy_sd = {f"heldout_ft{e:g}": float(np.std([r[f"heldout_ft{e:g}"] for r in rows], ddof=1))
                 for e in args.epochs}
    summary = summarize(rows, args.epochs)
    print("\n# held-out accuracy (%) after fine-tuning; rho: Spearman with its 95% bootstrap "
          "interval over policies")
    print(f"{'budget':>7s} {'signal':>7s} {'rho':>6s} {'interval':>16s} {'top1':>6s} "
          f"{'top3':>6s} {'uniform':>7s} {'best':>6s} {'mean':>6s}")
    for s in summary:
        print(f"{s['budget'][8:]:>7s} {s['signal']:>7s} {s['rho']:+6.2f} "
              f"[{s['low']:+5.2f}, {s['high']:+5.2f}] {100 * s['top1']:6.2f} "
              f"{100 * s['top3_mean']:6.2f} {100 * s['uniform']:7.2f} "
              f"{100 * s['pool_best']:6.2f} {100 * s['pool_mean']:6.2f}")
    print("# sd over policies: " + ", ".join(f"{k[8:]} {100 * v:.2f}" for k, v in policy_sd.items())
          + "; sd of the uniform policy over fine-tuning seeds: "
          + ", ".join(f"{k[8:]} {100 * v:.2f}" for k, v in noise_sd.items()))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "reference": rinfo, "rows": rows,
                               "noise": noise, "noise_sd": noise_sd, "policy_sd": policy_sd,
                               "summary": summary,
                               "cpu_min": (time.process_time() - cpu0) / 60},
                              indent=1, default=str))
    print(f"# written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
