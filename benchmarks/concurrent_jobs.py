"""Two jobs with measured latency profilers in one worker: do they measure what each measures
alone?

Protocol: two MnasNet-space jobs (random agent, seeds 1 and 2, ``--archs`` architectures
each, executor ``local``, batch 1) whose only costly step is the ``torch-cpu`` profiler
(1 thread, 28x28 input, batch 1, warm-up 5, 5 rounds x 10 calls, minimum over rounds of the
round medians; ``--clock``); the evaluator is a constant look-up so the jobs are all
measurement. One warm-up run of job A alone comes first and is discarded (the first jobs in
a process pay one-off costs: a cold first 'alone' once made 'together' look 0.6x as slow).
Each repeat runs job A alone, job B alone, then both at once in one ``Worker``
(``max_concurrent_jobs=2``, SQLite), and, unless ``--skip-ablation``, both at once again with
the host measurement lock replaced by a no-op (what the code did before). Per architecture:
its latency alone (median over repeats), together (median over repeats), and its spread
alone ((max - min) / median over the alone repeats) next to the profiler's own spread
(interquartile range / median of its calls). A concurrent latency is "within the spread"
when ``|together / alone - 1|`` is at most the larger of the two spreads. Paired per-
architecture log-ratios log(together / alone) get a mean and a 95% t-interval. Measurement
spans are recorded in the worker process: overlaps between the two jobs must be 0 with the
lock. Peak resident memory of the process is reported beside the times.

    PYTHONPATH=. python benchmarks/concurrent_jobs.py                # 10 archs, 2 repeats
    PYTHONPATH=. python benchmarks/concurrent_jobs.py --archs 6 --repeats 3 --clock wall
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from search.base import Evaluation, Evaluator  # noqa: E402
from spaces.base import Architecture, Space  # noqa: E402

METRIC = "torch_latency_ms"


class ConstEvaluator(Evaluator):
    """A look-up that costs nothing: the jobs' time is the profiler's."""

    name = "bench-const"

    def signal_metrics(self) -> list[str]:
        return ["const"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        return Evaluation({"const": 1.0})


def register() -> None:
    from search.registry import EVALUATORS
    from spaces.registry import Entry

    if "bench-const" not in EVALUATORS:
        EVALUATORS.register(Entry("bench-const", "benchmarks.concurrent_jobs:ConstEvaluator"))


def job_spec(seed: int, archs: int, clock: str | None) -> dict[str, Any]:
    options: dict[str, Any] = {"rounds": 5, "repeats": 10, "warmup": 5}
    if clock:
        options["clock"] = clock
    return {"name": f"latency-{seed}", "space": {"name": "mnasnet"},
            "agent": {"name": "random"}, "evaluator": {"name": "bench-const"},
            "profilers": [{"name": "torch-cpu", "options": options}],
            "objectives": [{"metric": METRIC, "direction": "min"}],
            "budget": {"evaluations": archs}, "executor": {"name": "local", "batch_size": 1},
            "seed": seed}


class Spans:
    """Measurement spans per thread, recorded around the host measurement slot."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, float, float]] = []
        self.lock = threading.Lock()

    def overlaps(self) -> int:
        s = sorted(self.spans, key=lambda x: x[1])
        return sum(1 for i, a in enumerate(s) for b in s[i + 1:]
                   if b[1] < a[2] and b[0] != a[0])


@contextmanager
def recorded_slot(spans: Spans, *, lock: bool) -> Iterator[None]:
    """Patch ``hostlock.measurement_slot`` to record spans (and, ``lock=False``, to not lock:
    the behaviour before the lock existed)."""
    from search.profilers import hostlock

    real = hostlock.measurement_slot

    @contextmanager
    def slot() -> Iterator[float]:
        with (real() if lock else _no_lock()) as waited:
            start = time.perf_counter()
            try:
                yield waited
            finally:
                with spans.lock:
                    spans.spans.append((threading.current_thread().name, start,
                                        time.perf_counter()))

    hostlock.measurement_slot = slot
    try:
        yield
    finally:
        hostlock.measurement_slot = real


@contextmanager
def _no_lock() -> Iterator[float]:
    yield 0.0


def run_jobs(workdir: Path, seeds: list[int], archs: int, clock: str | None,
             *, lock: bool = True) -> tuple[dict[int, dict[str, tuple[float, float]]], Spans,
                                             float]:
    """Run one job per seed at once in one worker; per seed, arch key -> (latency, spread)."""
    from sqlalchemy import select

    from search.spec import parse_spec
    from service import crud
    from service.core.config import Settings
    from service.core.db import Database
    from service.core.security import Principal
    from service.migrations import upgrade
    from service.models import Job, Trial
    from service.worker import Worker

    workdir.mkdir(parents=True, exist_ok=True)
    settings = Settings(data_dir=workdir, database_url=f"sqlite:///{workdir / 'db.sqlite'}",
                        executor="spec", max_concurrent_jobs=len(seeds), lease_s=600.0,
                        poll_s=0.01, cancel_poll_s=0.5)
    db = Database.from_url(settings.url)
    upgrade(db.engine)
    with db.write_session() as session:
        user, _ = crud.create_token(session, "bench")
        owner = Principal(user.id, user.name)
        ids = {crud.create_job(session, owner, parse_spec(job_spec(s, archs, clock))).id: s
               for s in seeds}
    spans = Spans()
    worker = Worker(settings, db, worker_id=f"bench-{os.getpid()}")
    start = time.perf_counter()
    with recorded_slot(spans, lock=lock):
        started = 0
        while started < len(ids):
            started += worker.step()
        worker.join()
    wall = time.perf_counter() - start
    out: dict[int, dict[str, tuple[float, float]]] = {}
    with db.reading() as session:
        for job_id, seed in ids.items():
            job = session.get(Job, job_id)
            if job is None or job.status != "succeeded":
                raise RuntimeError(f"job {seed}: {job and job.status}: {job and job.reason}")
            rows = session.scalars(select(Trial).where(Trial.job_id == job_id,
                                                       Trial.cached.is_(False))).all()
            out[seed] = {r.arch_key: (r.metrics[METRIC], r.metrics["torch_latency_spread"])
                         for r in rows if METRIC in r.metrics}
    db.dispose()
    return out, spans, wall


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval."""
    from scipy import stats

    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return mean, math.nan, math.nan
    half = stats.t.ppf(0.975, n - 1) * statistics.stdev(values) / math.sqrt(n)
    return mean, mean - half, mean + half


def run_protocol(archs: int = 10, repeats: int = 2, clock: str | None = None,
                 ablation: bool = True, workdir: Path | None = None,
                 warmup: bool = True) -> dict[str, Any]:
    """Everything the table shows, as a dict (the slow test calls this too)."""
    import torch

    register()
    torch.set_num_threads(1)
    root = Path(workdir or tempfile.mkdtemp(prefix="ls-concurrent-"))
    seeds = [1, 2]
    modes = ["alone", "together"] + (["together, no lock"] if ablation else [])
    lat: dict[str, dict[int, dict[str, list[float]]]] = {
        m: {s: {} for s in seeds} for m in modes}
    prof_spread: dict[int, dict[str, list[float]]] = {s: {} for s in seeds}
    overlaps = {m: 0 for m in modes}
    walls = {m: 0.0 for m in modes}
    run = 0
    if warmup:  # the first jobs in a process pay one-off costs (imports, allocator, caches)
        run += 1
        run_jobs(root / f"run{run}", seeds[:1], archs, clock)
    for r in range(repeats):
        for mode in modes:
            groups = [[s] for s in seeds] if mode == "alone" else [seeds]
            for group in groups:
                run += 1
                got, spans, wall = run_jobs(root / f"run{run}", group, archs, clock,
                                            lock=mode != "together, no lock")
                overlaps[mode] += spans.overlaps()
                walls[mode] += wall
                for seed, per_arch in got.items():
                    for key, (value, spread) in per_arch.items():
                        lat[mode][seed].setdefault(key, []).append(value)
                        if mode == "alone":
                            prof_spread[seed].setdefault(key, []).append(spread)
        print(f"repeat {r + 1}/{repeats} done", file=sys.stderr)
    rows = []
    for seed in seeds:
        for key, alone in lat["alone"][seed].items():
            a = statistics.median(alone)
            row: dict[str, Any] = {
                "job": seed, "arch": key[:60], "alone_ms": a,
                "alone_spread": (max(alone) - min(alone)) / a if len(alone) > 1 else math.nan,
                "profiler_spread": statistics.median(prof_spread[seed][key])}
            row["allowed"] = max(v for v in (row["alone_spread"], row["profiler_spread"])
                                 if not math.isnan(v))
            for mode in modes[1:]:
                t = statistics.median(lat[mode][seed][key])
                row[f"{mode} ms"] = t
                row[f"{mode} dev"] = abs(t / a - 1)
                row[f"{mode} ok"] = abs(t / a - 1) <= row["allowed"]
            rows.append(row)
    summary: dict[str, Any] = {}
    for mode in modes[1:]:
        logs = [math.log(r[f"{mode} ms"] / r["alone_ms"]) for r in rows]
        mean, lo, hi = t_interval(logs)
        summary[mode] = {
            "within_spread": sum(r[f"{mode} ok"] for r in rows), "archs": len(rows),
            "median_dev": statistics.median(r[f"{mode} dev"] for r in rows),
            "log_ratio_mean": mean, "log_ratio_ci95": [lo, hi],
            "measurement_overlaps": overlaps[mode], "wall_s": walls[mode]}
    summary["alone"] = {"median_alone_spread": statistics.median(
        r["alone_spread"] for r in rows) if repeats > 1 else None,
        "median_profiler_spread": statistics.median(r["profiler_spread"] for r in rows),
        "measurement_overlaps": overlaps["alone"], "wall_s": walls["alone"]}
    return {
        "protocol": {"archs_per_job": archs, "repeats": repeats, "clock": clock or "cpu",
                     "profiler": "torch-cpu, 1 thread, 28x28, batch 1, warmup 5, 5 x 10 calls",
                     "worker": "one Worker, max_concurrent_jobs=2, SQLite, executor local",
                     "warmup_runs": int(warmup),
                     "cpus": os.cpu_count(), "load_avg": os.getloadavg()},
        "summary": summary, "rows": rows,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def print_table(result: dict[str, Any]) -> None:
    p = result["protocol"]
    print("## Two concurrent measured-latency jobs in one worker vs each alone")
    print(f"protocol: {json.dumps(p)}")
    modes = [m for m in result["summary"] if m != "alone"]
    head = f"{'job':>3} {'alone ms':>9} {'spread':>7}" + "".join(
        f" {m + ' ms':>22} {'dev':>6} {'ok':>3}" for m in modes)
    print(head)
    for r in result["rows"]:
        line = f"{r['job']:>3} {r['alone_ms']:9.3f} {r['allowed']:7.3f}"
        for m in modes:
            line += f" {r[m + ' ms']:22.3f} {r[m + ' dev']:6.3f} {'y' if r[m + ' ok'] else 'n':>3}"
        print(line)
    for m in modes:
        s = result["summary"][m]
        print(f"{m}: {s['within_spread']}/{s['archs']} within the single-job spread; median "
              f"|dev| {s['median_dev']:.3f}; log(together/alone) mean {s['log_ratio_mean']:+.4f}"
              f" (95% CI {s['log_ratio_ci95'][0]:+.4f} .. {s['log_ratio_ci95'][1]:+.4f}); "
              f"measurement overlaps {s['measurement_overlaps']}; wall {s['wall_s']:.1f} s")
    a = result["summary"]["alone"]
    print(f"alone: median spread between repeats {a['median_alone_spread']}, profiler's own "
          f"{a['median_profiler_spread']:.3f}; wall {a['wall_s']:.1f} s; "
          f"peak RSS {result['peak_rss_mb']:.0f} MB")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--clock", choices=["cpu", "wall"], default=None)
    ap.add_argument("--skip-ablation", action="store_true")
    ap.add_argument("--out", default=str(REPO / "benchmarks/results/concurrent_jobs.json"))
    args = ap.parse_args(argv)
    result = run_protocol(args.archs, args.repeats, args.clock, not args.skip_ablation)
    print_table(result)
    Path(args.out).write_text(json.dumps(result, indent=1))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
