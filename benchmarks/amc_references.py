"""Compare compression methods with the *reference* as the unit (issue 15).

One ``amc_fashion.py`` result file per reference model. Two references trained by the same
recipe to the same accuracy moved one fixed pruning policy by a point (fourteenth run), so a
method's lead over seeds of one reference says little about the method. This script takes
each reference's mean paired difference over the chosen seeds and gives the mean over
references with a 95% t-interval (references - 1 degrees of freedom). A reference with fewer
seeds than asked is marked, never silently dropped; a reference given twice (same weights)
is an error.

    python benchmarks/amc_references.py --target resnet_small:flops:0.05 --seeds 0-3 \\
        --pair amc_iter:uniform_iter --pair amc_iter:uniform_fill_iter \\
        --result benchmarks/results/amc_fashion_resnet5.json ... --out summary.json
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import mean_ci  # noqa: E402


def parse_seeds(text: str) -> list[int]:
    """``"0-3"`` or ``"0,2,5"`` to a list of seeds."""
    if "-" in text:
        lo, hi = text.split("-", 1)
        return list(range(int(lo), int(hi) + 1))
    return [int(s) for s in text.split(",")]


def reference_of(result: dict[str, Any], model: str) -> dict[str, Any]:
    """The reference entry for ``model`` in one result file (its weights and CPU)."""
    refs = result.get("references", {})
    if model not in refs:
        raise ValueError(f"result has no reference for {model!r} (has {sorted(refs)})")
    return refs[model]


def reference_difference(rows: list[dict], a: str, b: str, metric: str, target: str,
                         seeds: list[int]) -> dict[str, Any]:
    """Mean over ``seeds`` of the per-seed difference a - b on one reference."""
    by = {(r["method"], r["seed"]): r for r in rows
          if r.get("target") == target and metric in r and "error" not in r}
    paired = [s for s in seeds if (a, s) in by and (b, s) in by]
    diffs = [by[(a, s)][metric] - by[(b, s)][metric] for s in paired]
    mean, half = mean_ci(diffs)
    return {"seeds": paired, "short": len(paired) < len(seeds), "diffs": diffs,
            "mean": mean, "ci95_over_seeds": half}


def across_references(per_ref: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean of the references' mean differences and its 95% t-interval."""
    means = [r["mean"] for r in per_ref if r["seeds"]]
    mean, half = mean_ci(means)
    return {"references": len(means), "mean": mean, "ci95": half,
            "low": mean - half, "high": mean + half,
            "ahead": sum(m > 0 for m in means)}


def compare(results: dict[str, dict], target: str, pairs: list[tuple[str, str]],
            metrics: list[str], seeds: list[int]) -> dict[str, Any]:
    """Every pair and metric over every reference that ran both methods."""
    model = target.split(":", 1)[0]
    refs = {name: reference_of(res, model) for name, res in results.items()}
    seen: dict[str, str] = {}
    for name, ref in refs.items():
        sha = ref.get("weights_sha1")
        if sha and sha in seen:
            raise ValueError(f"{name} and {seen[sha]} hold the same reference ({sha})")
        if sha:
            seen[sha] = name
    out: list[dict[str, Any]] = []
    for a, b in pairs:
        for metric in metrics:
            per_ref = []
            for name, res in results.items():
                methods = {r["method"] for r in res["rows"] if r.get("target") == target}
                if a not in methods or b not in methods:
                    continue
                per_ref.append({"result": name, "weights_sha1": refs[name].get("weights_sha1"),
                                "reference_test_acc": refs[name].get("test_acc_full"),
                                "cpu": refs[name].get("cpu"),
                                **reference_difference(res["rows"], a, b, metric, target,
                                                       seeds)})
            out.append({"a": a, "b": b, "metric": metric, "per_reference": per_ref,
                        **across_references(per_ref)})
    return {"target": target, "seeds": seeds, "comparisons": out}


def print_summary(summary: dict[str, Any]) -> None:
    print(f"# {summary['target']}, seeds {summary['seeds']}; the reference is the unit")
    print("| a − b | metric | references | mean [95% interval] | ahead on | per reference |")
    print("|---|---|---|---|---|---|")
    for c in summary["comparisons"]:
        per = ", ".join(f"{r['mean']:+.2f}" + ("*" if r["short"] else "")
                        for r in c["per_reference"])
        print(f"| {c['a']} − {c['b']} | {c['metric']} | {c['references']} | "
              f"{c['mean']:+.2f} [{c['low']:+.2f}, {c['high']:+.2f}] | "
              f"{c['ahead']} of {c['references']} | {per} |")
    if any(r["short"] for c in summary["comparisons"] for r in c["per_reference"]):
        print("# * a reference with fewer seeds than asked (its mean is over the seeds it has)")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--result", action="append", required=True,
                    help="an amc_fashion.py result file, one per reference")
    ap.add_argument("--target", required=True, help="e.g. resnet_small:flops:0.05")
    ap.add_argument("--pair", action="append", required=True, help="a:b, reported as a - b")
    ap.add_argument("--metrics", default="test_acc_ft3,test_acc_ft1")
    ap.add_argument("--seeds", default="0-3")
    ap.add_argument("--out", help="write the summary as JSON here")
    args = ap.parse_args(argv)
    pairs = []
    for p in args.pair:
        if p.count(":") != 1:
            ap.error(f"--pair: expected a:b, got {p!r}")
        pairs.append(tuple(p.split(":")))
    results = {path: json.loads(Path(path).read_text()) for path in args.result}
    try:
        summary = compare(results, args.target, pairs, args.metrics.split(","),
                          parse_seeds(args.seeds))
    except ValueError as err:
        ap.error(str(err))
    print_summary(summary)
    if args.out:
        Path(args.out).write_text(json.dumps({"args": vars(args), **summary}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
