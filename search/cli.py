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
from search.status import EXIT_CODES


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

    e = sub.add_parser("export", help="export models of a finished job (weights, TorchScript, "
                       "ONNX, model card)",
                       description="Rebuild chosen trials of a 'train' or 'compress' job "
                       "(trained or compressed again with the search's seed: both are "
                       "deterministic) and export each: weights, TorchScript, ONNX checked "
                       "against PyTorch, a model card, and the exported file's latency "
                       "(compress jobs add the packed .lsz and, for 8-bit policies, an int8 "
                       "ONNX).")
    e.add_argument("results", help="results JSON written by 'lightsearch search' (or "
                   "downloaded with 'lightsearch download')")
    which = e.add_mutually_exclusive_group()
    which.add_argument("--trial", type=int, action="append", metavar="ID",
                       help="a trial id (repeatable); default: the best trial")
    which.add_argument("--pareto", action="store_true", help="every Pareto-front trial")
    e.add_argument("--out", required=True, help="folder; each trial goes to OUT/trial<ID>")
    e.add_argument("--no-latency", action="store_true",
                   help="skip measuring the exported files' latency")
    e.set_defaults(func=cmd_export)


def load_results(path: str | Path) -> tuple[JobSpec, list[Any], dict[str, Any]]:
    """A results document back as its job spec and trial records."""
    from agents.base import TrialState
    from search.sinks import TrialRecord
    from search.spec import parse_spec

    doc = json.loads(Path(path).read_text())
    names = set(TrialRecord.__dataclass_fields__)
    trials = [TrialRecord(**{**{k: v for k, v in t.items() if k in names},
                             "state": TrialState(t["state"])}) for t in doc["trials"]]
    return parse_spec(doc["spec"]), trials, doc


def cmd_export(args: argparse.Namespace) -> int:
    from search.export import export_job_models, model_exporter

    try:
        spec, trials, doc = load_results(args.results)
    except (OSError, ValueError, KeyError, TypeError) as err:
        print(f"error: {args.results}: not a LightSearch results file ({err})", file=sys.stderr)
        return 2
    by_id = {t.trial_id: t for t in trials}
    if args.pareto:
        ids = [t["trial_id"] for t in doc.get("pareto_front") or []]
    elif args.trial:
        ids = args.trial
    else:
        ids = [doc["best"]["trial_id"]] if doc.get("best") else []
    missing = [i for i in ids if i not in by_id]
    if missing or not ids:
        print(f"error: no such trial in {args.results}: {missing or 'no best trial'}; "
              f"trial ids run from 0 to {len(trials) - 1}", file=sys.stderr)
        return 2
    if model_exporter(spec) is None:
        print(f"error: export needs a job whose evaluator makes models ('train' or "
              f"'compress'); this job used {spec.evaluator.name!r}", file=sys.stderr)
        return 2
    exported = export_job_models(spec, trials, args.out, ids=ids,
                                 measure_latency=not args.no_latency)
    for trial_id, result in exported.items():
        extra = result.card.get("extra", {})
        print(f"trial {trial_id}: {Path(args.out) / f'trial{trial_id}'} (val_acc searched "
              f"{extra.get('searched_val_acc')}, reproduced {extra.get('reproduced_val_acc')})")
    return 0


def _apply_overrides(spec: JobSpec, args: argparse.Namespace) -> JobSpec:
    """Command-line overrides, and every declared path through the same walk the service
    checks them with (``search.spec_paths``): here made absolute, on the user's own disk."""
    from search.spec_paths import local_resolver, rewrite_paths

    data: dict[str, Any] = spec.model_dump(mode="json")
    rewrite_paths(data, local_resolver)
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

    from search.finalize import finalize
    from search.loop import REPEAT_WARNING, SearchLoop
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
            post = {}
            if loop.best is not None and loop.best.reward is not None:
                post["best"] = f"{loop.best.reward:.4g}"
            if loop.repeat_rate > REPEAT_WARNING:  # the job may end 'exhausted'
                post["repeats"] = f"{loop.repeat_rate:.0%}"
            if post:
                bar.set_postfix(post)

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
    out = Path(args.out or Path("results") / f"{spec.name}.json")
    models = out.with_name(f"{out.stem}-models")
    done = finalize(spec, sink.trials, status=summary.status, reason=summary.reason,
                    elapsed_s=summary.elapsed_s, results_path=out, models_dir=models,
                    space=loop.space, reference=summary.reference)
    if not args.quiet:
        print_summary(done.results)
    print(f"results: {out}")
    if done.export_error:
        print(f"error: model export failed: {done.export_error}", file=sys.stderr)
    elif done.exported:
        print(f"models: {models} (trials {', '.join(map(str, done.exported))})")
    return 1 if done.export_error else EXIT_CODES.get(summary.status, 1)


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
        ratio = (f", {hv['normalized']:.4f} of the table's true front"
                 if hv.get("normalized") is not None else "")
        console.print(f"hypervolume {hv['value']:.4g}{ratio} (reference {hv['reference']}, "
                      f"from: {hv['source']})")


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
