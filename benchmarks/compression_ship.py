"""Benchmark: are shipped compressed models really faster and smaller?

For each reference model (ResNet-style, MobileNetV2-style): prune to each FLOPs target with
``channel_multiple`` (uniform policy, the simplest agent: any agent's policy goes through the
same export), fine-tune, and export through the job's own code path
(``search.compression.ship.export_compressed_trial``); export an all-8-bit policy the same
way (no fine-tuning: post-training quantization into an int8 QDQ ONNX). Then time the
reference's float32 ONNX and every exported ONNX side by side: ONNX Runtime, batch 1, one
thread, interleaved rounds (round r times every file before round r+1 starts, so the
machine's drift hits all alike), the minimum over rounds of each round's median, thread CPU
time. Each figure is reported next to the reference's, as ratios measured in the same rounds.

Goals (issue 14): pruned latency ratio <= 1.5 x the FLOPs ratio; int8 file <= 0.3 x the
float32 file and within 1 point of its test accuracy. A goal not met is marked ``NO``.

Beside each pruned model's FLOPs ratio stands its ``ORT FLOPs`` ratio: the FLOPs ONNX Runtime
really computes, every channel count rounded up to its NCHWc block (16 with AVX-512, 8 with
AVX2: ``search.compression.latency.ort_nchwc_block``). ``--channel-multiple auto`` uses that
block. ``--floor`` adds, per model, the most compressed policy the space allows (every group
pruned by ``max_prune``, at the channel multiple): the fastest a pruned model of this network
runs, whatever the target.

``--depth on`` adds the ``depth`` control (residual blocks with an identity shortcut may be
dropped whole; the uniform rule drops a block when it would prune it by half its range or
more, ``agents.compression_baselines.scaled_policy``); ``--depth both`` exports every policy
with and without it and times them all in the same rounds. The floor with depth drops every
removable block as well.

    python benchmarks/compression_ship.py --dataset digits --width 2 \
        --out benchmarks/results/compression_ship_digits.json
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from agents.base import TrialState  # noqa: E402
from agents.compression_baselines import uniform_policy  # noqa: E402
from search.compression.factory import make_space, resolve_model  # noqa: E402
from search.compression.latency import ort_nchwc_block, padded_kept  # noqa: E402
from search.compression.ship import export_compressed_trial, onnx_accuracy  # noqa: E402
from search.profilers.measured import (  # noqa: E402
    measure_interleaved,
    onnx_bytes,
    ort_runner,
    ort_session,
    threads_set,
)
from search.sinks import TrialRecord  # noqa: E402
from search.spec import parse_spec  # noqa: E402


def export_policy(model: dict, options: dict, target: dict | None, arch_fn, finetune: float,
                  folder: Path) -> dict[str, Any]:
    """One policy exported exactly as a job's finalize step would; returns its card."""
    space = make_space(model=model, target=target, **options)
    arch = space.validate(arch_fn(space))
    spec = parse_spec({"kind": "compress", "model": model, "target": target,
                       "space": {"name": "compression", "options": options},
                       "agent": {"name": "random"},
                       "evaluator": {"name": "compress",
                                     "options": {"finetune_epochs": finetune,
                                                 "distill_weight": 0.5 if finetune else 0}}})
    trial = TrialRecord(0, arch, space.key(arch), TrialState.COMPLETE, metrics={})
    result = export_compressed_trial(spec, trial, folder, measure_latency=False)
    return {"files": result.files, "card": result.card["compression"],
            "kept": space.kept_channels(arch)}


def ort_flops_ratio(model: dict, kept: dict[int, int], block: int | None,
                    removed: list[str] | None = None) -> float:
    """FLOPs ONNX Runtime computes for ``kept`` channels per group (counts padded to its
    NCHWc block) without the ``removed`` blocks, over the reference's (padded alike; capped
    at each group's size, which changes nothing when the reference's groups are multiples of
    the block)."""
    plain = make_space(model=model, controls=["prune", "depth"] if removed else ["prune"])
    channels = {g.index: g.channels for g in plain.table.groups}

    def flops(counts: dict[int, int], drop: list[str]) -> float:
        padded = padded_kept(counts, block)
        arch = plain.identity()
        for name in arch:
            if name.startswith("prune:"):
                g = plain.group_of(name)
                arch[name] = 1.0 - min(padded[g], channels[g]) / channels[g]
            elif name.removeprefix("depth:") in drop:
                arch[name] = "drop"
        return plain.cost(arch, "flops")

    return flops(kept, removed or []) / flops(channels, [])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dataset", default="digits", choices=["digits", "mnist5k"])
    ap.add_argument("--models", default="resnet_small,mobilenetv2_small")
    ap.add_argument("--width", type=float, default=2.0,
                    help="width multiplier of the references (at 1.0, channel_multiple 8 "
                    "cannot reach 10%% FLOPs: groups of 8-16 channels stop at 8)")
    ap.add_argument("--ref-epochs", type=float, default=10)
    ap.add_argument("--targets", default="0.25,0.1")
    ap.add_argument("--channel-multiple", default="8",
                    help="an integer, or 'auto': ONNX Runtime's NCHWc block on this CPU")
    ap.add_argument("--floor", action="store_true",
                    help="also export the most compressed policy (the latency floor)")
    ap.add_argument("--depth", choices=["off", "on", "both"], default="off",
                    help="the 'depth' control (drop residual blocks): off, on, or both "
                    "(every policy with and without it, timed in the same rounds)")
    ap.add_argument("--flops-block", default="1",
                    help="the space's flops_block: price FLOPs with channels padded to this "
                    "(an integer, or 'auto': ONNX Runtime's NCHWc block); 1: plain FLOPs")
    ap.add_argument("--no-int8", action="store_true", help="skip the 8-bit export")
    ap.add_argument("--finetune", type=float, default=2.0, help="epochs after pruning")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    if args.rounds < 5:
        ap.error("--rounds must be >= 5")
    torch.set_num_threads(1)
    block = ort_nchwc_block()
    args.channel_multiple = (block or 8) if args.channel_multiple == "auto" \
        else int(args.channel_multiple)
    targets = [float(t) for t in args.targets.split(",")]
    if args.flops_block != "auto":
        args.flops_block = int(args.flops_block)
    protocol = {k: getattr(args, k) for k in ("dataset", "width", "ref_epochs", "targets",
                                                "channel_multiple", "finetune", "rounds",
                                                "repeats", "depth", "flops_block")}
    protocol["latency"] = ("ONNX Runtime CPU, batch 1, 1 thread, interleaved rounds, min over "
                           "rounds of each round's median, thread CPU time")
    protocol["policy"] = ("uniform prune ratio meeting the target (controls: prune; with "
                          "depth: prune + depth, the uniform rule's two passes)")
    depths = {"off": [False], "on": [True], "both": [False, True]}[args.depth]
    protocol["ort_nchwc_block"] = block
    print(f"# protocol: {json.dumps(protocol)}", flush=True)
    t0 = time.time()
    load_start = list(os.getloadavg())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models.split(","):
            ref = {"reference": name, "dataset": args.dataset, "epochs": args.ref_epochs,
                   "width": args.width}
            base, data, info = resolve_model(ref)
            shape = data.input_shape
            ref_path = Path(tmp) / f"{name}-ref.onnx"
            ref_path.write_bytes(onnx_bytes(base, torch.zeros(1, *shape), dynamic_batch=True))
            ref_session = ort_session(str(ref_path), 1)
            ref_acc = onnx_accuracy(ref_session, data.test)
            variants: list[tuple[str, dict[str, Any], str]] = []
            out_of_reach: list[dict[str, Any]] = []
            for depth in depths:
                tag = " +depth" if depth else ""
                prune_opts = {"controls": ["prune", "depth"] if depth else ["prune"],
                              "channel_multiple": args.channel_multiple,
                              "flops_block": args.flops_block}
                for ratio in targets:
                    label = f"pruned flops<={ratio:g}{tag}"
                    try:
                        out = export_policy(ref, prune_opts,
                                            {"metric": "flops", "ratio": ratio},
                                            uniform_policy, args.finetune,
                                            Path(tmp) / f"{name}-{ratio}{tag.strip()}")
                    except ValueError as err:  # out of reach at this channel multiple
                        out_of_reach.append({"model": name, "variant": label,
                                             "unreachable": str(err)})
                        print(f"# {name} {label}: {err}", flush=True)
                        continue
                    variants.append((label, out, "onnx"))
                if args.floor:
                    out = export_policy(ref, prune_opts, None, lambda s: s.most_compressed(),
                                        0.0, Path(tmp) / f"{name}-floor{tag.strip()}")
                    variants.append((f"floor (most pruned){tag}", out, "onnx"))
            if not args.no_int8:
                out = export_policy(ref, {"controls": ["bits"], "bit_choices": [8]}, None,
                                    lambda s: s.identity(), 0.0, Path(tmp) / f"{name}-int8")
                variants.append(("8-bit (int8 ONNX)", out, "onnx_int8"))
            paths = [ref_path] + [Path(v[1]["files"][key]) for v in variants for key in [v[2]]]
            x = np.zeros((1, *shape), np.float32)
            sessions = [ref_session] + [ort_session(str(p), 1) for p in paths[1:]]
            with threads_set(1):
                stats = measure_interleaved([ort_runner(s, x) for s in sessions],
                                            rounds=args.rounds, repeats=args.repeats)
            ref_ms = stats[0].min_ms
            ref_bytes = ref_path.stat().st_size
            rows.append({"model": name, "variant": "reference (float32)", "flops_ratio": 1.0,
                         "ort_ms": ref_ms, "latency_ratio": 1.0, "file_bytes": ref_bytes,
                         "size_ratio": 1.0, "test_acc": ref_acc, "ref_test_acc": ref_acc,
                         "ref_ort_ms": ref_ms})
            rows.extend(out_of_reach)
            for (label, out, key), st, path in zip(variants, stats[1:], paths[1:], strict=True):
                card = out["card"]
                acc_key = "onnx_int8_test_acc" if key == "onnx_int8" else "onnx_test_acc"
                per_round = [a / b for a, b in zip(st.round_medians, stats[0].round_medians,
                                                   strict=True)]
                row = {"model": name, "variant": label,
                       "flops_ratio": card["flops"]["ratio"], "ort_ms": st.min_ms,
                       "ref_ort_ms": ref_ms, "latency_ratio": st.min_ms / ref_ms,
                       "latency_ratio_per_round": [round(r, 4) for r in per_round],
                       "file_bytes": path.stat().st_size,
                       "size_ratio": path.stat().st_size / ref_bytes,
                       "test_acc": card["accuracy"][acc_key], "ref_test_acc": ref_acc,
                       "shipped_state": card["shipped_state"],
                       "kept": [r.get("channels") for r in card["policy"] if "channels" in r]}
                if key == "onnx":
                    removed = card.get("removed_blocks") or []
                    row["ort_flops_ratio"] = ort_flops_ratio(ref, out["kept"], block, removed)
                    row["kept_per_group"] = [out["kept"][g] for g in sorted(out["kept"])]
                    row["removed_blocks"] = removed
                    row["onnx_nodes"] = onnx_nodes(path)
                if label.startswith("pruned"):
                    row["goal"] = f"latency <= {1.5 * row['flops_ratio']:.3f}x"
                    row["met"] = row["latency_ratio"] <= 1.5 * row["flops_ratio"]
                elif key == "onnx_int8":
                    row["goal"] = "size <= 0.3x, acc within 1 pt"
                    row["met"] = row["size_ratio"] <= 0.3 and abs(
                        row["test_acc"] - ref_acc) <= 1.0
                rows.append(row)
            print(f"# {name}: done at {time.time() - t0:.0f} s", flush=True)
    print_table(rows)
    report = {"command": " ".join(sys.argv), "protocol": protocol, "rows": rows,
              "elapsed_s": round(time.time() - t0, 1),
              "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
              "load_average_start": load_start, "load_average": list(os.getloadavg())}
    if args.out:
        Path(args.out).write_text(json.dumps(report, indent=1))
        print(f"wrote {args.out}")
    return 0


def onnx_nodes(path: Path) -> int:
    """Operators in an ONNX file (each has a fixed cost in ONNX Runtime)."""
    import onnx

    return len(onnx.load(str(path)).graph.node)


def print_table(rows: list[dict[str, Any]]) -> None:
    head = (f"{'model':<18} {'variant':<29} {'FLOPs':>6} {'ORT FL':>6} {'ORT ms':>8} "
            f"{'ref ms':>8} "
            f"{'lat/ref':>7} {'bytes':>9} {'size':>6} {'test%':>6} {'ref%':>6}  goal")
    print(head)
    print("-" * len(head))
    for r in rows:
        if "unreachable" in r:
            print(f"{r['model']:<18} {r['variant']:<29} out of reach at this channel multiple")
            continue
        ort_flops = f"{r['ort_flops_ratio']:>6.3f}" if "ort_flops_ratio" in r else f"{'':>6}"
        goal = "" if "goal" not in r else f"{r['goal']}: {'met' if r['met'] else 'NO'}"
        print(f"{r['model']:<18} {r['variant']:<29} {r['flops_ratio']:>6.3f} {ort_flops} "
              f"{r['ort_ms']:>8.4f} {r['ref_ort_ms']:>8.4f} {r['latency_ratio']:>7.3f} "
              f"{r['file_bytes']:>9,} {r['size_ratio']:>6.3f} {r['test_acc']:>6.2f} "
              f"{r['ref_test_acc']:>6.2f}  {goal}")


if __name__ == "__main__":
    sys.exit(main())
