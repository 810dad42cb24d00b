"""Scale-out on a Ray cluster: trials per minute with 1 and 2 worker nodes (real training),
each node's busy share, and the scheduler's idle time per trial against Ray Tune running the
same trials on the same cluster.

A hand-made cluster on this machine (``tests.service.proc.LocalRayCluster``): a head with no
CPU for trials and N worker nodes with one CPU each. LightSearch: the search loop
(``run_search``, random agent, executor ``ray`` with ``chunk_size`` 1 and ``batch_size`` =
worker CPUs x ``--batch-factor``) proxy-training each candidate on mnist5k with one thread;
``--modes batch steady`` runs it in each executor mode (``steady``: a finished trial is
replaced at once instead of the batch waiting for its slowest one).
Ray Tune: a function trainable that trains the same architectures with the same evaluator
and seeds, one CPU per trial, actors reused, no concurrency limit beyond the cluster's
CPUs. Each run is in a fresh process that connects to the cluster before its clock starts.

Idle per trial = (worker CPUs x wall - sum of trial compute times) / trials: how long a
worker CPU stood idle per trial, whatever the cause (scheduling, result handling, a batch
waiting for its slowest trial, process start-up). Compute time is measured around the
evaluator's call on the node, the same way for both.

    python -m benchmarks.scale_out                                  # 24 trials, 1 and 2 nodes
    python -m benchmarks.scale_out --trials 40 --workers 1 2 --out benchmarks/results/scale_out.json
    python -m benchmarks.scale_out --trials 24 --samples 4000 --modes batch steady \
        --out benchmarks/results/scale_out_steady_4000.json
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.common import in_fresh_process  # noqa: E402
from tests.service.proc import LocalRayCluster  # noqa: E402


def evaluator(samples: int = 1000) -> dict[str, Any]:
    """The trials' training: ``samples`` mnist5k images, one epoch, one thread."""
    return {"name": "train", "options": {
        "dataset": {"source": "mnist5k", "max_samples": samples, "seed": 0},
        "epochs": 1, "batch_size": 32, "lr": 0.1, "threads": 1}}


def _spec(trials: int, batch: int, address: str, seed: int, samples: int,
          mode: str = "batch") -> dict[str, Any]:
    return {"name": "scale-out", "space": {"name": "mnasnet"}, "agent": {"name": "random"},
            "evaluator": evaluator(samples),
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": trials},
            "executor": {"name": "ray", "address": address, "batch_size": batch,
                         "chunk_size": 1, "mode": mode}, "seed": seed}


def _summary(wall: float, durations: list[float], nodes: list[str], cpus: int,
             ) -> dict[str, Any]:
    busy: dict[str, float] = {}
    for node, seconds in zip(nodes, durations, strict=True):
        busy[node] = busy.get(node, 0.0) + seconds
    n = max(len(durations), 1)
    return {"trials": len(durations), "wall_s": wall, "trials_per_min": 60 * n / wall,
            "compute_s": sum(durations), "idle_per_trial_s": (cpus * wall - sum(durations)) / n,
            "node_busy_share": sorted((b / wall for b in busy.values()), reverse=True),
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_lightsearch(address: str, env: dict[str, str], trials: int, batch: int, cpus: int,
                    seed: int, samples: int = 1000, mode: str = "batch") -> dict[str, Any]:
    os.environ.update(env)
    import ray

    from search.loop import run_search
    from search.sinks import MemorySink
    from search.spec import JobSpec

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    sink = MemorySink()
    start = time.perf_counter()
    spec = JobSpec.model_validate(_spec(trials, batch, address, seed, samples, mode))
    summary = run_search(spec, sink)
    wall = time.perf_counter() - start
    done = [t for t in sink.trials if not t.cached and t.state.value == "complete"]
    out = _summary(wall, [t.duration_s for t in done], [str(t.node) for t in done], cpus)
    out.update(status=summary.status, archs=[t.arch for t in done],
               seeds=[t.recorded.get("seed") for t in done])
    ray.shutdown()
    return out


def _tune_trial(config: dict[str, Any], archs: list[dict[str, Any]] = (),
                seed: int = 0, samples: int = 1000) -> None:
    import ray
    from ray import tune

    from search.loop import evaluation_seed
    from search.registry import EVALUATORS
    from spaces.registry import SPACES

    space = SPACES.create("mnasnet", options={})
    spec = evaluator(samples)
    trainer = EVALUATORS.create(spec["name"], options=spec["options"])
    arch = space.validate(archs[config["i"]])
    start = time.perf_counter()
    evaluation = trainer.evaluate(arch, space, seed=evaluation_seed(seed, space.key(arch)))
    tune.report({"compute_s": time.perf_counter() - start,
                 "node": ray.get_runtime_context().get_node_id(),
                 "val_acc": evaluation.metrics["val_acc"]})


def run_tune(address: str, env: dict[str, str], archs: list[dict[str, Any]], cpus: int,
             seed: int, samples: int = 1000) -> dict[str, Any]:
    os.environ.update(env)
    import ray
    from ray import tune

    ray.init(address=address, include_dashboard=False, log_to_driver=False)
    storage = tempfile.mkdtemp(prefix="tune-")
    tuner = tune.Tuner(
        tune.with_resources(tune.with_parameters(_tune_trial, archs=archs, seed=seed,
                                                  samples=samples),
                            {"cpu": 1}),
        param_space={"i": tune.grid_search(list(range(len(archs))))},
        tune_config=tune.TuneConfig(reuse_actors=True),  # Tune's fastest setting here
        run_config=tune.RunConfig(storage_path=storage, verbose=0))
    start = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - start
    rows = [r.metrics for r in results if r.error is None and "compute_s" in r.metrics]
    out = _summary(wall, [r["compute_s"] for r in rows], [r["node"] for r in rows], cpus)
    out["failed"] = sum(r.error is not None for r in results)
    ray.shutdown()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=24)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--batch-factor", type=int, default=1,
                        help="LightSearch batch_size = worker CPUs x this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--samples", type=int, default=1000,
                        help="training images per trial (longer trials: overhead matters less)")
    parser.add_argument("--modes", nargs="+", choices=["batch", "steady"], default=["batch"],
                        help="LightSearch executor modes to run (each beside the same Tune run)")
    parser.add_argument("--no-tune", action="store_true")
    parser.add_argument("--out", default="benchmarks/results/scale_out.json")
    args = parser.parse_args(argv)

    rows: list[dict[str, Any]] = []
    load = os.getloadavg()
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as tmp, \
                LocalRayCluster(Path(tmp) / "token", workers=workers, head_cpus=0) as cluster:
            env = dict(cluster.ray_env)
            archs = None
            for mode in args.modes:
                ls = in_fresh_process(run_lightsearch, cluster.address, env, args.trials,
                                      workers * args.batch_factor, workers, args.seed,
                                      args.samples, mode, failed={"trials": 0})
                rows.append({"system": f"lightsearch-{mode}", "workers": workers,
                             "batch_size": workers * args.batch_factor,
                             **{k: v for k, v in ls.items() if k not in ("archs", "seeds")}})
                archs = archs or ls.get("archs")
            if not args.no_tune and archs:
                tune_row = in_fresh_process(run_tune, cluster.address, env, archs,
                                            workers, args.seed, args.samples,
                                            failed={"trials": 0})
                rows.append({"system": "ray-tune", "workers": workers, "batch_size": None,
                             **tune_row})
    base = {r["system"]: r.get("trials_per_min") for r in rows if r["workers"] == 1}
    print(f"{args.trials} trials, proxy training on mnist5k ({args.samples} samples, 1 epoch, "
          "1 thread); "
          f"load average at start {load[0]:.1f}")
    print(f"{'system':18} {'nodes':>5} {'batch':>5} {'trials':>6} {'wall s':>7} "
          f"{'trials/min':>10} {'x 1 node':>8} {'idle/trial s':>12}  busy share per node")
    for r in rows:
        if r.get("error"):
            print(f"{r['system']:18} {r['workers']:5} failed: {r['error'][:200]}")
            continue
        ratio = r["trials_per_min"] / base[r["system"]] if base.get(r["system"]) else None
        print(f"{r['system']:18} {r['workers']:5} {r['batch_size'] or '-':>5} {r['trials']:6} "
              f"{r['wall_s']:7.1f} {r['trials_per_min']:10.2f} "
              f"{ratio if ratio is not None else float('nan'):8.2f} "
              f"{r['idle_per_trial_s']:12.2f}  "
              + " ".join(f"{b:.2f}" for b in r["node_busy_share"]))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"args": vars(args), "load_average_start": load,
                               "load_average_end": os.getloadavg(), "rows": rows}, indent=1))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
