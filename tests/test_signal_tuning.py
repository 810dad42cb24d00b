"""benchmarks/signal_tuning.py: tuning on the signal the agent sees, paired by seed."""

from __future__ import annotations

import json
import math
from pathlib import Path

from benchmarks.signal_tuning import best_by_budget, main


def test_best_by_budget_is_the_running_best_of_distinct_evaluations() -> None:
    # (proposal, 1-based evaluation count or None for a cached repeat, state, signal, latency,
    # report), as benchmarks.search_quality.run_one records them
    trials = [(0, 1, "complete", 1.0, None, 0), (1, None, "complete", 999.0, None, 0)]
    trials += [(e, e, "complete", float(e), None, 0) for e in range(2, 121)]
    best = best_by_budget(trials, 100)
    assert set(best) == {50, 100}  # 200 and 500 were not reached; no cell beyond the budget
    assert best[50] == 50.0 and best[100] == 100.0  # the 50th (100th) evaluation counts
    # ... and the cached repeat's 999 is not an evaluation
    assert best_by_budget(trials[:10], 100) == {}  # budget 50 not reached: no cell


def test_a_variant_paired_with_itself_differs_by_nothing(tmp_path: Path) -> None:
    out = tmp_path / "tuning.json"
    assert main(["--seeds", "1000-1001", "--budget", "50", "--variant", "a={}",
                 "--variant", "b={}", "--variant", 'c={"dyna_updates": 0}',
                 "--out", str(out)]) == 0
    got = json.loads(out.read_text())
    assert got["summary"]["b"]["50"]["diff"] == 0.0  # seeded runs repeat exactly
    assert 91.0 < got["table_best"] < 92.0  # NB201's best val_acc, 91.61
    per_seed = {r["seed"]: r["best"]["50"] for r in got["per_seed"]["c"]}
    assert set(per_seed) == {1000, 1001}
    assert all(math.isfinite(v) and v <= got["table_best"] for v in per_seed.values())
