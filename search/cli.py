"""``lightsearch search JOB.json``: run a whole job in this process (or on Ray), no server.

The service adds its own subcommands (serve, submit, watch...) through
``add_search_commands``; this module never imports the service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.spec import JobSpec, SpecError, load_spec


def add_search_commands(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("search", help="run a search job in this process (no server)",
                       description="Run a whole search job from a JSON job file and write a "
                       "results JSON (spec, every trial, the Pareto front, the best trial).")
    p.add_argument("job", help="job spec JSON file (see examples/)")
    p.add_argument("--out", help="results JSON path (default: results/<job name>.json)")
    p.add_argument("--executor", choices=["local", "ray"], help="override executor.name")
    p.add_argument("--budget", type=int, help="override budget.evaluations")
    p.add_argument("--seed", type=int, help="override seed")
    p.add_argument("--agent", help="override agent.name (its options are dropped)")
    p.add_argument("--quiet", action="store_true", help="no progress bar or table")
    p.set_defaults(func=cmd_search)


def _apply_overrides(spec: JobSpec, args: argparse.Namespace) -> JobSpec:
    data: dict[str, Any] = spec.model_dump(mode="json")
    if args.executor:
        data["executor"]["name"] = args.executor
    if args.budget is not None:
        data["budget"]["evaluations"] = args.budget
    if args.seed is not None:
        data["seed"] = args.seed
    if args.agent:
        data["agent"] = {"name": args.agent, "options": {}}
    return JobSpec.model_validate(data)


def cmd_search(args: argparse.Namespace) -> int:
    # Imported here: argument parsing and --help stay fast.
    import torch
    from tqdm import tqdm

    from search.loop import SearchLoop
    from search.results import build_results
    from search.sinks import MemorySink

    torch.set_num_threads(int(os.environ.get("LIGHTSEARCH_TORCH_THREADS", "1")))
    try:
        spec = _apply_overrides(load_spec(args.job), args)
    except SpecError as err:
        print(f"error: job file {args.job}: {err}", file=sys.stderr)
        return 2
    except ValueError as err:  # an override that breaks the spec
        print(f"error: {err}", file=sys.stderr)
        return 2
    sink = MemorySink()
    bar: tqdm | None = None

    def progress(done: int, total: int) -> None:
        if bar is not None:
            bar.update(done - bar.n)
            if loop.best is not None and loop.best.reward is not None:
                bar.set_postfix(best=f"{loop.best.reward:.4g}")

    try:
        loop = SearchLoop(spec, sink, progress=progress)
    except SpecError as err:
        print(f"error: job file {args.job}: {err}", file=sys.stderr)
        return 2
    if not args.quiet:
        bar = tqdm(total=spec.budget.evaluations, unit="eval", desc=spec.name,
                   dynamic_ncols=True)
    summary = loop.run()
    if bar is not None:
        bar.close()
    results = build_results(spec, sink.trials, status=summary.status, reason=summary.reason,
                            space=loop.space, elapsed_s=summary.elapsed_s)
    out = Path(args.out or Path("results") / f"{spec.name}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1, default=str))
    if not args.quiet:
        print_summary(results)
    print(f"results: {out}")
    return 0 if summary.status == "succeeded" else 1


def print_summary(results: dict[str, Any], max_rows: int = 20) -> None:
    """A short table: status, budget used, the best trial and the Pareto front."""
    from rich.console import Console
    from rich.table import Table

    console = Console(width=max(180, Console().width))
    objectives = [o["metric"] for o in results["objectives"]]
    console.print(f"[bold]{results['spec']['name']}[/]: {results['status']} "
                  f"({results['reason']}); {results['evaluations']} evaluations, "
                  f"{results['proposals']} proposals, {results['elapsed_s']:.1f} s; "
                  f"states {results['states']}")
    front = results["pareto_front"][:max_rows]
    preferred = ("test_acc", "test_acc_12ep", "flops_M", "params_M")
    recorded_cols = [c for c in preferred if front and c in front[0]["recorded"]][:2]
    table = Table(title=f"Pareto front ({len(results['pareto_front'])} trials; "
                  + ", ".join(f"{o['metric']} {o['direction']}" for o in results["objectives"])
                  + ")")
    table.add_column("trial", justify="right")
    table.add_column("architecture", no_wrap=True)
    for col in [*objectives, "reward", *recorded_cols]:
        table.add_column(col, justify="right", no_wrap=True, min_width=7)
    for t in front:
        table.add_row(
            str(t["trial_id"]), t.get("describe", ""),
            *[f"{t['metrics'][m]:.4g}" for m in objectives],
            "" if t["reward"] is None else f"{t['reward']:.4g}",
            *[f"{t['recorded'].get(c, float('nan')):.4g}" for c in recorded_cols],
        )
    console.print(table)
    best = results["best"]
    if best:
        extra = ", ".join(f"{k}={v:.4g}" for k, v in best["recorded"].items()
                          if isinstance(v, int | float))[:200]
        console.print(f"best by reward: trial {best['trial_id']} {best.get('describe', '')} "
                      f"reward={best['reward']:.4g} {extra}")
    if results.get("hypervolume"):
        hv = results["hypervolume"]
        console.print(f"hypervolume {hv['value']:.4g} (reference {hv['reference']}, "
                      "the worst observed values)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsearch", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    add_search_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None, parser: argparse.ArgumentParser | None = None) -> int:
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
