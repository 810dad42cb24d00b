"""Pair stored ``search_quality`` results by seed, across files (issue 13).

Agents are deterministic per seed, so a new agent or a new default is measured once and
paired with the others' stored runs instead of rerunning them. Runs also come in seed chunks
(``--seeds 0-24``, ``25-49``, ...). This reads any number of result files per agent, keys
every value by its seed, and prints ``ours - theirs`` per budget on the seeds both have:
mean ± standard error and the 95% t interval (``search_quality.paired``).

    python -m benchmarks.pair_runs --suite val_acc \\
        --ours mnas=benchmarks/results/search_quality_tanh_val_acc.json \\
        --theirs "gp=benchmarks/results/search_quality_gp_seeds0-24.json,\\
benchmarks/results/search_quality_gp_seeds25-49.json" \\
        --theirs tpe=benchmarks/results/search_quality_critic.json
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.search_quality import paired  # noqa: E402


def seeds_of(report: dict[str, Any], cell: dict[str, Any], where: str) -> list[int]:
    """The seed of each value of a cell: its own ``seeds`` list, or (older files) the config's
    contiguous range, which holds only when no seed's value is missing."""
    if "seeds" in cell:
        return [int(s) for s in cell["seeds"]]
    first, last, count = report["config"]["seeds"]
    if last - first + 1 != count or len(cell["values"]) != count:
        raise ValueError(f"{where}: cannot tell which seed each value belongs to (no 'seeds' "
                         "list, and the seeds are not a full contiguous range)")
    return list(range(first, last + 1))


def load_values(agent: str, files: Sequence[Path], suite: str) -> dict[str, dict[int, float]]:
    """``{budget: {seed: value}}`` of one agent in one suite, merged over files; a seed given
    two different values is an error (the runs would not be the same protocol)."""
    merged: dict[str, dict[int, float]] = {}
    for path in files:
        report = json.loads(Path(path).read_text())
        try:
            row = report["suites"][suite]["agents"][agent]
        except KeyError:
            raise ValueError(f"{path}: no agent {agent!r} in suite {suite!r}") from None
        for budget, cell in row.items():
            if not (isinstance(cell, dict) and "values" in cell):
                continue
            where = f"{path} {agent} at {budget}"
            by_seed = merged.setdefault(budget, {})
            for seed, value in zip(seeds_of(report, cell, where), cell["values"], strict=True):
                if seed in by_seed and abs(by_seed[seed] - value) > 1e-9:
                    raise ValueError(f"{where}: seed {seed} is {value}, another file has "
                                     f"{by_seed[seed]}")
                by_seed[seed] = float(value)
    if not merged:
        raise ValueError(f"{agent}: no values in suite {suite!r}")
    return merged


def pair_agents(ours: dict[str, dict[int, float]], theirs: dict[str, dict[int, float]]
                ) -> dict[str, dict[str, Any]]:
    """``ours - theirs`` per budget both have, on the seeds both have (listed)."""
    out: dict[str, dict[str, Any]] = {}
    for budget in sorted(set(ours) & set(theirs), key=int):
        seeds = sorted(set(ours[budget]) & set(theirs[budget]))
        out[budget] = {**paired([ours[budget][s] for s in seeds],
                                [theirs[budget][s] for s in seeds]),
                       "seeds": seeds}
    return out


def _agent_files(text: str) -> tuple[str, list[Path]]:
    agent, sep, files = text.partition("=")
    if not sep or not agent or not files:
        raise argparse.ArgumentTypeError(f"expected AGENT=FILE[,FILE...], got {text!r}")
    return agent, [Path(f) for f in files.split(",") if f]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--suite", default="val_acc")
    ap.add_argument("--ours", type=_agent_files, required=True, metavar="AGENT=FILE[,FILE]")
    ap.add_argument("--theirs", type=_agent_files, action="append", required=True,
                    metavar="AGENT=FILE[,FILE]")
    ap.add_argument("--out", help="write the pairs as JSON")
    args = ap.parse_args(argv)
    try:
        ours_name, ours_files = args.ours
        ours = load_values(ours_name, ours_files, args.suite)
        result: dict[str, Any] = {"suite": args.suite, "ours": ours_name, "pairs": {}}
        for name, files in args.theirs:
            if name in result["pairs"]:
                raise ValueError(f"--theirs names {name!r} twice: give all its files at once")
            result["pairs"][name] = pair_agents(ours, load_values(name, files, args.suite))
    except (OSError, ValueError) as exc:
        ap.error(str(exc))
    print(f"## {args.suite}: {ours_name} minus each agent, paired by seed "
          "(mean ± s.e. [95% CI], n)")
    for name, by_budget in result["pairs"].items():
        cells = [f"{b}: {p['mean']:+.4f} ± {p['se']:.4f} [{p['ci95'][0]:+.4f}, "
                 f"{p['ci95'][1]:+.4f}] n={p['n']}" for b, p in by_budget.items()]
        print(f"- {name}: " + "; ".join(cells))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
