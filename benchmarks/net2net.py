"""Net2Net warm starts: the same search with and without ``warm_start: "net2net"``.

Protocol (printed with the table and stored in the JSON):

- one agent (``--agent``, default regularized evolution, whose mutations make wider and deeper
  children of trained candidates) on a compact MnasNet space whose ops all widen and deepen
  exactly, real training (``--epochs`` per candidate) on ``--dataset``;
- per seed, the cold and the warm job run back to back in fresh processes, same budget
  (``--budget`` distinct trainings), same agent seed;
- time is the cumulative training time of the job's trials in order (the local executor runs
  them one at a time), so the agent's and the loop's own overhead is left out of both arms;
  as seconds move with the machine's load, the same ratio is also given in trainings (every
  candidate trains the same epochs, warm-started or not);
- **time to the cold best**: the first moment the warm job's best validation accuracy reaches
  the cold job's final best, as a fraction of the cold job's total time (a seed where the warm
  job never reaches it is marked and counts as 1.0 or more);
- **equal epochs**: every warm-started candidate is trained again from scratch with the same
  seed, and the paired difference of validation accuracy is reported.

    python benchmarks/net2net.py                      # 5 seeds x 40 trainings, digits
    python benchmarks/net2net.py --seeds 2 --budget 8 # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import in_fresh_process, mean_ci  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "net2net.json"
SPACE = {"blocks": [{"filters": 16, "layers": 1, "stride": 2},
                    {"filters": 24, "layers": 2, "stride": 1},
                    {"filters": 32, "layers": 1, "stride": 1}],
         "ops": ["conv", "sep", "mbconv3", "resnet"], "stem": 16, "head": 64}


def job_spec(seed: int, args: argparse.Namespace, warm: bool) -> dict[str, Any]:
    dataset: dict[str, Any] = {"source": args.dataset, "seed": 0}
    if args.max_samples:
        dataset["max_samples"] = args.max_samples
    options: dict[str, Any] = {"dataset": dataset, "epochs": args.epochs, "lr": 0.05}
    if warm:
        options["warm_start"] = "net2net"
    return {
        "name": f"net2net-{'warm' if warm else 'cold'}-{seed}",
        "space": {"name": "mnasnet", "options": SPACE},
        "agent": {"name": args.agent},
        "evaluator": {"name": "train", "options": options},
        "objectives": [{"metric": "val_acc", "direction": "max"}],
        "budget": {"evaluations": args.budget},
        "executor": {"name": "local", "batch_size": 1},
        "seed": seed,
    }


def run_job(seed: int, args: argparse.Namespace, warm: bool) -> dict[str, Any]:
    import torch

    from agents.base import TrialState
    from search.evaluators.train import TrainingEvaluator
    from search.loop import evaluation_seed, run_search
    from search.sinks import MemorySink
    from search.spec import parse_spec
    from spaces.mnasnet import MnasNetSpace

    torch.set_num_threads(1)
    sink = MemorySink()
    t0 = time.perf_counter()
    summary = run_search(parse_spec(job_spec(seed, args, warm)), sink)
    wall = time.perf_counter() - t0
    done = [t for t in sink.trials if t.state is TrialState.COMPLETE and not t.cached]
    clock, curve, best = 0.0, [], -1.0
    for n, t in enumerate(done, 1):
        clock += float(t.recorded["train_seconds"])
        best = max(best, float(t.metrics["val_acc"]))
        curve.append((round(clock, 3), best, n))
    paired = []
    if warm:
        space = MnasNetSpace(**SPACE)
        scratch = TrainingEvaluator(**{k: v for k, v in job_spec(seed, args, False)
                                       ["evaluator"]["options"].items()})
        for t in done:
            if t.recorded.get("net2net_parent"):
                cold = scratch.evaluate(t.arch, space, seed=evaluation_seed(seed, t.arch_key))
                paired.append((float(t.metrics["val_acc"]), cold.metrics["val_acc"]))
        scratch.close()
    return {
        "seed": seed, "warm": warm, "status": summary.status,
        "evaluations": summary.evaluations, "completed": len(done), "curve": curve,
        "warm_started": sum(1 for t in done if t.recorded.get("net2net_parent")),
        "paired_equal_epochs": paired, "wall_s": round(wall, 1),
        "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }


def time_to_reach(curve: list[tuple[float, float, int]], level: float,
                  column: int = 0) -> float | None:
    """When (column 0: seconds, 2: trainings) the running best first reaches ``level``."""
    for point in curve:
        if point[1] >= level:
            return point[column]
    return None


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agent", default="evolution")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=int, default=40, help="distinct trainings per job")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--dataset", default="digits")
    p.add_argument("--max-samples", type=int, default=None)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    load_start = os.getloadavg()
    rows, runs = [], []
    for seed in range(args.seeds):
        cold = in_fresh_process(run_job, seed, args, False, failed={"seed": seed, "warm": False})
        warm = in_fresh_process(run_job, seed, args, True, failed={"seed": seed, "warm": True})
        runs += [cold, warm]
        if "error" in cold or "error" in warm:
            print(f"seed {seed}: ERROR {cold.get('error') or warm.get('error')}", flush=True)
            continue
        target, total = cold["curve"][-1][1], cold["curve"][-1][0]
        reached = time_to_reach(warm["curve"], target)
        ratio = None if reached is None else reached / total
        reached_n = time_to_reach(warm["curve"], target, 2)
        ratio_n = None if reached_n is None else reached_n / cold["curve"][-1][2]
        diffs = [w - c for w, c in warm["paired_equal_epochs"]]
        rows.append({"seed": seed, "cold_best": target, "warm_best": warm["curve"][-1][1],
                     "cold_s": total, "warm_s": warm["curve"][-1][0],
                     "warm_reached_cold_best_s": reached, "time_ratio": ratio,
                     "trainings_ratio": ratio_n,
                     "warm_started": warm["warm_started"], "equal_epoch_diffs": diffs,
                     "budget_reached": (cold["evaluations"] >= args.budget
                                        and warm["evaluations"] >= args.budget)})
        print(f"seed {seed}: cold best {target:.2f} in {total:.1f} s; warm best "
              f"{warm['curve'][-1][1]:.2f}, reached {target:.2f} at "
              f"{'never' if reached is None else f'{reached:.1f} s'} "
              f"(ratio {'-' if ratio is None else f'{ratio:.2f}'}, in trainings "
              f"{'-' if ratio_n is None else f'{ratio_n:.2f}'}), "
              f"{warm['warm_started']} warm-started", flush=True)
    ratios = [1.0 if r["time_ratio"] is None else r["time_ratio"] for r in rows]
    ratios_n = [1.0 if r["trainings_ratio"] is None else r["trainings_ratio"] for r in rows]
    diffs = [d for r in rows for d in r["equal_epoch_diffs"]]
    best_diffs = [r["warm_best"] - r["cold_best"] for r in rows]
    summary = {"time_ratio": mean_ci(ratios), "trainings_ratio": mean_ci(ratios_n),
               "never_reached": sum(
        r["time_ratio"] is None for r in rows), "equal_epoch_diff": mean_ci(diffs),
        "equal_epoch_pairs": len(diffs), "best_diff": mean_ci(best_diffs),
        "all_budgets_reached": all(r["budget_reached"] for r in rows)}
    print(f"\nprotocol: agent {args.agent}, {args.seeds} seeds, {args.budget} trainings x "
          f"{args.epochs} epoch(s) on {args.dataset}; time = cumulative training seconds")
    print(f"{'measure':44s} {'mean':>8s} {'95% CI +-':>10s}")
    print(f"{'warm time to cold best / cold time':44s} {summary['time_ratio'][0]:8.3f} "
          f"{summary['time_ratio'][1]:10.3f}   (never reached: {summary['never_reached']}, "
          f"counted as 1.0)")
    print(f"{'the same in trainings':44s} {summary['trainings_ratio'][0]:8.3f} "
          f"{summary['trainings_ratio'][1]:10.3f}")
    print(f"{'best val_acc, warm - cold (per seed)':44s} {summary['best_diff'][0]:8.2f} "
          f"{summary['best_diff'][1]:10.2f}")
    print(f"{'val_acc at equal epochs, warm - scratch':44s} "
          f"{summary['equal_epoch_diff'][0]:8.2f} {summary['equal_epoch_diff'][1]:10.2f}   "
          f"({len(diffs)} warm-started candidates)")
    print(f"every job reached its budget: {summary['all_budgets_reached']}")
    report = {"command": " ".join(sys.argv), "space": SPACE, "args": vars(args),
              "summary": summary, "rows": rows, "runs": runs, "load_start": load_start,
              "load_end": os.getloadavg(), "cpus": os.cpu_count(),
              "peak_rss_MiB": max((r.get("peak_rss_MiB", 0) for r in runs), default=0)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
