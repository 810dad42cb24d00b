"""Latency predictor accuracy and measurement stability on this machine.

For each backend (PyTorch eager, ONNX Runtime; CPU, 1 thread, batch 1):

1. sample ``--calibration`` architectures (seed S) and ``--archs`` held-out ones (seed S+1,
   none shared with the calibration set) from the MnasNet space;
2. profile the device: measure every layer those networks use, once, into a fresh look-up
   table, and fit ``latency = a * table_sum + c * layers + b`` on the calibration set;
3. measure every held-out network end to end (interleaved rounds) and compare with the
   prediction: share within +/-10% (and 5%, 20%), median error, Kendall tau; the raw table
   sum (no calibration) for reference;
   By default the layers, the calibration and the held-out networks are timed in the same
   interleaved rounds (``LatencyPredictor.measure_joint``), so the figures are the
   predictor's error, not the machine's drift between passes; ``--separate-calibration``
   measures them apart, as in use; the held-out figures are never used for fitting;
4. stability: measure the held-out networks a second time (rank agreement and per-model
   ratio between the two runs, the share of networks whose two figures agree within 10%: no
   predictor can beat its own measurement by much), the prediction against that second pass
   and against the better of the two, and one network ``--repeat-one`` times. The second
   pass runs minutes later, when the whole machine may be a few percent faster or slower
   (PyTorch: up to ~10% for every network alike); ``..._rescaled`` takes that one factor out.

Run (full; ~15-30 min on an idle 2-core machine)::

    python benchmarks/latency_predictor.py --archs 200 --calibration 50 \
        --out benchmarks/results/latency_predictor.json

Reduced: ``--archs 40 --calibration 20``. On a shared, loaded machine the figures are noisy;
the script reports what it measured, and the load average at start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from search.profilers.measured import (  # noqa: E402
    measure_interleaved,
    model_runner,
    threads_set,
)
from search.profilers.predictor import FEATURES, LatencyPredictor, kendall_tau  # noqa: E402
from spaces.mnasnet import MnasNetSpace  # noqa: E402


def sample_distinct(space, n, seed, exclude=()):
    rng = np.random.default_rng(seed)
    seen = set(exclude)
    out = []
    while len(out) < n:
        arch = space.sample(rng)
        key = space.key(arch)
        if key not in seen:
            seen.add(key)
            out.append(arch)
    return out


def accuracy_stats(pred, meas):
    pred, meas = np.asarray(pred), np.asarray(meas)
    err = pred / meas - 1
    return {
        "within_5pct": float(np.mean(np.abs(err) <= 0.05)),
        "within_10pct": float(np.mean(np.abs(err) <= 0.10)),
        "within_20pct": float(np.mean(np.abs(err) <= 0.20)),
        "median_abs_rel_error": float(np.median(np.abs(err))),
        "p95_abs_rel_error": float(np.percentile(np.abs(err), 95)),
        "mean_rel_error": float(np.mean(err)),
        "kendall_tau": kendall_tau(pred, meas),
    }


def run_backend(backend, space, calib, held, args):
    table = Path(args.table_dir) / f"{backend}.json"
    if table.exists() and not args.reuse_table:
        table.unlink()
    pred = LatencyPredictor(backend, input_shape=args.input_shape, table=str(table),
                            calibration_archs=len(calib), rounds=args.rounds,
                            repeats=args.repeats, clock=args.clock, statistic=args.statistic)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    n_before = len(pred.table()["units"])
    if args.separate_calibration:
        # As in use: the table, then the calibration, then (later) the networks searched.
        pred.prefetch([*calib, *held], space)
        t_units = time.perf_counter() - t0
        t0 = time.perf_counter()
        coef = pred.calibrate(space, calib)
        t_cal = time.perf_counter() - t0
        t0 = time.perf_counter()
        measured = pred.measure_archs(held, space)
        calib_measured = None
    else:
        # Layers, calibration and held-out networks in the same interleaved rounds: the
        # figures measure the predictor, not the machine's drift between passes (reported
        # under stability). The held-out figures are never used for fitting.
        both = pred.measure_joint([*calib, *held], space)
        t_units = t_cal = time.perf_counter() - t0
        calib_measured = both[:len(calib)]
        coef = pred.calibrate(space, calib, measured=calib_measured)
        measured = both[len(calib):]
    units = len(pred.table()["units"]) - n_before
    t_meas = time.perf_counter() - t0
    raw = [pred.raw_sum(x, space) for x in held]
    predicted = [pred.predict(x, space) for x in held]
    second = np.asarray(pred.measure_archs(held, space))
    ratio = second / np.asarray(measured)
    drift = float(np.median(ratio))
    best_of_two = np.minimum(measured, second)
    # One network measured again and again: how much does the reported figure move?
    with threads_set(1):
        runner = model_runner(backend, space.build_model(held[0], args.input_shape, 10),
                              args.input_shape, 1, 1)
        repeated = [measure_interleaved([runner], rounds=args.rounds, repeats=args.repeats,
                                        clock=pred.clock)[0] for _ in range(args.repeat_one)]
    mins = np.asarray([r.value(args.statistic) for r in repeated])
    medians = np.asarray([r.median_ms for r in repeated])
    per_arch = {"arch_keys": [space.key(x) for x in held], "table_sum": raw,
                "layers": [len(space.layer_plan(x, args.input_shape)) for x in held],
                "predicted": predicted, "measured": measured, "measured_again": second.tolist(),
                "calibration_keys": [space.key(x) for x in calib],
                "calibration_measured": calib_measured}
    return {
        "per_arch": per_arch,
        "backend": backend,
        "clock": pred.clock,
        "statistic": args.statistic,
        "layers_measured": units,
        "profile_device_s": round(t_units, 1),
        "calibration": {"coef": dict(zip(FEATURES, coef, strict=True)), "archs": len(calib),
                        "seconds": round(t_cal, 1),
                        "separate_pass": bool(args.separate_calibration)},
        "held_out": len(held),
        "measure_held_out_s": round(t_meas, 1),
        "latency_ms": {"min": float(np.min(measured)), "median": float(np.median(measured)),
                       "max": float(np.max(measured))},
        "calibrated": accuracy_stats(predicted, measured),
        # against the second, separate pass and the better of the two passes per network
        "calibrated_vs_second_pass": accuracy_stats(predicted, second),
        "calibrated_vs_best_of_two": accuracy_stats(predicted, best_of_two),
        # the noise floor: one measurement of a network against another
        "measurement_vs_itself": accuracy_stats(second, measured),
        # the same with the second pass divided by its median ratio to the first: what is
        # left once the machine's speed change between the two passes (one factor for all
        # networks, up to ~10% here) is taken out
        "pass_factor": drift,
        "measurement_vs_itself_rescaled": accuracy_stats(second / drift, measured),
        "calibrated_vs_second_pass_rescaled": accuracy_stats(predicted, second / drift),
        "load": {"start": load_start, "end": os.getloadavg()},
        "raw_table_sum": accuracy_stats(raw, measured),
        "stability": {
            "two_runs_kendall_tau": kendall_tau(measured, second),
            "two_runs_median_abs_ratio_change": float(np.median(np.abs(ratio - 1))),
            "two_runs_p95_abs_ratio_change": float(np.percentile(np.abs(ratio - 1), 95)),
            "one_model_runs": args.repeat_one,
            "one_model_statistic_max_over_min": float(mins.max() / mins.min()),
            "one_model_median_max_over_min": float(medians.max() / medians.min()),
            "one_model_within_run_spread_median": float(np.median(
                [r.spread for r in repeated])),
        },
    }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--archs", type=int, default=200, help="held-out architectures")
    p.add_argument("--calibration", type=int, default=50)
    p.add_argument("--backend", choices=["torch", "onnxruntime", "both"], default="both")
    p.add_argument("--input-shape", type=lambda s: tuple(int(v) for v in s.split(",")),
                   default=(1, 28, 28))
    p.add_argument("--rounds", type=int, default=20)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--clock", choices=["cpu", "wall"], default=None,
                   help="default: cpu (thread CPU time) with 1 thread")
    p.add_argument("--statistic", choices=["min_of_medians", "median", "min"],
                   default="min", help="the figure compared, for the table and the networks "
                   "alike (default: the fastest call over all interleaved rounds, the most "
                   "repeatable figure on a loaded machine; min_of_medians: the minimum over "
                   "rounds of each round's median)")
    p.add_argument("--separate-calibration", action="store_true",
                   help="measure the calibration set in its own pass, before the held-out set")
    p.add_argument("--repeat-one", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--table-dir", default=None, help="default: a fresh temporary folder")
    p.add_argument("--reuse-table", action="store_true")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    args.table_dir = args.table_dir or tempfile.mkdtemp(prefix="lightsearch-lut-")
    space = MnasNetSpace()
    calib = sample_distinct(space, args.calibration, args.seed)
    held = sample_distinct(space, args.archs, args.seed + 1,
                           exclude=[space.key(a) for a in calib])
    report = {"command": " ".join(sys.argv), "space": "mnasnet (default skeleton)",
              "input_shape": list(args.input_shape), "load_start": os.getloadavg(),
              "cpus": os.cpu_count(), "backends": []}
    backends = ["torch", "onnxruntime"] if args.backend == "both" else [args.backend]
    for backend in backends:
        res = run_backend(backend, space, calib, held, args)
        report["backends"].append(res)
        c, r, s = res["calibrated"], res["raw_table_sum"], res["stability"]
        print(f"[{backend}, clock={res['clock']}, {args.statistic}] {res['held_out']} "
              f"held-out archs "
              f"(latency {res['latency_ms']['min']:.2f}-{res['latency_ms']['max']:.2f} ms), "
              f"calibrated on {res['calibration']['archs']}: within 10% "
              f"{c['within_10pct']:.1%} (5%: {c['within_5pct']:.1%}, 20%: "
              f"{c['within_20pct']:.1%}), median error {c['median_abs_rel_error']:.1%}, "
              f"Kendall tau {c['kendall_tau']:.3f}; raw table sum: within 10% "
              f"{r['within_10pct']:.1%}, mean error {r['mean_rel_error']:+.1%}", flush=True)
        print(f"  stability: two runs tau {s['two_runs_kendall_tau']:.3f}, median |ratio-1| "
              f"{s['two_runs_median_abs_ratio_change']:.1%} (p95 "
              f"{s['two_runs_p95_abs_ratio_change']:.1%}); one model x{s['one_model_runs']}: "
              f"{args.statistic} moves {s['one_model_statistic_max_over_min']:.2f}x, median "
              f"{s['one_model_median_max_over_min']:.2f}x; {res['layers_measured']} layers "
              f"profiled in {res['profile_device_s']} s", flush=True)
    report["load_end"] = os.getloadavg()
    print(f"\n{'backend':12s} {'within10':>9s} {'w10 vs 2nd':>10s} {'w10 vs best2':>12s} "
          f"{'meas self w10':>13s} {'(rescaled)':>10s} {'median err':>10s} {'tau':>6s} "
          f"{'raw w10':>8s} "
          f"{'load (start/end, 1 min)':>24s}")
    for res in report["backends"]:
        c = res["calibrated"]
        print(f"{res['backend']:12s} {c['within_10pct']:9.1%} "
              f"{res['calibrated_vs_second_pass']['within_10pct']:10.1%} "
              f"{res['calibrated_vs_best_of_two']['within_10pct']:12.1%} "
              f"{res['measurement_vs_itself']['within_10pct']:13.1%} "
              f"{res['measurement_vs_itself_rescaled']['within_10pct']:10.1%} "
              f"{c['median_abs_rel_error']:10.1%} {c['kendall_tau']:6.3f} "
              f"{res['raw_table_sum']['within_10pct']:8.1%} "
              f"{res['load']['start'][0]:11.2f} / {res['load']['end'][0]:.2f}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
