"""Options of the ``compress`` evaluator (torch-free: the API validates jobs with it)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from spaces.compression import ModelRef
from spaces.paths import path_field
from spaces.registry import NoOptions


class CompressEvaluatorOptions(NoOptions):
    """Apply a policy to the job's model and score it (AMC's reward is accuracy on a held-out
    part of the training data, after batch-norm recalibration and without fine-tuning)."""

    model: ModelRef | None = Field(None, description="Filled from the job's top-level 'model'.")
    recalibrate_bn: bool = Field(True, description="Re-estimate BN statistics after changes.")
    calib_samples: int = Field(512, ge=1, le=1_000_000, description="Images for BN and fits.")
    least_squares: bool = Field(False, description="AMC's least-squares refit of next layers.")
    finetune_epochs: float = Field(0.0, ge=0, le=1000, description="Fine-tuning per trial.")
    lr: float = Field(0.01, gt=0, le=10, description="Fine-tuning learning rate.")
    batch_size: int = Field(64, ge=1, le=65536)
    distill_weight: float = Field(0.0, ge=0, le=1, description="Weight of the KD loss.")
    temperature: float = Field(4.0, gt=0, le=100, description="KD softmax temperature.")
    warm_start: bool = Field(
        False, description="NetAdapt's weight carrying: a prune-only policy starts from the "
        "fine-tuned model of the nearest policy evaluated before it in this process that keeps "
        "at least as many channels in every group (recorded as warm_start_lineage and "
        "replayed on export), instead of from the reference.")
    signal: Literal["before_finetune", "after_finetune", "shipped"] = Field(
        "before_finetune", description="Which validation accuracy the agent sees as val_acc "
        "('shipped': the better of before and after fine-tuning, the state exported).")
    measure_latency: bool = Field(True, description="Time the exported model on this CPU.")
    latency_backends: list[Literal["torch", "onnxruntime"]] = Field(
        default_factory=lambda: ["torch"], min_length=1,
        description="'torch': latency_ms, PyTorch eager on the decoded model; 'onnxruntime': "
        "latency_ort_ms, ONNX Runtime on the model's exported ONNX file (1 thread each).")
    export_dir: str | None = path_field("output",
                                        description="Write each model's artifact here.")
