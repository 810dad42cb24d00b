"""Search on real models: ``mnas`` vs ``random`` on sklearn's digits, equal budgets, many seeds.

Every candidate of the MnasNet space (a compact 3-block skeleton for 8x8 digits by default) is
really trained by the ``train`` evaluator (``--epochs`` epochs, seeded per job and
architecture); the agent sees ``val_acc`` and the predicted PyTorch CPU latency
(``predictor:torch-cpu``). The latency comes from one look-up table built at the start and
shared by every run (each layer measured once, one calibration), so the same architecture has
the same latency in every run and agents are compared on a deterministic accuracy/latency
plane, not on measurement noise.

Reported per agent (mean +- std over seeds, each seed a full job with ``--budget`` distinct
trainings):

- ``best_val_under_target``: the best ``val_acc`` among trials whose latency is at most the
  target (``--target-quantile`` of the latencies of random architectures), and the
  ``test_acc`` of that trial (recorded, never shown to the agent);
- ``hypervolume``: of the (val_acc, latency) points found, reference (10% = chance, the
  slowest sampled latency x 1.1), the same for every run;
- wall seconds and peak resident memory (each job runs in its own process).

    python benchmarks/real_search.py                       # 2 agents x 5 seeds x 48 trainings
    python benchmarks/real_search.py --seeds 2 --budget 8  # smoke test
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import in_fresh_process  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "real_search.json"
BLOCKS = [{"filters": 16, "layers": 1, "stride": 2}, {"filters": 32, "layers": 2, "stride": 2},
          {"filters": 64, "layers": 1, "stride": 1}]
SPACE = {"blocks": BLOCKS, "stem": 16, "head": 64}
INPUT = [1, 8, 8]
LATENCY = "torch_latency_pred_ms"


def predictor_options(table: str, calibration: int) -> dict[str, Any]:
    """The same protocol for the table built here and the jobs' profilers."""
    return {"input_shape": INPUT, "table": table, "calibration_archs": calibration,
            "statistic": "min", "rounds": 20, "repeats": 5}


def build_table(table: str, calibration: int, samples: int) -> dict[str, Any]:
    """Profile the device once: layers of ``samples`` random architectures + calibration.
    Returns the latencies of those architectures (for the target and the reference)."""
    from search.profilers.predictor import LatencyPredictor
    from spaces.mnasnet import MnasNetSpace

    space = MnasNetSpace(**SPACE)
    pred = LatencyPredictor("torch", **predictor_options(table, calibration))
    rng = np.random.default_rng(12345)
    archs = [space.sample(rng) for _ in range(samples)]
    t0 = time.perf_counter()
    units = pred.prefetch(archs, space)
    coef = pred.coefficients(space)
    lat = np.asarray([pred.predict(a, space) for a in archs])
    return {"units": units, "coef": coef, "seconds": round(time.perf_counter() - t0, 1),
            "latencies": lat.tolist()}


def job_spec(agent: str, seed: int, args: argparse.Namespace, target: float) -> dict[str, Any]:
    return {
        "name": f"real-{agent}-{seed}",
        "space": {"name": "mnasnet", "options": SPACE},
        "agent": {"name": agent, "options": ({"batch_size": args.controller_batch}
                                             if agent == "mnas" else {})},
        "evaluator": {"name": "train", "options": {
            "dataset": {"source": "digits"}, "epochs": args.epochs, "batch_size": 64,
            "lr": 0.1}},
        "profilers": [{"name": "predictor:torch-cpu",
                       "options": predictor_options(args.table, args.calibration)}],
        "objectives": [{"metric": "val_acc", "direction": "max"},
                       {"metric": LATENCY, "direction": "min"}],
        # random ignores it; mnas with two objectives draws its own target per proposal
        "reward": {"kind": "mnas", "accuracy": "val_acc", "latency": LATENCY,
                   "target": target},
        "budget": {"evaluations": args.budget},
        "seed": seed,
    }


def run_job(agent: str, seed: int, args: argparse.Namespace, target: float,
            reference: list[float]) -> dict[str, Any]:
    """One job in this (fresh) process: trials, best under target, hypervolume, cost."""
    import torch

    from agents.base import TrialState
    from search.loop import run_search
    from search.pareto import hypervolume
    from search.sinks import MemorySink
    from search.spec import parse_spec

    torch.set_num_threads(1)
    sink = MemorySink()
    t0 = time.perf_counter()
    summary = run_search(parse_spec(job_spec(agent, seed, args, target)), sink)
    wall = time.perf_counter() - t0
    done = [t for t in sink.trials if t.state is TrialState.COMPLETE and not t.cached]
    pts = [(t.metrics["val_acc"], t.metrics[LATENCY]) for t in done]
    under = [t for t in done if t.metrics[LATENCY] <= target]
    best = max(under, key=lambda t: t.metrics["val_acc"], default=None)
    return {
        "agent": agent, "seed": seed, "status": summary.status,
        "evaluations": summary.evaluations, "proposals": summary.proposals,
        "completed": len(done),
        "best_val_under_target": best.metrics["val_acc"] if best else None,
        "best_test_under_target": best.recorded["test_acc"] if best else None,
        "best_latency_ms": best.metrics[LATENCY] if best else None,
        "best_arch": best.arch if best else None,
        "under_target": len(under),
        "hypervolume": hypervolume(pts, reference, ["max", "min"]) if pts else 0.0,
        "wall_s": round(wall, 1),
        "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "points": pts,
    }


def summarize(runs: list[dict[str, Any]], key: str) -> dict[str, float | None]:
    vals = [r[key] for r in runs if r.get(key) is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(np.mean(vals)), "std": float(np.std(vals)), "n": len(vals)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--agents", default="mnas,random")
    p.add_argument("--seeds", type=int, default=5)
    p.add_argument("--budget", type=int, default=48, help="distinct trainings per job")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--controller-batch", type=int, default=4,
                   help="mnas: trials per policy update")
    p.add_argument("--calibration", type=int, default=20)
    p.add_argument("--table-samples", type=int, default=300,
                   help="random architectures whose layers are profiled before the search")
    p.add_argument("--target-quantile", type=float, default=0.3)
    p.add_argument("--table", default=None, help="default: a fresh temporary file")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    args.table = args.table or str(Path(tempfile.mkdtemp(prefix="lightsearch-real-")) /
                                   "torch.json")
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    table = build_table(args.table, args.calibration, args.table_samples)
    lat = np.asarray(table.pop("latencies"))
    target = float(np.quantile(lat, args.target_quantile))
    reference = [10.0, float(lat.max() * 1.1)]
    print(f"table: {table['units']} layers + calibration in {table['seconds']} s; latency "
          f"target {target:.3f} ms (q{args.target_quantile:g} of {len(lat)} random archs, "
          f"{lat.min():.3f}-{lat.max():.3f} ms); HV reference {reference}", flush=True)
    agents = args.agents.split(",")
    runs: list[dict[str, Any]] = []
    for seed in range(args.seeds):
        for agent in agents:
            r = in_fresh_process(run_job, agent, seed, args, target, reference,
                                 failed={"agent": agent, "seed": seed})
            runs.append(r)
            if "error" in r:
                print(f"  {agent} seed {seed}: ERROR {r['error']}", flush=True)
                continue
            print(f"  {agent:7s} seed {seed}: best val under target "
                  f"{r['best_val_under_target']} (test {r['best_test_under_target']}), "
                  f"HV {r['hypervolume']:.2f}, {r['completed']} trained, {r['wall_s']} s, "
                  f"peak {r['peak_rss_MiB']} MiB", flush=True)
    table_rows = {}
    for agent in agents:
        mine = [r for r in runs if r["agent"] == agent and "error" not in r]
        table_rows[agent] = {k: summarize(mine, k) for k in (
            "best_val_under_target", "best_test_under_target", "hypervolume", "under_target",
            "wall_s", "peak_rss_MiB")}
    print(f"\n{'agent':8s} {'best val<=T':>14s} {'its test':>14s} {'hypervolume':>14s} "
          f"{'#<=T':>6s} {'wall s':>8s} {'peak MiB':>9s}   ({args.seeds} seeds, "
          f"{args.budget} trainings x {args.epochs} epochs)")
    for agent, s in table_rows.items():
        def fmt(k: str, d: int = 2, s: dict = s) -> str:
            v = s[k]
            if v["mean"] is None:
                return "n/a"
            # seeds whose job found nothing under the target are left out: say how many
            n = f"({v['n']})" if v["n"] < args.seeds else ""
            return f"{v['mean']:.{d}f}+-{v['std']:.{d}f}{n}"
        print(f"{agent:8s} {fmt('best_val_under_target'):>14s} "
              f"{fmt('best_test_under_target'):>14s} {fmt('hypervolume'):>14s} "
              f"{fmt('under_target', 1):>6s} {fmt('wall_s', 0):>8s} {fmt('peak_rss_MiB', 0):>9s}")
    report = {
        "command": " ".join(sys.argv), "dataset": "sklearn digits (1,797 8x8)",
        "space": SPACE, "epochs": args.epochs, "budget": args.budget, "seeds": args.seeds,
        "latency": {"metric": LATENCY, "target_ms": target, "quantile": args.target_quantile,
                    "table": table, "hv_reference": reference},
        "summary": table_rows, "runs": runs, "wall_s": round(time.perf_counter() - t0, 1),
        "load_start": load_start, "load_end": os.getloadavg(), "cpus": os.cpu_count(),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
