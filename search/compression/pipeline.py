"""One trial's compression, shared by the evaluator (search) and the exporter (shipping).

Both call ``compress_trial`` with the trial's seed, so the exported model is the one the
search scored: apply the policy, recalibrate batch norm, score on validation, optionally
fine-tune (with distillation), score again, and keep the state that scores best on
validation (fine-tuning can hurt: a codebook model went from 98.05 to 96.94).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from torch import nn

from search.compression.apply import apply_policy
from search.compression.data import ImageData
from search.compression.factory import resolve_model
from search.compression.finetune import evaluate_accuracy, train_epochs
from search.compression.options import CompressEvaluatorOptions
from spaces.base import Architecture
from spaces.compression import CompressionSpace
from spaces.isolation import seeded


@dataclass
class CompressedTrial:
    model: nn.Module  # the shipped state: the better one on validation
    kept: dict[int, int]  # group -> channels kept
    signal: float  # validation accuracy in [0, 1] the agent sees (``options.signal``)
    recorded: dict[str, Any]
    data: ImageData
    base: nn.Module
    base_info: dict[str, float]


def compress_trial(opts: CompressEvaluatorOptions, space: CompressionSpace,
                   arch: Architecture, *, seed: int) -> CompressedTrial:
    """Compress the job's model as ``arch`` says (deterministic for ``seed``)."""
    base, data, base_info = resolve_model(opts.model)
    with seeded(seed):  # layers it builds draw from torch's generator: one job at a time
        comp = apply_policy(base, space, arch, calib=data.train,
                            recalibrate=opts.recalibrate_bn, least_squares=opts.least_squares,
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
        "shipped_state": "before_finetune",
    }
    signal = shipped_val = val_before
    if opts.finetune_epochs > 0:
        before = copy.deepcopy(model)
        train_epochs(model, data.train, epochs=opts.finetune_epochs, lr=opts.lr,
                     batch_size=opts.batch_size, seed=seed,
                     teacher=base if opts.distill_weight > 0 else None,
                     temperature=opts.temperature, distill_weight=opts.distill_weight)
        val_after = evaluate_accuracy(model, data.val)
        recorded["val_acc_after_finetune"] = 100 * val_after
        recorded["test_acc_after_finetune"] = 100 * evaluate_accuracy(model, data.test)
        if val_after >= val_before:  # ties: the fine-tuned model
            recorded["shipped_state"], shipped_val = "after_finetune", val_after
        else:
            model = before
        if opts.signal == "after_finetune":
            signal = val_after
        elif opts.signal == "shipped":
            signal = shipped_val
    recorded["val_acc_shipped"] = 100 * shipped_val
    return CompressedTrial(model.eval(), comp.kept, signal, recorded, data, base, base_info)


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
