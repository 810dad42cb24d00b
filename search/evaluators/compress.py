"""The ``compress`` evaluator: apply a compression policy for real and score it.

Per trial: prune/quantize a copy of the job's trained model as the policy says, recalibrate
batch norm, measure validation accuracy (the search signal, AMC's reward input), optionally
fine-tune (with distillation from the original), export the artifact and time the exported
model. Agents see validation accuracy, error, FLOPs, parameters, size and latency; test
accuracy is recorded only.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path
from typing import Any

from search.base import Evaluation, Evaluator
from search.compression.apply import apply_policy
from search.compression.export import export_model, load_artifact
from search.compression.factory import resolve_model
from search.compression.finetune import evaluate_accuracy, train_epochs
from search.compression.measure import count_flops, count_params, measure_latency_ms
from search.compression.options import CompressEvaluatorOptions
from search.compression.report import plot_policy
from spaces.base import Architecture, Space
from spaces.compression import CompressionSpace
from spaces.isolation import seeded


class CompressionEvaluator(Evaluator):
    name = "compress"

    def __init__(self, **options: Any) -> None:
        self.options = CompressEvaluatorOptions.model_validate(options)
        if self.options.model is None:
            raise ValueError("model: the compress evaluator needs the model to compress "
                             "(a compression job's top-level 'model' fills it)")

    def signal_metrics(self) -> list[str]:
        return ["val_acc", "error", "flops", "params", "size_bytes", "latency_ms",
                "flops_ratio", "params_ratio", "size_ratio", "amc_reward", "amc_reward_flops"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        if not isinstance(space, CompressionSpace):
            raise TypeError(f"the compress evaluator needs the 'compression' space, got "
                            f"{space.name!r}")
        opts = self.options
        base, data, base_info = resolve_model(opts.model)
        shape = data.input_shape
        with seeded(seed):  # layers it builds draw from torch's generator: one job at a time
            comp = apply_policy(base, space, arch, calib=data.train,
                                recalibrate=opts.recalibrate_bn,
                                least_squares=opts.least_squares,
                                calib_samples=opts.calib_samples, seed=seed)
        model = comp.model
        val_before = evaluate_accuracy(model, data.val)
        recorded: dict[str, Any] = {
            "val_acc_before_finetune": 100 * val_before,
            "test_acc_before_finetune": 100 * evaluate_accuracy(model, data.test),
            "base_val_acc": 100 * base_info["val_acc"],
            "base_test_acc": 100 * base_info["test_acc"],
            "policy": policy_rows(space, arch, comp.kept),
            "meets_target": space.fits(arch),
        }
        val = val_before
        if opts.finetune_epochs > 0:
            train_epochs(model, data.train, epochs=opts.finetune_epochs, lr=opts.lr,
                         batch_size=opts.batch_size, seed=seed,
                         teacher=base if opts.distill_weight > 0 else None,
                         temperature=opts.temperature, distill_weight=opts.distill_weight)
            val_after = evaluate_accuracy(model, data.val)
            recorded["val_acc_after_finetune"] = 100 * val_after
            recorded["test_acc_after_finetune"] = 100 * evaluate_accuracy(model, data.test)
            if opts.signal == "after_finetune":
                val = val_after
        flops = count_flops(model, shape)
        params = count_params(model)
        base_costs = space.costs({})
        artifacts: dict[str, str] = {}
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = Path(opts.export_dir) if opts.export_dir else Path(tmp)
            out_dir.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha1(space.key(arch).encode()).hexdigest()[:12]
            path = out_dir / f"model-{digest}.lsz"
            sizes = export_model(model, path, input_shape=shape,
                                 meta={"policy": space.validate(arch)})
            latency = None
            if opts.measure_latency:
                exported, _ = load_artifact(path)
                latency = measure_latency_ms(exported, shape)
            if opts.export_dir:
                artifacts["model"] = str(path)
                plot = plot_policy(recorded["policy"], path.with_suffix(".png"),
                                   title=f"val acc {100 * val:.1f}%, FLOPs {flops:,}")
                artifacts["policy_plot"] = str(plot)
        error = 1.0 - val
        metrics = {
            "val_acc": 100 * val, "error": error, "flops": float(flops), "params": float(params),
            "size_bytes": float(sizes["size_bytes"]), "weight_bytes": float(sizes["weight_bytes"]),
            "flops_ratio": flops / base_costs["flops"],
            "params_ratio": params / base_costs["params"],
            "size_ratio": space.cost(arch, "size") / base_costs["size"],
            "amc_reward": -error,
            "amc_reward_flops": -error * math.log(max(flops, 1)),
        }
        if latency is not None:
            metrics["latency_ms"] = latency
        return Evaluation(metrics=metrics, recorded=recorded, artifacts=artifacts)


def policy_rows(space: CompressionSpace, arch: Architecture,
                kept: dict[int, int]) -> list[dict[str, Any]]:
    """The policy per layer, readable: channels kept of each group and each layer's format."""
    rows = []
    arch = space.validate(arch)
    leaders = {g.leader: g for g in space.table.groups}
    for step in space.steps:
        row: dict[str, Any] = {"layer": step.layer}
        for control, name in step.decisions.items():
            row[control] = arch[name]
        if step.layer in leaders:
            g = leaders[step.layer]
            row["channels"] = f"{kept.get(g.index, g.channels)}/{g.channels}"
        rows.append(row)
    return rows
