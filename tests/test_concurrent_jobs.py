"""Two jobs with measured latency profilers in one worker measure what each measures alone
(benchmarks/concurrent_jobs.py's protocol, small): their measurements never overlap, and
their latencies stay within the single-job spread."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.concurrent_jobs import run_protocol


@pytest.mark.slow
def test_two_concurrent_measured_latency_jobs_match_each_alone(tmp_path: Path) -> None:
    result = run_protocol(archs=4, repeats=1, ablation=False, workdir=tmp_path)
    together, alone = result["summary"]["together"], result["summary"]["alone"]
    assert together["archs"] == 8  # 4 architectures in each of the two jobs
    assert together["measurement_overlaps"] == 0
    assert together["within_spread"] >= 6
    assert together["median_dev"] <= alone["median_profiler_spread"]
