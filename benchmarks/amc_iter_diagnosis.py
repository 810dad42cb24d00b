"""Re-run one row of ``benchmarks/amc_fashion.py`` and print what its table hides: the kept
channels of the final policy and the mean loss of every fine-tuning epoch.

Why: a two-stage policy can fine-tune fine for 1 epoch and collapse in 3 (MobileNetV2 10%,
seed 13: 77.4% then 10.0%); this shows the losses and the policy that did it::

    python benchmarks/amc_iter_diagnosis.py \\
        --results benchmarks/results/amc_fashion_mbv2_10_iter300_seeds10-14.json --seed 13
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks import amc_fashion  # noqa: E402
from search.compression.graph import analyze  # noqa: E402
from search.compression.reference import trained_reference  # noqa: E402
from spaces.compression import CompressionSpace  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="an amc_fashion JSON (its settings)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--method", default="amc_iter")
    ap.add_argument("--target", default="mobilenetv2_small:flops:0.1", help="FLOPs targets")
    cli = ap.parse_args(argv)
    # Files from before an option existed ran with what is now its non-default value.
    before = {"iter_bound": "stage", "ft_warmup": 0.0}
    args = argparse.Namespace(**{**before, **json.loads(Path(cli.results).read_text())["args"]})
    model_name, metric, ratio = cli.target.split(":")
    data, test = amc_fashion.fashion_splits(args)
    model, _ = trained_reference(model_name, data, epochs=args.ref_epochs, width=args.width)
    model.eval()
    space = CompressionSpace(analyze(model, data.input_shape).table, controls=["prune"],
                             target={"metric": metric, "ratio": float(ratio)})
    row = amc_fashion.run_row(model, space, data, test, cli.method, cli.seed, args)
    print("kept channels:", row["kept"], flush=True)
    for ep in args.epochs:
        losses = [round(x, 3) for x in row[f"ft_losses{ep:g}"]]
        print(f"{ep:g} epochs: mean loss per epoch {losses}, "
              f"test {row[f'test_acc_ft{ep:g}']:.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
