"""Re-run one ``amc_iter`` row of ``benchmarks/amc_fashion.py`` and print what the row hides:
the kept channels of the final policy and the mean loss of every fine-tuning epoch.

Why: a two-stage policy can fine-tune fine for 1 epoch and collapse in 3 (MobileNetV2 10%,
seed 13: 77.4% then 10.0%); this shows the losses and the policy that did it::

    python benchmarks/amc_iter_diagnosis.py \
        --results benchmarks/results/amc_fashion_mbv2_10_iter300_seeds10-14.json --seed 13
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from benchmarks import amc_fashion  # noqa: E402
from search.compression.apply import apply_policy  # noqa: E402
from search.compression.data import ImageData, load_dataset  # noqa: E402
from search.compression.finetune import evaluate_accuracy, train_epochs  # noqa: E402
from search.compression.graph import analyze  # noqa: E402
from search.compression.reference import trained_reference  # noqa: E402
from spaces.compression import CompressionSpace  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", required=True, help="an amc_fashion JSON (its settings)")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--target", default="mobilenetv2_small:flops:0.1")
    cli = ap.parse_args(argv)
    torch.set_num_threads(1)
    args = argparse.Namespace(**json.loads(Path(cli.results).read_text())["args"])
    model_name, metric, ratio = cli.target.split(":")
    full = load_dataset("fashion_mnist", seed=0)
    data = ImageData(full.name, full.train.head(args.train_size or len(full.train)),
                     full.val.head(args.val_size or len(full.val)), full.test,
                     full.num_classes)
    model, _ = trained_reference(model_name, data, epochs=args.ref_epochs, width=args.width)
    model.eval()
    space = CompressionSpace(analyze(model, data.input_shape).table, controls=["prune"],
                             target={"metric": metric, "ratio": float(ratio)})
    stage1, space2, arch, _ = amc_fashion.iterative_search(model, space, data, cli.seed, args)
    kept = {k.removeprefix("prune:"): space2.keep(space2.group_of(k), v) for k, v in arch.items()}
    print("kept channels:", kept, flush=True)
    for epochs in args.epochs:
        comp = apply_policy(stage1, space2, arch, calib=data.train, seed=cli.seed,
                            least_squares=args.least_squares, calib_samples=args.calib_samples)
        losses = train_epochs(comp.model, data.train, epochs=epochs, lr=args.ft_lr, seed=cli.seed)
        acc = 100 * evaluate_accuracy(comp.model, full.test.head(args.test_size or len(full.test)))
        print(f"{epochs:g} epochs: mean loss per epoch {[round(x, 3) for x in losses]}, "
              f"test {acc:.2f}%", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
