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
at the loop's default proposal cap of ``50 x B`` (repeats included): a job that stops there
ends ``exhausted``. Every cell reports the distinct evaluations its seeds reached and is
marked ``*`` when a seed fell short of the budget (its best so far is scored). Agents are
compared with mnas by paired per-seed differences (mean, standard error, 95% t interval).

A user's own table: ``--table CSV --signal COL --report COL`` (architectures keyed by
``arch_str`` in NAS-Bench-201 notation) and, for a multi-objective suite, ``--device
CSV:COL`` (a latency column, minimized; the true front is computed from the two tables).

    python -m benchmarks.search_quality                      # everything (long)
    python -m benchmarks.search_quality --agents mnas,random --seeds 10 --suites val_acc
    python -m benchmarks.search_quality --table mine.csv --signal val --report test \
        --device lat.csv:phone_ms --seeds 20
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

from benchmarks.common import time_agent  # noqa: E402

AGENTS = ("random", "evolution", "reinforce", "mnas", "tpe", "nsga2", "gp", "smac")
CAP = 50  # the loop's default proposal cap per evaluation of budget (search.spec)
SO_BUDGETS = (50, 100, 200, 500)
MO_BUDGETS = (100, 200, 500)
RESULTS = ROOT / "benchmarks" / "results" / "search_quality.json"


@dataclass(frozen=True)
class Suite:
    name: str
    signal: str
    device: str | None = None  # None: single objective; else a HW-NAS-Bench device (lut:)
    table: str = "nb201"  # the evaluator's table: "nb201" or a CSV path
    report: str = "test_acc"  # recorded column scored for the returned architecture
    device_csv: str | None = None  # a user's latency CSV (keyed by arch_str) ...
    device_column: str | None = None  # ... and its column

    @property
    def latency(self) -> str | None:
        if self.device_column:
            return self.device_column
        return f"{self.device}_latency" if self.device else None

    @property
    def multi(self) -> bool:
        return self.latency is not None


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


def job_spec(suite: Suite, agent: str, seed: int, budget: int,
             options: dict[str, Any] | None = None) -> dict[str, Any]:
    """The job every agent runs: the default proposal cap, the job's default reward. On a
    two-objective suite mnas runs in its Pareto mode (``pareto: true``), as a user would."""
    objectives = [{"metric": suite.signal, "direction": "max"}]
    if suite.multi and agent == "mnas":
        options = {"pareto": True, **(options or {})}
    profilers: list[dict[str, Any]] = []
    if suite.multi:
        objectives.append({"metric": suite.latency, "direction": "min"})
        profilers.append({"name": "csv", "options": {"path": suite.device_csv,
                                                     "columns": [suite.device_column]}}
                         if suite.device_csv else {"name": f"lut:{suite.device}"})
    return {
        "name": f"bench-{suite.name}-{agent}-{seed}",
        "space": {"name": "nb201"},
        "agent": {"name": agent, "options": options or {}},
        "evaluator": {"name": "tabular",
                      "options": {"table": suite.table, "signal": suite.signal,
                                  "record": [suite.report]}},
        "profilers": profilers,
        "objectives": objectives,
        "budget": {"evaluations": budget},
        "executor": {"name": "local", "batch_size": 1},
        "seed": seed,
    }


# ---- one run (in a worker process) --------------------------------------------------------
def _init_worker() -> None:
    import torch

    torch.set_num_threads(1)


def run_one(suite: Suite, agent: str, seed: int, budget: int,
            options: dict[str, Any] | None = None) -> dict[str, Any]:
    """One job through ``search.loop``; returns per-trial data small enough to ship back."""
    from search.loop import SearchLoop
    from search.sinks import MemorySink
    from search.spec import parse_spec

    spec = parse_spec(job_spec(suite, agent, seed, budget, options))
    assert spec.max_proposals == CAP * budget, "the loop's default cap changed"
    sink = MemorySink()
    loop = SearchLoop(spec, sink)
    spent = time_agent(loop.agent)
    start = time.perf_counter()
    summary = loop.run()
    wall = time.perf_counter() - start
    trials = [
        (i, r.evaluation_index if not r.cached else None, r.state.value,
         r.metrics.get(suite.signal), r.metrics.get(suite.latency) if suite.latency else None,
         r.recorded.get(suite.report))
        for i, r in enumerate(sink.trials)
    ]
    return {
        "suite": suite.name, "agent": agent, "seed": seed, "status": summary.status,
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
    run_one(SUITES["val_acc"], "random", 0, 5)  # imports, tables, caches
    gc.collect()
    rss0 = _rss_mb()
    tracemalloc.start()
    run_one(SUITES["val_acc"], agent, 0, budget)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"python_peak_mb": peak, "rss_growth_mb": _rss_mb() - rss0}


# ---- scoring --------------------------------------------------------------------------------
def reached_at(trials: Sequence[tuple], budget: int) -> int:
    """Distinct evaluations a job with this budget reaches (it stops at ``CAP * budget``
    proposals)."""
    evs = [ev for i, ev, *_ in trials if ev is not None and i < CAP * budget]
    return min(budget, max(evs, default=0))


def best_at(trials: Sequence[tuple], budget: int) -> tuple[float, float] | None:
    """(signal, reported column) of the best-signal architecture among the first ``budget``
    evaluations (and the first ``CAP * budget`` proposals, where a job with that budget
    stops)."""
    best: tuple[float, float] | None = None
    for i, ev, state, value, _lat, test in trials:
        if i >= CAP * budget:
            break
        if ev is None or ev > budget or state != "complete" or value is None:
            continue
        if best is None or value > best[0]:
            best = (value, test)
    return best


def best_test_at(trials: Sequence[tuple], budget: int) -> float | None:
    """The reported column of ``best_at``'s architecture."""
    best = best_at(trials, budget)
    return None if best is None else float(best[1])


class TrueFront:
    """The table's true hypervolume for one device (reference: worst accuracy, latency)."""

    def __init__(self, suite: Suite) -> None:
        import pandas as pd

        from search.tables import NB201_ACCURACY_FILE, nb201_device_table, read_table

        table = NB201_ACCURACY_FILE if suite.table == "nb201" else suite.table
        accuracy = pd.read_csv(table, usecols=["arch_str", suite.signal])
        device = read_table(suite.device_csv) if suite.device_csv else nb201_device_table()
        acc = accuracy[suite.signal].to_numpy(dtype=float)
        keys = [k for k in accuracy["arch_str"]]
        present = np.array([k in device for k in keys])
        rows = [device.position(k) for k, ok in zip(keys, present, strict=True) if ok]
        lat = np.full(len(keys), np.nan)  # align by architecture; absent rows infeasible
        lat[present] = np.asarray(device.column(suite.latency), dtype=float)[rows]
        ok = np.isfinite(acc) & np.isfinite(lat)
        self.reference = (float(acc[ok].min()), float(lat[ok].max()))
        self.rows = int(ok.sum())
        self.hv = self.volume(np.column_stack([acc[ok], lat[ok]]))

    def volume(self, points: np.ndarray) -> float:
        from search.pareto import hypervolume

        if len(points) == 0:
            return 0.0
        return float(hypervolume(points, self.reference, ["max", "min"]))

    def ratio_at(self, trials: Sequence[tuple], budget: int) -> float:
        pts = [(s, lat) for i, ev, state, s, lat, _ in trials
               if i < CAP * budget and ev is not None and ev <= budget and state == "complete"
               and s is not None and lat is not None]
        return self.volume(np.array(pts, dtype=float).reshape(-1, 2)) / self.hv


def summarize(values: list[float | None]) -> dict[str, Any]:
    arr = np.array([v for v in values if v is not None], dtype=float)
    return {"mean": float(arr.mean()) if len(arr) else math.nan,
            "std": float(arr.std()) if len(arr) else math.nan, "n": int(len(arr)),
            "values": [round(float(v), 6) for v in arr]}


def paired(ours: Sequence[float | None], theirs: Sequence[float | None]) -> dict[str, Any]:
    """Mean of the per-seed differences ``ours - theirs``, its standard error and the 95%
    t interval (seeds where either value is missing are left out)."""
    from scipy import stats

    d = np.array([a - b for a, b in zip(ours, theirs, strict=True)
                  if a is not None and b is not None], dtype=float)
    if len(d) < 2:
        return {"mean": math.nan, "se": math.nan, "ci95": [math.nan, math.nan], "n": len(d)}
    se = float(d.std(ddof=1) / math.sqrt(len(d)))
    half = float(stats.t.ppf(0.975, len(d) - 1)) * se
    return {"mean": float(d.mean()), "se": se,
            "ci95": [float(d.mean() - half), float(d.mean() + half)], "n": int(len(d))}


# ---- driver ---------------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
    """``100`` (seeds 0..99), ``0-99``, or ``1,2,5``."""
    if "," in text:
        return [int(s) for s in text.split(",") if s]
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return list(range(int(text)))


def user_suite(args: argparse.Namespace) -> Suite:
    """A suite on a user's table (``--table/--signal/--report``, optional ``--device``)."""
    from search.tables import read_header

    columns = read_header(args.table)
    for col in ("arch_str", args.signal, args.report):
        if col not in columns:
            raise SystemExit(f"--table {args.table}: no column {col!r}; columns: {columns}")
    device_csv = device_column = None
    if args.device:
        device_csv, _, device_column = args.device.rpartition(":")
        if not device_csv or device_column not in read_header(device_csv):
            raise SystemExit(f"--device {args.device}: expected CSV:COLUMN with an existing "
                             "column (and an arch_str key)")
    return Suite("user", args.signal, table=str(Path(args.table).resolve()),
                 report=args.report,
                 device_csv=str(Path(device_csv).resolve()) if device_csv else None,
                 device_column=device_column)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agents", default=",".join(AGENTS))
    ap.add_argument("--suites", default=",".join(SUITES))
    ap.add_argument("--seeds", default="100", help="count (0..N-1), range a-b, or list")
    ap.add_argument("--budgets", default=None,
                    help=f"comma list; default {SO_BUDGETS} (single) / {MO_BUDGETS} (multi)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--table", help="a user's accuracy CSV (arch_str key): replaces --suites")
    ap.add_argument("--signal", default="val_acc", help="--table: column the agents see")
    ap.add_argument("--report", default="test_acc", help="--table: column reported")
    ap.add_argument("--device", metavar="CSV:COL",
                    help="--table: latency column (minimized) for a two-objective suite")
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
    suites = ([user_suite(args)] if args.table
              else [SUITES[s] for s in args.suites.split(",") if s])
    seeds = parse_seeds(args.seeds)
    if not seeds:
        ap.error(f"--seeds {args.seeds!r} names no seed (a count >= 1, a range a-b, or a list)")
    bad = [a for a in agents if a not in AGENTS]
    if bad:
        ap.error(f"unknown agent(s) {bad}; valid: {', '.join(AGENTS)}")
    budgets = {s.name: (tuple(int(b) for b in args.budgets.split(",")) if args.budgets
                        else (MO_BUDGETS if s.multi else SO_BUDGETS)) for s in suites}

    options = json.loads(args.options)
    tasks = [(s, a, seed, max(budgets[s.name]), options) for s in suites
             for a in agents for seed in seeds]
    print_protocol(suites, agents, seeds, budgets, options)
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

    report = build_report(runs, suites, agents, seeds, budgets, memory)
    report["config"]["agent_options"] = options
    report["elapsed_s"] = round(time.time() - started, 1)
    print_report(report)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.merge and out.exists():  # keep suites measured by an earlier invocation
        earlier = json.loads(out.read_text())
        report["suites"] = {**earlier.get("suites", {}), **report["suites"]}
        report["overhead"] = {**earlier.get("overhead", {}), **report["overhead"]}
        report["earlier_config"] = earlier.get("config")
    out.write_text(json.dumps(report, indent=1))
    print(f"\nwrote {out}")
    return 0


def print_protocol(suites: list[Suite], agents: list[str], seeds: list[int],
                   budgets: dict[str, tuple[int, ...]], options: dict[str, Any]) -> None:
    print("# protocol")
    print(f"agents: {', '.join(agents)}; seeds {seeds[0]}..{seeds[-1]} ({len(seeds)}); "
          f"one run per seed at the largest budget, read at each budget; proposal cap "
          f"{CAP} x budget (the loop's default); agent options: {options or 'defaults'}")
    for s in suites:
        what = (f"hypervolume ratio of {s.signal} (max) vs {s.latency} (min) to the true front"
                if s.multi else f"{s.report} of the best-{s.signal} architecture")
        print(f"suite {s.name}: table {s.table}, agents see {s.signal}; reported: {what}; "
              f"budgets {budgets[s.name]} distinct evaluations")


def _run_task(task: tuple[Suite, str, int, int, dict[str, Any]]) -> dict[str, Any]:
    return run_one(*task)


def build_report(runs: list[dict[str, Any]], suites: list[Suite], agents: list[str],
                 seeds: list[int], budgets: dict[str, tuple[int, ...]],
                 memory: dict[str, Any]) -> dict[str, Any]:
    by = {(r["suite"], r["agent"], r["seed"]): r for r in runs}
    report: dict[str, Any] = {
        "config": {"agents": agents, "seeds": [min(seeds), max(seeds), len(seeds)],
                   "budgets": budgets, "proposal_cap": CAP,
                   "python": platform.python_version(),
                   "machine": platform.machine()},
        "suites": {}, "overhead": {}, "paper": PAPER, "orientation": ORIENTATION,
        "orientation_mo": ORIENTATION_MO,
    }
    for suite in suites:
        front = TrueFront(suite) if suite.multi else None
        table: dict[str, Any] = {}
        scores: dict[str, dict[int, list[float | None]]] = {}
        for a in agents:
            rs = [by[(suite.name, a, s)] for s in seeds]
            row: dict[str, Any] = {}
            scores[a] = {}
            for b in budgets[suite.name]:
                vals = [front.ratio_at(r["trials"], b) if front else
                        best_test_at(r["trials"], b) for r in rs]
                scores[a][b] = vals
                reached = [reached_at(r["trials"], b) for r in rs]
                short = [s for s, n in zip(seeds, reached, strict=True) if n < b]
                row[str(b)] = {**summarize(vals),
                               "seeds": [s for s, v in zip(seeds, vals, strict=True)
                                         if v is not None],
                               "reached_min": min(reached),
                               "reached_mean": float(np.mean(reached)), "short_seeds": short}
            row["proposals_per_evaluation"] = float(np.mean(
                [r["proposals"] / max(1, r["evaluations"]) for r in rs]))
            row["statuses"] = sorted({r["status"] for r in rs})
            table[a] = row
        if "mnas" in agents:
            for a in agents:
                if a != "mnas":
                    table[a]["mnas_minus_this"] = {
                        str(b): paired(scores["mnas"][b], scores[a][b])
                        for b in budgets[suite.name]}
        entry: dict[str, Any] = {"metric": "hv_ratio" if front else suite.report,
                                 "signal": suite.signal, "table": suite.table,
                                 "agents": table}
        if front:
            entry.update(device=suite.latency, reference=front.reference,
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
        if entry["metric"] != "hv_ratio":
            print(f"\n## {name}: {entry['metric']} of the best-{entry['signal']} architecture, "
                  "mean +- std over seeds, by distinct evaluations (* = a seed fell short)")
            fmt, dfmt = "{:.2f} +- {:.2f}", "{:+.3f} +- {:.3f} [{:+.3f}, {:+.3f}]"
        else:
            print(f"\n## {name}: hypervolume ratio (found / true front of "
                  f"{entry['feasible_rows']} rows), {entry['signal']} vs {entry['device']} "
                  "(* = a seed fell short)")
            fmt, dfmt = "{:.4f} +- {:.4f}", "{:+.4f} +- {:.4f} [{:+.4f}, {:+.4f}]"
        print("| agent | " + " | ".join(budgets) + " | min reached | proposals/eval |")
        print("|---" * (len(budgets) + 3) + "|")
        for a, row in agents.items():
            cells = [fmt.format(row[b]["mean"], row[b]["std"])
                     + ("*" if row[b]["short_seeds"] else "") for b in budgets]
            reached = "/".join(str(row[b]["reached_min"]) for b in budgets)
            print(f"| {a} | " + " | ".join(cells)
                  + f" | {reached} | {row['proposals_per_evaluation']:.2f} |")
        diffs = [(a, row["mnas_minus_this"]) for a, row in agents.items()
                 if "mnas_minus_this" in row]
        if diffs:
            print("\nmnas minus agent, paired by seed: mean +- standard error [95% CI]")
            print("| vs | " + " | ".join(budgets) + " |")
            print("|---" * (len(budgets) + 1) + "|")
            for a, d in diffs:
                print(f"| {a} | " + " | ".join(
                    dfmt.format(d[b]["mean"], d[b]["se"], *d[b]["ci95"]) for b in budgets)
                    + " |")
        if entry["metric"] == "test_acc" and entry.get("table", "nb201") == "nb201":
            print("paper (NB201, 12-epoch signal, time budget): " + ", ".join(
                f"{k} {v}" for k, v in report["paper"].items()))
    print("\n## agent overhead")
    print("| agent | ms per ask+tell | Python peak (MB) | RSS growth (MB) |")
    print("|---|---|---|---|")
    for a, o in report["overhead"].items():
        py = f"{o['python_peak_mb']:.1f}" if "python_peak_mb" in o else "-"
        rss = f"{o['rss_growth_mb']:.1f}" if "rss_growth_mb" in o else "-"
        print(f"| {a} | {o['ms_per_ask_tell']:.2f} | {py} | {rss} |")


if __name__ == "__main__":
    raise SystemExit(main())
