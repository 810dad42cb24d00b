"""Where does a search miss NB201's best architecture? (issue 13, a diagnosis)

At 100-200 distinct evaluations the reported score mostly says whether a seed found the
single best ``val_acc`` architecture: the runner-up's ``test_acc`` is 0.6 points lower. For
each seed and budget this prints the incumbent (best ``val_acc`` so far), its rank in the
table (0 = the best), how many choices it differs from the best in, and how many of the
best's single-choice neighbours were evaluated. An incumbent one edit away that stays
there says the search does not try its own neighbours; a far one says it sits in another
basin. Same loop and job as ``search_quality`` (tuning seeds only).

    python -m benchmarks.needle_diagnosis --agent mnas --seeds 1100-1109
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.predictor_ranking import TABLE, load_table, true_ranks  # noqa: E402
from benchmarks.search_quality import parse_seeds  # noqa: E402

BUDGETS = (50, 100, 200)


def diagnose(agent: str, seed: int, options: dict[str, Any] | None,
             x: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    """One job at the largest budget, read at each budget."""
    import torch

    from benchmarks.search_quality import SUITES, job_spec
    from search.loop import SearchLoop
    from search.sinks import MemorySink
    from search.spec import parse_spec
    from spaces.nb201 import NB201Space

    torch.set_num_threads(1)
    space = NB201Space()
    rank = true_ranks(y)
    best = x[int(np.argmax(y))]
    row_of = {tuple(r): i for i, r in enumerate(x.tolist())}
    sink = MemorySink()
    SearchLoop(parse_spec(job_spec(SUITES["val_acc"], agent, seed, max(BUDGETS), options)),
               sink).run()
    evaluated = [row_of[tuple(space.encode(t.arch))] for t in sink.trials if not t.cached]
    out: dict[str, Any] = {"seed": seed}
    for b in BUDGETS:
        rows = evaluated[:b]
        inc = min(rows, key=lambda i: rank[i])
        out[b] = {"incumbent_rank": int(rank[inc]),
                  "edits_from_best": int((x[inc] != best).sum()),
                  "best_neighbours_seen": sum(int((x[i] != best).sum()) == 1 for i in rows)}
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--agent", default="mnas")
    ap.add_argument("--options", default="{}", help="agent options (JSON)")
    ap.add_argument("--seeds", default="1100-1109", help="first-last or a,b,c (tuning seeds)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks/results/needle_diagnosis.json"))
    args = ap.parse_args(argv)
    x, y = load_table(TABLE, "val_acc")
    rows = []
    print("| seed | " + " | ".join(f"{b}: rank / edits / neighbours seen" for b in BUDGETS)
          + " |")
    print("|---|" + "---|" * len(BUDGETS))
    for seed in parse_seeds(args.seeds):
        r = diagnose(args.agent, seed, json.loads(args.options), x, y)
        rows.append(r)
        print(f"| {seed} | " + " | ".join(
            f"{r[b]['incumbent_rank']} / {r[b]['edits_from_best']} / "
            f"{r[b]['best_neighbours_seen']}" for b in BUDGETS) + " |", flush=True)
    for b in BUDGETS:
        found = sum(r[b]["incumbent_rank"] == 0 for r in rows)
        near = sum(r[b]["edits_from_best"] == 1 for r in rows)
        print(f"# {b}: found the best in {found}/{len(rows)}; one edit away in {near}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "rows": rows}, indent=1))
    return rows


if __name__ == "__main__":
    main()
