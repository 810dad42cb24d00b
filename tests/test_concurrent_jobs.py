"""Two jobs with measured latency profilers in one worker never time models at the same moment
(benchmarks/concurrent_jobs.py's protocol, small): with the host measurement lock their
measurement spans never overlap, and without it (the ablation) they do, so the check can fail.

Whether the latencies measured together equal those measured alone is a timing claim, and
timing claims live in the benchmark, not here: on this 2-core machine the benchmark measures
log(together / alone) +0.06 (95% CI -0.00 .. +0.12), but CI's machine once measured +0.32
for the same protocol, and one cold run once put every ratio near 0.6. A test that bounds it
flakes with the machine, not with the code."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from benchmarks.concurrent_jobs import run_protocol


@pytest.mark.slow
def test_two_concurrent_measured_latency_jobs_never_measure_at_once(tmp_path: Path) -> None:
    result = run_protocol(archs=4, repeats=1, ablation=True, workdir=tmp_path)
    summary = result["summary"]
    together, unlocked = summary["together"], summary["together, no lock"]
    assert result["protocol"]["warmup_runs"] == 1
    assert together["archs"] == unlocked["archs"] == 8  # 4 architectures in each of two jobs
    assert together["measurement_overlaps"] == 0, summary  # the per-host lock held
    assert summary["alone"]["measurement_overlaps"] == 0, summary
    assert unlocked["measurement_overlaps"] > 0, summary  # without it, they do overlap
    for row in result["rows"]:  # every architecture got a real latency in every mode
        for key in ("alone_ms", "together ms", "together, no lock ms"):
            assert math.isfinite(row[key]) and row[key] > 0, row
