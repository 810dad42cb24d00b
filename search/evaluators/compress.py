"""The ``compress`` evaluator: apply a compression policy for real and score it.

Per trial (``search.compression.pipeline``): prune/quantize a copy of the job's trained
model as the policy says, recalibrate batch norm, measure validation accuracy (the search
signal, AMC's reward input), optionally fine-tune (with distillation from the original),
keep the better state, export the packed artifact and time the exported model (PyTorch
eager and/or ONNX Runtime on its ONNX file). Agents see validation accuracy, error, FLOPs,
parameters, size and latency; test accuracy is recorded only. Sizes are against float32.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
from pathlib import Path
from typing import Any

from search.base import Evaluation, Evaluator
from search.compression.export import export_model, load_artifact, manifest_model
from search.compression.measure import count_flops, count_params, measure_latency_ms
from search.compression.options import CompressEvaluatorOptions
from search.compression.pipeline import compress_trial, policy_rows
from search.compression.report import plot_policy
from spaces.base import Architecture, Space
from spaces.compression import CompressionSpace

__all__ = ["CompressionEvaluator", "policy_rows"]


class CompressionEvaluator(Evaluator):
    name = "compress"
    model_exporter = "search.compression.ship:export_compressed_trial"

    def __init__(self, **options: Any) -> None:
        self.options = CompressEvaluatorOptions.model_validate(options)
        if self.options.model is None:
            raise ValueError("model: the compress evaluator needs the model to compress "
                             "(a compression job's top-level 'model' fills it)")

    def signal_metrics(self) -> list[str]:
        return ["val_acc", "val_acc_after_finetune", "error", "flops", "params", "size_bytes",
                "latency_ms", "latency_ort_ms", "flops_ratio", "params_ratio", "size_ratio",
                "amc_reward", "amc_reward_flops"]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        if not isinstance(space, CompressionSpace):
            raise TypeError(f"the compress evaluator needs the 'compression' space, got "
                            f"{space.name!r}")
        opts = self.options
        trial = compress_trial(opts, space, arch, seed=seed)
        model, shape, val = trial.model, trial.data.input_shape, trial.signal
        flops = count_flops(model, shape)
        params = count_params(model)
        full = {m: space.uncompressed(m, padded=False) for m in ("flops", "params", "size")}
        artifacts: dict[str, str] = {}
        latency: dict[str, float] = {}
        with tempfile.TemporaryDirectory() as tmp:
            out_dir = Path(opts.export_dir) if opts.export_dir else Path(tmp)
            out_dir.mkdir(parents=True, exist_ok=True)
            digest = hashlib.sha1(space.key(arch).encode()).hexdigest()[:12]
            path = out_dir / f"model-{digest}.lsz"
            sizes = export_model(model, path, input_shape=shape,
                                 meta={**manifest_model(opts.model, trial.kept,
                                                        space.removed_blocks(arch),
                                                        space.table),
                                       "policy": space.validate(arch)})
            if opts.measure_latency:
                exported, _ = load_artifact(path)
                latency = exported_latency(exported, shape, opts.latency_backends)
            if opts.export_dir:
                artifacts["model"] = str(path)
                plot = plot_policy(trial.recorded["policy"], path.with_suffix(".png"),
                                   title=f"val acc {100 * val:.1f}%, FLOPs {flops:,}")
                artifacts["policy_plot"] = str(plot)
        error = 1.0 - val
        metrics = {
            "val_acc": 100 * val, "error": error, "flops": float(flops), "params": float(params),
            "size_bytes": float(sizes["size_bytes"]), "weight_bytes": float(sizes["weight_bytes"]),
            "flops_ratio": flops / full["flops"],
            "params_ratio": params / full["params"],
            "size_ratio": space.cost(arch, "size") / full["size"],  # of float32
            "amc_reward": -error,
            "amc_reward_flops": -error * math.log(max(flops, 1)),
            **latency,
        }
        if "val_acc_after_finetune" in trial.recorded:  # NetAdapt's short-term fine-tuning
            metrics["val_acc_after_finetune"] = trial.recorded["val_acc_after_finetune"]
        return Evaluation(metrics=metrics, recorded=trial.recorded, artifacts=artifacts)


def exported_latency(model: Any, shape: tuple[int, ...], backends: list[str]
                     ) -> dict[str, float]:
    """``latency_ms`` (PyTorch eager) and/or ``latency_ort_ms`` (ONNX Runtime on the model's
    ONNX export), one thread, the measured profiler's protocol."""
    import torch

    from search.profilers.measured import measure, onnx_bytes, ort_runner, ort_session

    out: dict[str, float] = {}
    if "torch" in backends:
        out["latency_ms"] = measure_latency_ms(model, shape)
    if "onnxruntime" in backends:
        x = torch.zeros(1, *shape)
        session = ort_session(onnx_bytes(model, x), threads=1)
        out["latency_ort_ms"] = float(measure(ort_runner(session, x.numpy()),
                                              clock="cpu").min_ms)
    return out
