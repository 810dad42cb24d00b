"""Tune an agent on the signal it sees, on seeds kept apart from the reported ones.

Issue 13's rule: defaults are tuned on the search signal (``val_acc``), never on the reported
``test_acc``, and only on seeds that the report does not use (the reports use 0-99). Per seed,
the agent runs once at the largest budget through ``benchmarks.search_quality.run_one`` (the
same loop, cap and suite); the score at each budget is the best signal among the first that
many distinct evaluations (``search_quality.best_at``, the rule its report scores by). Each
variant (JSON agent options) is paired by seed with the first one, the baseline: mean
difference with its standard error and 95% t interval (``search_quality.paired``), how many
seeds found the table's best signal, and the agent's milliseconds per ask+tell. A seed that
did not reach a budget has no value there, and the cell says how many seeds it covers.

    python -m benchmarks.signal_tuning --agent mnas --seeds 1000-1039 --budget 200 \
        --variant default='{}' --variant kappa4='{"dyna_kappa": 4}'
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BUDGETS = (50, 100, 200, 500)


def best_by_budget(trials: list[tuple], budget: int) -> dict[int, float]:
    """Best signal among the first b distinct evaluations, for each reported b <= budget that
    the job reached (``search_quality``'s rule, cap included)."""
    from benchmarks.search_quality import best_at, reached_at

    out = {}
    for b in BUDGETS:
        if b <= budget and reached_at(trials, b) == b and (best := best_at(trials, b)):
            out[b] = float(best[0])
    return out


def run_seed(job: tuple[str, str, dict[str, Any], int, int]) -> dict[str, Any]:
    suite, agent, options, seed, budget = job
    import torch

    from benchmarks.search_quality import SUITES, run_one

    torch.set_num_threads(1)
    r = run_one(SUITES[suite], agent, seed, budget, options)
    return {"seed": seed, "best": best_by_budget(r["trials"], budget),
            "evaluations": r["evaluations"], "ms": r["agent_ms_per_proposal"]}


def table_best_signal(table: str, signal: str) -> float:
    """The best signal anywhere in the suite's table (what a perfect search finds)."""
    import pandas as pd

    from search.tables import NB201_ACCURACY_FILE

    path = NB201_ACCURACY_FILE if table == "nb201" else Path(table)
    return float(pd.read_csv(path)[signal].max())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--agent", default="mnas")
    ap.add_argument("--suite", default="val_acc")
    ap.add_argument("--seeds", default="1000-1039",
                    help="range a-b or list (search_quality's forms); keep 0-99 apart")
    ap.add_argument("--budget", type=int, default=200)
    ap.add_argument("--variant", action="append", required=True,
                    help="NAME=JSON agent options; the first is the baseline")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/signal_tuning.json"))
    args = ap.parse_args(argv)
    from benchmarks.search_quality import SUITES, paired, parse_seeds

    seeds = parse_seeds(args.seeds)
    if any(s < 100 for s in seeds):
        print("warning: seeds below 100 are the reported ones", file=sys.stderr)
    suite = SUITES[args.suite]
    table_best = table_best_signal(suite.table, suite.signal)
    variants = [(v.split("=", 1)[0], json.loads(v.split("=", 1)[1])) for v in args.variant]
    results: dict[str, list[dict[str, Any]]] = {}
    with ProcessPoolExecutor(args.workers) as pool:
        for name, options in variants:
            jobs = [(args.suite, args.agent, options, s, args.budget) for s in seeds]
            results[name] = list(pool.map(run_seed, jobs))
            print(f"{name}: done", file=sys.stderr)
    budgets = [b for b in BUDGETS if b <= args.budget]
    base_name = variants[0][0]
    base = results[base_name]
    print(f"## {args.agent} on {args.suite}: best signal by distinct evaluations, "
          f"seeds {args.seeds}, paired with '{base_name}' (mean diff ± s.e. [95% CI])")
    print("| variant | " + " | ".join(str(b) for b in budgets) + " | ms per ask+tell |")
    print("|---|" + "---|" * (len(budgets) + 1))
    summary: dict[str, Any] = {}
    for name, _ in variants:
        rows = results[name]
        cells, entry = [], {}
        for b in budgets:
            vals = [r["best"].get(b) for r in rows]
            ref = [r["best"].get(b) for r in base]
            got = [v for v in vals if v is not None]
            mean = statistics.fmean(got) if got else math.nan
            cell = f"{mean:.3f}" + ("" if len(got) == len(vals) else f" ({len(got)} seeds)*")
            if name != base_name:
                p = paired(vals, ref)
                d, se, (lo, hi) = p["mean"], p["se"], p["ci95"]
                cell += f" ({d:+.3f} ± {se:.3f} [{lo:+.3f}, {hi:+.3f}])"
                entry[b] = {"mean": mean, "diff": d, "se": se, "ci95": [lo, hi]}
            else:
                entry[b] = {"mean": mean}
            entry[b]["seeds"] = len(got)
            hits = sum(v >= table_best - 1e-9 for v in got)
            cell += f" best {hits}/{len(vals)}"
            entry[b]["found_best"] = hits
            cells.append(cell)
        ms = statistics.fmean(r["ms"] for r in rows)
        entry["ms_per_ask_tell"] = ms
        summary[name] = entry
        print(f"| {name} | " + " | ".join(cells) + f" | {ms:.1f} |")
    Path(args.out).write_text(json.dumps({
        "agent": args.agent, "suite": args.suite, "seeds": seeds, "budget": args.budget,
        "table_best": table_best, "variants": dict(variants), "summary": summary,
        "per_seed": results}, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
