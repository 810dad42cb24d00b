"""Search quality on NAS-Bench-201: every agent through the same search loop, many seeds.

Single objective (the NAS-Bench-201 protocol): the agent sees ``val_acc`` (or the cheap
``val_acc_12ep``); we report mean +- std over seeds of the ``test_acc`` of the architecture
with the best signal after 50/100/200/500 distinct evaluations (repeats answered from the
job's cache cost no budget). Multi-objective: ``val_acc`` against a device's latency (the
HW-NAS-Bench look-up profilers); we report the hypervolume of the front found divided by the
hypervolume of the true front over all rows, reference point (worst accuracy, worst latency)
of the table; rows without a measurement are infeasible. Agent overhead: wall milliseconds
spent in ``ask`` + ``tell`` per proposal, and the peak memory a run adds to its process.

A run with the largest budget answers every smaller budget too: the loop asks one proposal
at a time, so a job with budget B is exactly the first B evaluations of the longer job, cut
at ``cap x B`` proposals (``--cap``, default 10; the loop's own default is 50): an agent that
keeps proposing architectures it has already seen ends its job there.

    python -m benchmarks.search_quality                      # everything (long)
    python -m benchmarks.search_quality --agents mnas,random --seeds 10 --suites val_acc
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import platform
import resource
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(ROOT))

AGENTS = ("random", "evolution", "reinforce", "mnas", "tpe", "nsga2")
SO_BUDGETS = (50, 100, 200, 500)
MO_BUDGETS = (100, 200, 500)
RESULTS = ROOT / "benchmarks" / "results" / "search_quality.json"


@dataclass(frozen=True)
class Suite:
    name: str
    signal: str
    device: str | None = None  # None: single objective

    @property
    def latency(self) -> str | None:
        return f"{self.device}_latency" if self.device else None


SUITES = {
    "val_acc": Suite("val_acc", "val_acc"),
    "val_acc_12ep": Suite("val_acc_12ep", "val_acc_12ep"),
    "pixel3": Suite("pixel3", "val_acc", "pixel3"),
    "edgegpu": Suite("edgegpu", "val_acc", "edgegpu"),
}

#: NAS-Bench-201 paper (Dong & Yang 2020, table 5, CIFAR-10 test accuracy, 12-epoch signal,
#: a time budget rather than an evaluation count).
PAPER = {"random": "93.70 +- 0.36", "evolution": "93.92 +- 0.30 (REA)",
         "reinforce": "93.85 +- 0.37", "bohb": "93.61 +- 0.52", "optimum": "94.37"}
#: Orientation figures on val_acc at 100 / 200 queries, every query counted (repeats too).
ORIENTATION = {"tpe": (94.18, 94.25), "evolution": (94.08, 94.23),
               "reinforce": (93.87, 94.10), "random": (93.79, 93.87)}
ORIENTATION_MO = {"nsga2": {"pixel3": {200: 0.991, 500: 0.996}}}


def job_spec(suite: Suite, agent: str, seed: int, budget: int, cap: int,
             options: dict[str, Any] | None = None) -> dict[str, Any]:
    objectives = [{"metric": suite.signal, "direction": "max"}]
    profilers = []
    if suite.device:
        objectives.append({"metric": suite.latency, "direction": "min"})
        profilers.append({"name": f"lut:{suite.device}"})
    return {
        "name": f"bench-{suite.name}-{agent}-{seed}",
        "space": {"name": "nb201"},
        "agent": {"name": agent, "options": options or {}},
        "evaluator": {"name": "tabular",
                      "options": {"signal": suite.signal, "record": ["test_acc"]}},
        "profilers": profilers,
        "objectives": objectives,
        "budget": {"evaluations": budget, "max_proposals": cap * budget},
        "executor": {"name": "local", "batch_size": 1},
        "seed": seed,
    }


# ---- one run (in a worker process) --------------------------------------------------------
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(suite_name: str, agent: str, seed: int, budget: int,
            cap: int = 10, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One job through ``search.loop``; returns per-trial data small enough to ship back."""
    from search.loop import SearchLoop
    from search.sinks import MemorySink
    from search.spec import parse_spec

    suite = SUITES[suite_name]
    spec = parse_spec(job_spec(suite, agent, seed, budget, cap, options))
    sink = MemorySink()
    loop = SearchLoop(spec, sink)
    spent = [0.0]
    for method in ("ask", "tell"):
        inner = getattr(loop.agent, method)

        def timed(*args: Any, _inner: Any = inner) -> Any:
            t = time.perf_counter()
            try:
                return _inner(*args)
            finally:
                spent[0] += time.perf_counter() - t

        setattr(loop.agent, method, timed)
    start = time.perf_counter()
    summary = loop.run()
    wall = time.perf_counter() - start
    trials = [
        (i, r.evaluation_index if not r.cached else None, r.state.value,
         r.metrics.get(suite.signal), r.metrics.get(suite.latency) if suite.latency else None,
         r.recorded.get("test_acc"))
        for i, r in enumerate(sink.trials)
    ]
    return {
        "suite": suite_name, "agent": agent, "seed": seed, "status": summary.status,
        "evaluations": summary.evaluations, "proposals": summary.proposals,
        "agent_ms_per_proposal": 1000.0 * spent[0] / max(1, summary.proposals),
        "wall_s": wall, "trials": trials,
    }


def _rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def memory_probe(agent: str, budget: int) -> dict[str, Any]:
    """Memory one run needs, in a fresh process warmed up with a tiny random job: the peak of
    Python allocations (tracemalloc; torch tensors are not seen by it) and the growth of the
    resident set over the run (tensors included)."""
    import gc
    import tracemalloc

    _init_worker()
    run_one("val_acc", "random", 0, 5)  # imports, tables, caches
    gc.collect()
    rss0 = _rss_mb()
    tracemalloc.start()
    run_one("val_acc", agent, 0, budget)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"python_peak_mb": peak, "rss_growth_mb": _rss_mb() - rss0}


# ---- scoring --------------------------------------------------------------------------------
def best_test_at(trials: Sequence[tuple], budget: int, cap: int) -> float | None:
    """test_acc of the best-signal architecture among the first ``budget`` evaluations
    (and the first ``cap * budget`` proposals, where a job with that budget stops)."""
    best: tuple[float, float] | None = None
    for i, ev, state, value, _lat, test in trials:
        if i >= cap * budget:
            break
        if ev is None or ev > budget or state != "complete" or value is None:
            continue
        if best is None or value > best[0]:
            best = (value, test)
    return None if best is None else float(best[1])


class TrueFront:
    """The table's true hypervolume for one device (reference: worst accuracy, latency)."""

    def __init__(self, suite: Suite) -> None:
        import pandas as pd

        from search.tables import NB201_ACCURACY_FILE, nb201_device_table

        accuracy = pd.read_csv(NB201_ACCURACY_FILE, usecols=["arch_str", suite.signal])
        device = nb201_device_table()
        acc = accuracy[suite.signal].to_numpy(dtype=float)
        rows = [device.position(k) for k in accuracy["arch_str"]]  # align by architecture
        lat = np.asarray(device.column(suite.latency), dtype=float)[rows]
        ok = np.isfinite(acc) & np.isfinite(lat)
        self.reference = (float(acc[ok].min()), float(lat[ok].max()))
        self.rows = int(ok.sum())
        self.hv = self.volume(np.column_stack([acc[ok], lat[ok]]))

    def volume(self, points: np.ndarray) -> float:
        from search.pareto import hypervolume

        if len(points) == 0:
            return 0.0
        return float(hypervolume(points, self.reference, ["max", "min"]))

    def ratio_at(self, trials: Sequence[tuple], budget: int, cap: int) -> float:
        pts = [(s, lat) for i, ev, state, s, lat, _ in trials
               if i < cap * budget and ev is not None and ev <= budget and state == "complete"
               and s is not None and lat is not None]
        return self.volume(np.array(pts, dtype=float).reshape(-1, 2)) / self.hv


def summarize(values: list[float]) -> dict[str, Any]:
    arr = np.array([v for v in values if v is not None], dtype=float)
    return {"mean": float(arr.mean()) if len(arr) else math.nan,
            "std": float(arr.std()) if len(arr) else math.nan, "n": int(len(arr)),
            "values": [round(float(v), 6) for v in arr]}


# ---- driver ---------------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
    """``100`` (seeds 0..99), ``0-99``, or ``1,2,5``."""
    if "," in text:
        return [int(s) for s in text.split(",") if s]
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return list(range(int(text)))


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", default=",".join(AGENTS))
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--seeds", default="100", help="count (0..N-1), range a-b, or list")
    ap.add_argument("--budgets", default=None,
                    help=f"comma list; default {SO_BUDGETS} (single) / {MO_BUDGETS} (multi)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--cap", type=int, default=10,
                    help="a job also stops after cap x budget proposals (repeats included)")
    ap.add_argument("--no-memory", action="store_true", help="skip the peak-memory probes")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--merge", action="store_true",
                    help="keep the other suites already in --out (run suites in parts)")
    ap.add_argument("--options", default="{}",
                    help="JSON agent options for every agent run (e.g. to tune mnas)")
    ap.add_argument("--show", metavar="JSON", help="print a saved report; run nothing")
    args = ap.parse_args(argv)
    if args.show:
        print_report(json.loads(Path(args.show).read_text()))
        return 0

    agents = [a for a in args.agents.split(",") if a]
    suites = [SUITES[s] for s in args.suites.split(",") if s]
    seeds = parse_seeds(args.seeds)
    bad = [a for a in agents if a not in AGENTS]
    if bad:
        ap.error(f"unknown agent(s) {bad}; valid: {', '.join(AGENTS)}")
    budgets = {s.name: (tuple(int(b) for b in args.budgets.split(",")) if args.budgets
                        else (MO_BUDGETS if s.device else SO_BUDGETS)) for s in suites}

    options = json.loads(args.options)
    tasks = [(s.name, a, seed, max(budgets[s.name]), args.cap, options) for s in suites
             for a in agents for seed in seeds]
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # leave through Pool's cleanup
    started = time.time()
    ctx = mp.get_context("spawn")
    with ctx.Pool(args.workers, initializer=_init_worker) as pool:
        runs = []
        for k, res in enumerate(pool.imap_unordered(_run_task, tasks, chunksize=1), 1):
            runs.append(res)
            if k % max(1, len(tasks) // 20) == 0 or k == len(tasks):
                print(f"  {k}/{len(tasks)} runs, {time.time() - started:.0f} s", flush=True)
        memory = {}
        if not args.no_memory:
            probe_budget = max(max(b) for b in budgets.values())
            for a, res in zip(agents, pool.starmap(memory_probe,
                                                   [(a, probe_budget) for a in agents]),
                              strict=True):
                memory[a] = res

    report = build_report(runs, suites, agents, seeds, budgets, memory, args.cap)
    report["config"]["agent_options"] = options
    report["elapsed_s"] = round(time.time() - started, 1)
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.exists():  # keep suites measured by an earlier invocation
        earlier = json.loads(out.read_text())
        report["suites"] = {**earlier.get("suites", {}), **report["suites"]}
        report["earlier_config"] = earlier.get("config")
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


def _run_task(task: tuple[str, str, int, int, int, dict[str, Any]]) -> dict[str, Any]:
    return run_one(*task)


def build_report(runs: list[dict[str, Any]], suites: list[Suite], agents: list[str],
                 seeds: list[int], budgets: dict[str, tuple[int, ...]],
                 memory: dict[str, Any], cap: int) -> dict[str, Any]:
    by = {(r["suite"], r["agent"], r["seed"]): r for r in runs}
    report: dict[str, Any] = {
        "config": {"agents": agents, "seeds": [min(seeds), max(seeds), len(seeds)],
                   "budgets": budgets, "proposal_cap": cap,
                   "python": platform.python_version(),
                   "machine": platform.machine()},
        "suites": {}, "overhead": {}, "paper": PAPER, "orientation": ORIENTATION,
        "orientation_mo": ORIENTATION_MO,
    }
    for suite in suites:
        front = TrueFront(suite) if suite.device else None
        table: dict[str, Any] = {}
        for a in agents:
            rs = [by[(suite.name, a, s)] for s in seeds]
            row = {}
            for b in budgets[suite.name]:
                vals = [front.ratio_at(r["trials"], b, cap) if front else
                        best_test_at(r["trials"], b, cap) for r in rs]
                row[str(b)] = summarize(vals)
            row["proposals_per_evaluation"] = float(np.mean(
                [r["proposals"] / max(1, r["evaluations"]) for r in rs]))
            row["statuses"] = sorted({r["status"] for r in rs})
            table[a] = row
        entry: dict[str, Any] = {"metric": "hv_ratio" if front else "test_acc",
                                 "signal": suite.signal, "agents": table}
        if front:
            entry.update(device=suite.device, reference=front.reference,
                         true_hv=front.hv, feasible_rows=front.rows)
        report["suites"][suite.name] = entry
    for a in agents:
        rs = [r for r in runs if r["agent"] == a]
        report["overhead"][a] = {
            "ms_per_ask_tell": float(np.mean([r["agent_ms_per_proposal"] for r in rs])),
            **memory.get(a, {}),
        }
    return report


def print_report(report: dict[str, Any]) -> None:
    for name, entry in report["suites"].items():
        agents = entry["agents"]
        budgets = [k for k in next(iter(agents.values())) if k.isdigit()]
        if entry["metric"] == "test_acc":
            print(f"\n## {name}: test_acc (%) of the best-{entry['signal']} architecture, "
                  "mean +- std over seeds, by distinct evaluations")
            fmt = "{:.2f} +- {:.2f}"
        else:
            print(f"\n## {name}: hypervolume ratio (found / true front of "
                  f"{entry['feasible_rows']} rows), val_acc vs {entry['device']} latency")
            fmt = "{:.4f} +- {:.4f}"
        print("| agent | " + " | ".join(budgets) + " | proposals/eval |")
        print("|---" * (len(budgets) + 2) + "|")
        for a, row in agents.items():
            cells = [fmt.format(row[b]["mean"], row[b]["std"]) for b in budgets]
            print(f"| {a} | " + " | ".join(cells) + f" | {row['proposals_per_evaluation']:.1f} |")
        if entry["metric"] == "test_acc":
            print("paper (NB201, 12-epoch signal, time budget): " + ", ".join(
                f"{k} {v}" for k, v in report["paper"].items()))
            print("orientation (val_acc, 100 / 200 queries, repeats counted): " + ", ".join(
                f"{k} {a:.2f} / {b:.2f}" for k, (a, b) in report["orientation"].items()))
        else:
            if entry["device"] == "pixel3":
                print("orientation: nsga2 0.991 / 0.996 at 200 / 500")
            if "mnas" in agents and "nsga2" in agents:
                print("gap (1 - ratio), mnas vs nsga2: " + ", ".join(
                    f"{b}: {1 - agents['mnas'][b]['mean']:.4f} vs "
                    f"{1 - agents['nsga2'][b]['mean']:.4f}" for b in budgets))
    print("\n## agent overhead")
    print("| agent | ms per ask+tell | Python peak (MB) | RSS growth (MB) |")
    print("|---|---|---|---|")
    for a, o in report["overhead"].items():
        py = f"{o['python_peak_mb']:.1f}" if "python_peak_mb" in o else "-"
        rss = f"{o['rss_growth_mb']:.1f}" if "rss_growth_mb" in o else "-"
        print(f"| {a} | {o['ms_per_ask_tell']:.2f} | {py} | {rss} |")


if __name__ == "__main__":
    raise SystemExit(main())
