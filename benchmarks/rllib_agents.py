"""RLlib PPO+LSTM (the MnasNet controller in RLlib form) against the built-in ``mnas`` agent
and random search on NAS-Bench-201 ``val_acc``.

Protocol (printed with the table): each agent runs one job per seed through ``search.loop``
(tabular evaluator, CIFAR-10 ``val_acc`` as the search signal, objective reward, one
proposal in flight, budget = the largest of ``--budgets`` distinct evaluations, a job stops
after 10x its budget in proposals). The score at budget B is the ``test_acc`` of the
architecture with the best ``val_acc`` among the first B distinct evaluations (the NB201
protocol); a cell whose budget was not reached (the job stopped first) is marked ``-``.
Methods are compared by paired per-seed differences (same seed for both) with a 95%
t-interval; ``overhead`` is the agent's own time per ask+tell in ms (torch threads = 1),
``rss`` the growth of the resident set over a run after a warm-up job (``py peak``: Python
allocations by tracemalloc; torch tensors are not seen by it).

    python -m benchmarks.rllib_agents --seeds 10 --budgets 100,200,500
    python -m benchmarks.rllib_agents --seeds 10 --first-seed 10   # ten more, same log
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import mean_ci, time_agent

AGENTS: dict[str, dict[str, Any]] = {
    "rllib-ppo-lstm": {"name": "rllib", "options": {
        "algorithm": "PPO", "episodes_per_update": 8,
        "model": {"use_lstm": True, "lstm_cell_size": 64}}},
    "mnas": {"name": "mnas", "options": {}},
    "random": {"name": "random", "options": {}},
}
CAP = 10  # proposals per evaluation before a job stops (the search_quality benchmark's cap)


def job(agent: dict[str, Any], seed: int, budget: int) -> dict[str, Any]:
    return {
        "name": f"bench-{agent['name']}-{seed}", "space": {"name": "nb201"}, "agent": agent,
        "evaluator": {"name": "tabular", "options": {"table": "nb201", "signal": "val_acc"}},
        "objectives": [{"metric": "val_acc", "direction": "max"}],
        "reward": {"kind": "objective"},
        "budget": {"evaluations": budget, "max_proposals": CAP * budget},
        "executor": {"name": "local", "batch_size": 1}, "seed": seed,
    }


def run_one(label: str, seed: int, budget: int) -> dict[str, Any]:
    """One job; the agent's ask and tell are timed."""
    from search.loop import SearchLoop
    from search.sinks import MemorySink
    from search.spec import parse_spec

    sink = MemorySink()
    loop = SearchLoop(parse_spec(job(AGENTS[label], seed, budget)), sink)
    spent = time_agent(loop.agent)
    start = time.perf_counter()
    summary = loop.run()
    wall = time.perf_counter() - start
    evals = [(r.evaluation_index, r.metrics.get("val_acc"), r.recorded.get("test_acc"))
             for r in sink.trials if not r.cached and r.state.value == "complete"]
    return {"agent": label, "seed": seed, "evaluations": summary.evaluations,
            "proposals": summary.proposals, "wall_s": wall,
            "ms_per_ask_tell": 1000.0 * spent[0] / max(1, summary.proposals),
            "load1": os.getloadavg()[0], "evals": evals}


def score(run: dict[str, Any], budget: int) -> float | None:
    """test_acc of the best-val_acc architecture among the first ``budget`` evaluations."""
    if run["evaluations"] < budget:
        return None
    best = max(((v, t) for i, v, t in run["evals"] if i is not None and i <= budget),
               default=None)
    return None if best is None else float(best[1])


def rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def memory(label: str, budget: int) -> dict[str, float]:
    import gc
    import tracemalloc

    run_one("random", 0, 5)  # imports, tables
    gc.collect()
    rss0 = rss_mb()
    tracemalloc.start()
    run_one(label, 0, budget)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"py_peak_mb": peak, "rss_growth_mb": rss_mb() - rss0}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--first-seed", type=int, default=0,
                    help="> 0: add seeds first..first+seeds-1 to the runs already in the log")
    ap.add_argument("--budgets", default="100,200,500")
    ap.add_argument("--agents", default=",".join(AGENTS))
    ap.add_argument("--out", default="benchmarks/results/rllib_agents.json")
    ap.add_argument("--append", action="store_true",
                    help="add the runs to OUT.runs.jsonl even from seed 0 (e.g. another agent "
                    "on the seeds already there)")
    ap.add_argument("--report-only", action="store_true",
                    help="build the table from the runs already in OUT.runs.jsonl (the "
                    "seeds every agent finished)")
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    budgets = sorted(int(b) for b in args.budgets.split(","))
    labels = [a for a in args.agents.split(",") if a]
    bad = [a for a in labels if a not in AGENTS]
    if bad:
        ap.error(f"unknown agent(s) {bad}; valid: {', '.join(AGENTS)}")
    log = Path(args.out + ".runs.jsonl")
    log.parent.mkdir(parents=True, exist_ok=True)
    if not args.report_only:
        fresh = args.first_seed == 0 and not args.append
        if fresh:
            log.write_text("")
        with log.open("a") as fh:
            if fresh:
                fh.write(json.dumps({"memory": {a: memory(a, budgets[0]) for a in labels}})
                         + "\n")
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for a in labels:
                    fh.write(json.dumps(run_one(a, seed, budgets[-1])) + "\n")
                    fh.flush()
                print(f"seed {seed} done", flush=True)
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.strip()]
    mem = next(x["memory"] for x in lines if "memory" in x)
    done = [x for x in lines if "agent" in x]
    seeds = sorted({r["seed"] for r in done if all(
        any(o["agent"] == a and o["seed"] == r["seed"] for o in done) for a in labels)})
    args.seeds = len(seeds)
    runs = {a: [next(r for r in done if r["agent"] == a and r["seed"] == s) for s in seeds]
            for a in labels}
    table: dict[str, Any] = {}
    for a in labels:
        row: dict[str, Any] = {}
        for b in budgets:
            vals = [s for r in runs[a] if (s := score(r, b)) is not None]
            mean, half = mean_ci(vals)
            row[str(b)] = {"mean": mean, "ci95": half, "n": len(vals),
                           "se": float(np.std(vals, ddof=1) / math.sqrt(len(vals)))
                           if len(vals) > 1 else math.nan}
        row["ms_per_ask_tell"] = float(np.mean([r["ms_per_ask_tell"] for r in runs[a]]))
        row["wall_s"] = float(np.mean([r["wall_s"] for r in runs[a]]))
        row.update(mem[a])
        table[a] = row
    diffs: dict[str, Any] = {}
    base = labels[0]
    for other in labels[1:]:
        for b in budgets:
            pairs = [(score(x, b), score(y, b)) for x, y in zip(runs[base], runs[other],
                                                                 strict=True)]
            d = [x - y for x, y in pairs if x is not None and y is not None]
            mean, half = mean_ci(d)
            diffs[f"{base} - {other} @ {b}"] = {"mean": mean, "ci95": half, "n": len(d)}
    loads = [r["load1"] for rs in runs.values() for r in rs if "load1" in r]
    load = (f"load avg {min(loads):.1f}-{max(loads):.1f} during the runs" if loads
            else f"load avg {os.getloadavg()[0]:.1f} at report time")
    protocol = (f"NB201 CIFAR-10 val_acc signal, test_acc of best-val arch; {args.seeds} seeds "
                f"{seeds}; budgets {budgets} distinct evaluations; 1 in flight; "
                f"cap {CAP}x proposals; torch threads 1; {load} (shared 2-core machine)")
    print("\n" + protocol)
    head = "agent".ljust(16) + "".join(f"{'@' + str(b):>24}" for b in budgets)
    print(head + f"{'ms/ask+tell':>13}{'rss MB':>9}{'py peak MB':>12}")
    for a, row in table.items():
        # n < seeds: some jobs stopped (proposal cap) before that budget; marked with *n.
        cells = "".join(
            f"{row[str(b)]['mean']:>10.2f} ±{row[str(b)]['se']:5.2f}se"
            + (f" *{row[str(b)]['n']:<3}" if row[str(b)]["n"] < args.seeds else " " * 5)
            if row[str(b)]["n"] else f"{'-':>24}" for b in budgets)
        print(a.ljust(16) + cells + f"{row['ms_per_ask_tell']:>13.2f}"
              f"{row['rss_growth_mb']:>9.1f}{row['py_peak_mb']:>12.1f}")
    print("*n: only n seeds reached that budget (the others stopped at the proposal cap)")
    print("\npaired per-seed differences (mean ± 95% CI half-width):")
    for k, v in diffs.items():
        print(f"  {k:<32} {v['mean']:+.3f} ± {v['ci95']:.3f}  (n={v['n']})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"protocol": protocol, "agents": {a: AGENTS[a] for a in labels},
                               "table": table, "paired": diffs,
                               "runs": {a: [{k: v for k, v in r.items() if k != "evals"}
                                            for r in rs] for a, rs in runs.items()}},
                              indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
