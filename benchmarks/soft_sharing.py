"""Soft weight sharing against k-means sharing and 8-bit quantization, on the reference models.

Protocol (printed with the table, stored in the JSON): for each reference model (trained in the
job on ``--dataset`` by the seed) and seed, one policy per method applied to every layer:

- ``kmeans-b``: k-means weight sharing, ``2**b``-entry codebooks (Deep Compression);
- ``soft-b``: soft weight sharing, ``2**b - 1`` mixture components plus the zero one,
  retrained ``--soft-epochs`` epochs under the prior (Ullrich et al. 2017);
- ``int8``: 8-bit per-channel quantization.

Every method then gets the same fine-tuning (``--finetune`` epochs; the better state on
validation is kept, as compress jobs ship). Size is the weights' bytes in the exported format
against dense float32, counted on the model itself (zeros that soft sharing pruned count as
pruned); test accuracy is in percent. Mean and std over seeds, and the paired per-seed
difference soft - kmeans at the same bits with its 95% interval.

    python benchmarks/soft_sharing.py --dataset mnist5k --seeds 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.common import mean_ci  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "soft_sharing.json"


def weight_size_ratio(model: Any) -> float:
    """Bytes of the weighted layers in the exported format over dense float32 bytes."""
    from torch import nn

    from search.compression.quantize import Binarize, Quantize, Share, weight_format
    from spaces.compression import weight_bytes

    packed = dense = 0.0
    for m in model.modules():
        if not isinstance(m, nn.Conv2d | nn.Linear):
            continue
        w = m.weight.detach()
        fmt = weight_format(m)
        bits = fmt.bits if isinstance(fmt, Quantize | Binarize) else None
        share = fmt.bits if isinstance(fmt, Share) else None
        packed += weight_bytes(w.numel(), int((w != 0).sum()), bits, share, w.shape[0])
        dense += 4.0 * w.numel()
    return packed / dense


def run(model_name: str, method: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from search.compression.factory import make_space
    from search.compression.finetune import evaluate_accuracy
    from search.compression.options import CompressEvaluatorOptions
    from search.compression.pipeline import compress_trial

    ref = {"reference": model_name, "dataset": args.dataset, "epochs": args.ref_epochs,
           "seed": seed}
    if args.limit:
        ref["limit"] = args.limit
    kind, _, b = method.partition("-")
    controls = ["bits"] if kind == "int8" else ["share"]
    soft = {"epochs": args.soft_epochs} if kind == "soft" else None
    space = make_space(model=ref, controls=controls, share_choices=[int(b) if b else 2],
                       bit_choices=[8], soft_share=soft)
    arch = {d.name: d.choices[-1] for d in space.decisions}
    opts = CompressEvaluatorOptions(model=ref, finetune_epochs=args.finetune, signal="shipped")
    t0 = time.perf_counter()
    trial = compress_trial(opts, space, arch, seed=seed)
    return {"model": model_name, "method": method, "seed": seed,
            "test_acc": 100 * evaluate_accuracy(trial.model, trial.data.test),
            "base_test_acc": trial.recorded["base_test_acc"],
            "size_ratio": weight_size_ratio(trial.model),
            "seconds": round(time.perf_counter() - t0, 1)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="resnet_small,mobilenetv2_small")
    p.add_argument("--methods", default="int8,kmeans-2,soft-2,kmeans-4,soft-4")
    p.add_argument("--dataset", default="mnist5k")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--ref-epochs", type=float, default=5)
    p.add_argument("--soft-epochs", type=float, default=5)
    p.add_argument("--finetune", type=float, default=1)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    load_start = os.getloadavg()
    rows = []
    for model_name in args.models.split(","):
        for seed in range(args.seeds):
            for method in args.methods.split(","):
                r = run(model_name, method, seed, args)
                rows.append(r)
                print(f"{model_name:18s} seed {seed} {method:9s} test {r['test_acc']:6.2f} "
                      f"(base {r['base_test_acc']:.2f}) size {100 * r['size_ratio']:.2f}% "
                      f"{r['seconds']} s", flush=True)
    summary: dict[str, Any] = {}
    print(f"\nprotocol: {args.dataset}, {args.seeds} seeds, reference {args.ref_epochs} epochs, "
          f"soft retraining {args.soft_epochs} epochs, fine-tune {args.finetune} epoch(s)")
    print(f"{'model':18s} {'method':9s} {'test acc':>14s} {'size vs fp32':>13s} "
          f"{'soft-kmeans (95% CI)':>22s}")
    for model_name in args.models.split(","):
        for method in args.methods.split(","):
            mine = [r for r in rows if r["model"] == model_name and r["method"] == method]
            acc = [r["test_acc"] for r in mine]
            size = [r["size_ratio"] for r in mine]
            entry = {"test_acc": mean_ci(acc), "test_acc_std": float(np.std(acc)),
                     "size_ratio": float(np.mean(size))}
            paired = ""
            if method.startswith("soft-"):
                twin = {r["seed"]: r["test_acc"] for r in rows if r["model"] == model_name
                        and r["method"] == "kmeans-" + method.split("-")[1]}
                if twin:
                    d = mean_ci([r["test_acc"] - twin[r["seed"]] for r in mine])
                    entry["minus_kmeans"] = d
                    paired = f"{d[0]:+.2f} ± {d[1]:.2f}"
            summary[f"{model_name}/{method}"] = entry
            print(f"{model_name:18s} {method:9s} {np.mean(acc):7.2f} ± {np.std(acc):4.2f} "
                  f"{100 * np.mean(size):12.2f}% {paired:>22s}")
    report = {"command": " ".join(sys.argv), "args": vars(args), "summary": summary,
              "rows": rows, "load_start": load_start, "load_end": os.getloadavg(),
              "peak_rss_MiB": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    print(f"report: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
