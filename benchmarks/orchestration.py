"""Orchestration overhead: a tabular NAS job through the whole service stack vs Optuna and
Ray Tune running the same tabular objective.

LightSearch: ``lightsearch serve`` in a subprocess (SQLite in a temporary data folder), the job
submitted over REST, timed from the POST until the job reads ``succeeded``; every trial is
committed (checked by counting them through the API). Optuna: ``RandomSampler`` with RDB
storage on SQLite. Ray Tune: ``Tuner`` with ``reuse_actors=True`` and random search. All three
look up NAS-Bench-201 CIFAR-10 ``val_acc`` for random cells.

    python benchmarks/orchestration.py                       # 2,000 trials each
    python benchmarks/orchestration.py --trials 2000 --baseline-trials 500 --out r.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.service.conftest import free_port  # noqa: E402
from tests.service.proc import Server  # noqa: E402

OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES = ("edge_0_1", "edge_0_2", "edge_1_2", "edge_0_3", "edge_1_3", "edge_2_3")


def _objective():
    from search.evaluators.tabular import TabularEvaluator
    from spaces.nb201 import NB201Space

    space, evaluator = NB201Space(), TabularEvaluator(signal="val_acc", record=[])

    def val_acc(arch: dict[str, str]) -> float:
        return evaluator.evaluate(arch, space, seed=0).metrics["val_acc"]

    val_acc({e: "nor_conv_3x3" for e in EDGES})  # load the table outside the timing
    return val_acc


def run_lightsearch(trials: int, executor: str, batch: int, work: Path) -> dict[str, Any]:
    spec = {"name": f"bench-{executor}", "agent": {"name": "random"},
            "evaluator": {"name": "tabular", "options": {"signal": "val_acc", "record": []}},
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": trials},
            "executor": {"name": executor, "batch_size": batch}, "seed": 0}
    server = Server(work / f"data-{executor}", free_port(),
                    LIGHTSEARCH_EXECUTOR="spec", LIGHTSEARCH_POLL_S="0.05").start()
    try:
        with server.client() as http:
            # A warm-up job first: the worker imports the search stack, reads the table and
            # (ray) starts Ray once, then keeps them for every job, as a running service does.
            warm = http.post("/jobs", json={**spec, "budget": {"evaluations": 8}}).json()
            _wait(http, warm["id"])
            start = time.perf_counter()
            job = http.post("/jobs", json=spec).json()
            job = _wait(http, job["id"])
            elapsed = time.perf_counter() - start
            count = http.get(f"/jobs/{job['id']}/trials", params={"limit": 1}).json()["count"]
    finally:
        server.stop()
    p = job["progress"]
    assert job["status"] == "succeeded", job["reason"]
    assert count == p["trials"], (count, p)
    return {"system": f"lightsearch ({executor} executor, batch {batch})",
            "evaluations": p["evaluations"], "trials_committed": count,
            "seconds": elapsed, "evaluations_per_s": p["evaluations"] / elapsed,
            "trials_per_s": count / elapsed}


def _wait(http: Any, job_id: str) -> dict[str, Any]:
    while True:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.02)


def run_optuna(trials: int, work: Path) -> dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    val_acc = _objective()
    storage = f"sqlite:///{work / 'optuna.db'}"
    study = optuna.create_study(storage=storage, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=0))

    def objective(trial: Any) -> float:
        return val_acc({e: trial.suggest_categorical(e, OPS) for e in EDGES})

    start = time.perf_counter()
    study.optimize(objective, n_trials=trials)
    elapsed = time.perf_counter() - start
    return {"system": "optuna (RandomSampler, RDB storage on SQLite)", "evaluations": trials,
            "trials_committed": len(study.trials), "seconds": elapsed,
            "evaluations_per_s": trials / elapsed, "trials_per_s": trials / elapsed}


def run_ray_tune(trials: int, work: Path) -> dict[str, Any]:
    import ray
    from ray import tune

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO)}})

    def trainable(config: dict[str, str]) -> dict[str, float]:
        from search.evaluators.tabular import TabularEvaluator
        from spaces.nb201 import NB201Space

        arch = {e: config[e] for e in EDGES}
        return {"val_acc": TabularEvaluator(signal="val_acc", record=[]).evaluate(
            arch, NB201Space(), seed=0).metrics["val_acc"]}

    tuner = tune.Tuner(
        trainable, param_space={e: tune.choice(list(OPS)) for e in EDGES},
        tune_config=tune.TuneConfig(num_samples=trials, reuse_actors=True, metric="val_acc",
                                    mode="max"),
        run_config=tune.RunConfig(storage_path=str(work / "tune"), verbose=0))
    start = time.perf_counter()
    results = tuner.fit()
    elapsed = time.perf_counter() - start
    ray.shutdown()
    return {"system": "ray tune (Tuner, reuse_actors=True, random)", "evaluations": trials,
            "trials_committed": len(results), "seconds": elapsed,
            "evaluations_per_s": trials / elapsed, "trials_per_s": trials / elapsed}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=2000, help="LightSearch evaluations")
    ap.add_argument("--baseline-trials", type=int, default=2000,
                    help="trials for Optuna and Ray Tune (rates are compared)")
    ap.add_argument("--batch", type=int, default=100, help="LightSearch batch size")
    ap.add_argument("--skip", nargs="*", default=[],
                    choices=["local", "ray", "optuna", "tune"])
    ap.add_argument("--out", help="write the results as JSON here")
    args = ap.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for executor in ("local", "ray"):
            if executor not in args.skip:
                rows.append(run_lightsearch(args.trials, executor, args.batch, work))
                print(json.dumps(rows[-1]), flush=True)
        if "optuna" not in args.skip:
            rows.append(run_optuna(args.baseline_trials, work))
            print(json.dumps(rows[-1]), flush=True)
        if "tune" not in args.skip:
            rows.append(run_ray_tune(args.baseline_trials, work))
            print(json.dumps(rows[-1]), flush=True)
    base = {r["system"].split()[0]: r["evaluations_per_s"] for r in rows}
    print(f"\n{'system':55} {'evals':>6} {'trials':>6} {'s':>7} {'evals/s':>8}")
    for r in rows:
        print(f"{r['system']:55} {r['evaluations']:>6} {r['trials_committed']:>6} "
              f"{r['seconds']:>7.2f} {r['evaluations_per_s']:>8.1f}")
    for r in rows:
        if r["system"].startswith("lightsearch"):
            ratios = ", ".join(f"{v / base[k]:.1f}x {k}" for k, v in
                               [(k, r["evaluations_per_s"]) for k in ("optuna", "ray")
                                if k in base and not r["system"].startswith(k)])
            print(f"{r['system']}: {ratios}")
    if args.out:
        Path(args.out).write_text(json.dumps({"cpus": os.cpu_count(), "rows": rows}, indent=1))


if __name__ == "__main__":
    main()
