"""One trial's compression, shared by the evaluator (search) and the exporter (shipping).

Both call ``compress_trial`` with the trial's seed, so the exported model is the one the
search scored: apply the policy, recalibrate batch norm, score on validation, optionally
fine-tune (with distillation), score again, and keep the state that scores best on
validation (fine-tuning can hurt: a codebook model went from 98.05 to 96.94).

``warm_start`` (NetAdapt's weight carrying, Yang et al. 2018): a prune-only policy starts
from the shipped (fine-tuned) model of its nearest ancestor evaluated before it in this
process (the policy keeping the fewest channels among those that keep at least as many in
every group), pruned further, instead of from the reference; so each NetAdapt step builds
on the fine-tuned weights of the candidate chosen before it. The chain of ancestors (kept
channels and evaluation seed of each) is recorded as ``warm_start_lineage``, and passing it
back (``lineage``) replays it from the reference: the exporter rebuilds the same model in a
fresh process. Without an ancestor (first step, another worker's process, or a policy with
other controls than ``prune``) a trial starts from the reference as usual.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from search.compression.apply import apply_policy
from search.compression.data import ImageData
from search.compression.factory import resolve_model
from search.compression.finetune import evaluate_accuracy, train_epochs
from search.compression.graph import analyze
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


#: ``warm_start``: per job configuration (``_carry_key``), the shipped models of the prune-only
#: policies this process evaluated, by kept channels per group, oldest first.
_CARRIED: OrderedDict[str, OrderedDict[tuple[int, ...], tuple[nn.Module, list[dict[str, Any]]]]] \
    = OrderedDict()
CARRY_LIMIT = 32  # models kept per job configuration
CARRY_JOBS = 4  # job configurations kept (a long-lived worker runs many jobs)


def clear_carried() -> None:
    """Forget every carried model (tests; a new search in a long-lived process)."""
    _CARRIED.clear()


def _carry_key(opts: CompressEvaluatorOptions, space: CompressionSpace) -> str:
    what = {"opts": opts.model_dump(mode="json", exclude={"export_dir", "measure_latency",
                                                          "latency_backends"}),
            "table": space.table.to_dict()}
    return hashlib.sha1(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def carries(opts: CompressEvaluatorOptions, space: CompressionSpace) -> bool:
    """True when ``warm_start`` applies: asked for, and a prune-only space."""
    return bool(opts.warm_start) and set(space.controls) == {"prune"}


def ancestor(opts: CompressEvaluatorOptions, space: CompressionSpace, kept: dict[int, int]
             ) -> tuple[nn.Module, list[dict[str, Any]]] | None:
    """The carried (model, lineage) ``kept`` starts from, or None (start from the reference).
    """
    order = [g.index for g in space.table.groups]
    want = tuple(int(kept[g]) for g in order)
    best = None
    for have, entry in _CARRIED.get(_carry_key(opts, space), {}).items():
        if have != want and all(h >= w for h, w in zip(have, want, strict=True)):
            if best is None or sum(have) <= sum(best[0]):  # ties: the newest
                best = (have, entry)
    return None if best is None else best[1]


def _prune_from(start: nn.Module, space: CompressionSpace, kept: dict[int, int],
                opts: CompressEvaluatorOptions, calib: Any, seed: int) -> nn.Module:
    """``start`` (a pruned model of ``space``'s network) pruned further to ``kept``."""
    table = analyze(start, space.table.input_shape).table
    sub = CompressionSpace(table, controls=["prune"], max_prune=0.9999)
    ours = {g.leader: g.index for g in space.table.groups}
    arch = sub.identity()
    for name in arch:
        g = table.groups[sub.group_of(name)]
        k = int(kept[ours[g.leader]])
        if k > g.channels:
            raise ValueError(f"warm start: group {g.leader} keeps {k} channels, its ancestor "
                             f"only {g.channels}")
        arch[name] = 1.0 - k / g.channels
    comp = apply_policy(start, sub, arch, calib=calib, recalibrate=opts.recalibrate_bn,
                        least_squares=opts.least_squares, calib_samples=opts.calib_samples,
                        seed=seed)
    if any(comp.kept[i] != int(kept[ours[g.leader]]) for i, g in enumerate(table.groups)):
        raise ValueError("warm start: the ancestor's channel groups do not match the policy's")
    return comp.model


def compress_trial(opts: CompressEvaluatorOptions, space: CompressionSpace,
                   arch: Architecture, *, seed: int,
                   lineage: Sequence[dict[str, Any]] | None = None) -> CompressedTrial:
    """Compress the job's model as ``arch`` says (deterministic for ``seed`` and, with
    ``warm_start``, the ancestors: found in this process, or replayed from ``lineage``)."""
    base, data, base_info = resolve_model(opts.model)
    arch = space.validate(arch)
    carry = carries(opts, space)
    start, ancestors = None, []
    if carry:
        kept = space.kept_channels(arch)
        if lineage is not None:  # the exporter: replay the recorded chain from the reference
            ancestors = [{"kept": {int(g): int(k) for g, k in step["kept"].items()},
                          "seed": int(step["seed"])} for step in lineage]
            for step in ancestors:
                start = _shipped(opts, space, base, data, start, step["kept"], step["seed"])
        elif (found := ancestor(opts, space, kept)) is not None:
            start, ancestors = found
    with seeded(seed):  # layers it builds draw from torch's generator: one job at a time
        if start is None:
            comp = apply_policy(base, space, arch, calib=data.train,
                                recalibrate=opts.recalibrate_bn,
                                least_squares=opts.least_squares,
                                calib_samples=opts.calib_samples, seed=seed)
            model, kept_now = comp.model, comp.kept
        else:
            model, kept_now = _prune_from(start, space, kept, opts, data.train, seed), kept
    trial = _score(opts, space, arch, model, kept_now, base, data, base_info, seed)
    if carry:
        trial.recorded["warm_start_lineage"] = copy.deepcopy(ancestors)
        ckey = _carry_key(opts, space)
        store = _CARRIED.setdefault(ckey, OrderedDict())
        _CARRIED.move_to_end(ckey)
        while len(_CARRIED) > CARRY_JOBS:
            _CARRIED.popitem(last=False)
        key = tuple(int(kept_now[g.index]) for g in space.table.groups)
        store.pop(key, None)
        store[key] = (copy.deepcopy(trial.model),
                      [*copy.deepcopy(ancestors), {"kept": dict(kept_now), "seed": seed}])
        while len(store) > CARRY_LIMIT:
            store.popitem(last=False)
    return trial


def _shipped(opts: CompressEvaluatorOptions, space: CompressionSpace, base: nn.Module,
             data: ImageData, start: nn.Module | None, kept: dict[int, int], seed: int
             ) -> nn.Module:
    """One replayed step of a lineage: its shipped model."""
    with seeded(seed):
        model = _prune_from(start if start is not None else base, space, kept, opts,
                            data.train, seed)
    return _score(opts, space, None, model, kept, base, data, {}, seed).model


def _score(opts: CompressEvaluatorOptions, space: CompressionSpace, arch: Architecture | None,
           model: nn.Module, kept: dict[int, int], base: nn.Module, data: ImageData,
           base_info: dict[str, float], seed: int) -> CompressedTrial:
    """Score, fine-tune and keep the better state (``arch`` None: a replayed ancestor, whose
    test accuracy and policy rows nobody reads)."""
    val_before = evaluate_accuracy(model, data.val)
    recorded: dict[str, Any] = {"val_acc_before_finetune": 100 * val_before,
                                "shipped_state": "before_finetune"}
    if arch is not None:
        recorded.update({
            "test_acc_before_finetune": 100 * evaluate_accuracy(model, data.test),
            "base_val_acc": 100 * base_info["val_acc"],
            "base_test_acc": 100 * base_info["test_acc"],
            "policy": policy_rows(space, arch, kept),
            "meets_target": space.fits(arch),
        })
    signal = shipped_val = val_before
    if opts.finetune_epochs > 0:
        before = copy.deepcopy(model)
        train_epochs(model, data.train, epochs=opts.finetune_epochs, lr=opts.lr,
                     batch_size=opts.batch_size, seed=seed,
                     teacher=base if opts.distill_weight > 0 else None,
                     temperature=opts.temperature, distill_weight=opts.distill_weight)
        val_after = evaluate_accuracy(model, data.val)
        recorded["val_acc_after_finetune"] = 100 * val_after
        if arch is not None:
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
    return CompressedTrial(model.eval(), kept, signal, recorded, data, base, base_info)


def policy_rows(space: CompressionSpace, arch: Architecture,
                kept: dict[int, int]) -> list[dict[str, Any]]:
    """The policy per layer, readable: channels kept of each group and each layer's format;
    ``removed: true`` and 0 channels on the layers of a block the policy drops (they are
    not in the model)."""
    rows = []
    arch = space.validate(arch)
    leaders = {g.leader: g for g in space.table.groups}
    gone = space.removed_ops(arch)
    for step in space.steps:
        row: dict[str, Any] = {"layer": step.layer}
        for control, name in step.decisions.items():
            row[control] = arch[name]
        if step.layer in leaders:
            g = leaders[step.layer]
            row["channels"] = f"{kept.get(g.index, g.channels)}/{g.channels}"
        if step.layer in gone:  # nothing of it is left (the dashboard reads channels)
            row["removed"] = True
            if "channels" in row:
                row["channels"] = f"0/{leaders[step.layer].channels}"
        rows.append(row)
    return rows
