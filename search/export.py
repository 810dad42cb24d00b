"""Deployable artifacts of a searched model: weights, TorchScript, ONNX and a model card.

``export_model`` writes the files, checks that each exported form gives the PyTorch model's
output (ONNX Runtime within ``atol + rtol * |y|``; an export that does not match raises
``ExportMismatch`` rather than shipping a wrong model), measures the latency of the exported
files again on this machine, and writes the model card (JSON and Markdown) with the
architecture, metrics, dataset and its normalization, profilers, versions, seed and code
version. ``export_trial`` rebuilds a trial's model by training it again with the seed the
search used (training is deterministic for a seed) and exports it.
"""

from __future__ import annotations

import hashlib
import json
import platform
import subprocess
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from search.profilers.measured import (
    measure,
    onnx_bytes,
    ort_runner,
    ort_session,
    threads_set,
    torch_runner,
)

if TYPE_CHECKING:
    from torch import nn

    from search.sinks import TrialRecord
    from search.spec import JobSpec
    from spaces.base import Space

CARD_VERSION = 1


class ExportMismatch(RuntimeError):
    """An exported model does not reproduce the PyTorch model's output."""


@dataclass
class ExportResult:
    files: dict[str, str]  # weights, torchscript, onnx, card_json, card_md -> path
    card: dict[str, Any] = field(default_factory=dict)


def code_version() -> dict[str, Any]:
    """Package version and, inside a git checkout, the commit and whether it had changes."""
    from importlib import metadata

    try:
        version = metadata.version("lightsearch")
    except metadata.PackageNotFoundError:
        version = None
    info: dict[str, Any] = {"lightsearch": version}
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                                text=True, timeout=10)
        if commit.returncode == 0:
            info["git_commit"] = commit.stdout.strip()
            dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                                   cwd=root, capture_output=True, text=True, timeout=10)
            info["git_dirty"] = bool(dirty.stdout.strip())
    except (OSError, subprocess.SubprocessError):
        pass
    return info


def library_versions() -> dict[str, str]:
    import onnx
    import onnxruntime
    import torch

    return {"python": platform.python_version(), "torch": torch.__version__,
            "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _check_close(name: str, got: np.ndarray, want: np.ndarray, atol: float, rtol: float
                 ) -> float:
    diff = float(np.max(np.abs(got - want))) if want.size else 0.0
    if not np.allclose(got, want, atol=atol, rtol=rtol):
        raise ExportMismatch(f"{name} output differs from PyTorch by up to {diff:.3g} "
                             f"(atol={atol}, rtol={rtol})")
    return diff


def export_model(
    model: nn.Module,
    out_dir: str | Path,
    *,
    input_shape: Sequence[int],
    arch: Mapping[str, Any] | None = None,
    space: Space | None = None,
    metrics: Mapping[str, float] | None = None,
    recorded: Mapping[str, Any] | None = None,
    dataset: Mapping[str, Any] | None = None,
    profilers: Sequence[Mapping[str, Any]] = (),
    seed: int | None = None,
    name: str = "model",
    atol: float = 1e-4,
    rtol: float = 1e-3,
    measure_latency: bool = True,
    threads: int = 1,
    extra: Mapping[str, Any] | None = None,
) -> ExportResult:
    """Write ``<name>.pt`` (state dict), ``<name>.ts`` (TorchScript), ``<name>.onnx`` and
    ``<name>_card.json``/``.md`` into ``out_dir``; see the module docstring."""
    import onnx
    import torch

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    x = torch.randn(2, *input_shape, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        want = model(x).numpy()
    files = {"weights": out / f"{name}.pt", "torchscript": out / f"{name}.ts",
             "onnx": out / f"{name}.onnx"}

    torch.save(model.state_dict(), files["weights"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.jit is deprecated upstream, still deployable
        scripted = torch.jit.trace(model, x[:1])
        scripted.save(str(files["torchscript"]))
        loaded = torch.jit.load(str(files["torchscript"]))
    with torch.no_grad():
        ts_diff = _check_close("TorchScript", loaded(x).numpy(), want, atol, rtol)

    files["onnx"].write_bytes(onnx_bytes(model, x[:1], dynamic_batch=True))
    onnx.checker.check_model(str(files["onnx"]))
    session = ort_session(str(files["onnx"]), threads)
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    onnx_diff = _check_close("ONNX Runtime", got, want, atol, rtol)

    latency: dict[str, Any] = {}
    if measure_latency:
        with threads_set(threads):
            one = x[:1]
            latency["exported_torchscript_ms"] = measure(torch_runner(loaded, one)).min_ms
            latency["exported_onnxruntime_ms"] = measure(
                ort_runner(session, one.numpy())).min_ms
        latency["protocol"] = ("batch 1, 1 thread, min over 5 rounds of 10 runs' medians, "
                               "measured at export")
    searched = {k: v for k, v in (metrics or {}).items() if "latency" in k}
    if searched:
        latency["searched"] = searched

    card: dict[str, Any] = {
        "card_version": CARD_VERSION,
        "name": name,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "architecture": dict(arch) if arch is not None else None,
        "architecture_str": space.describe(dict(arch)) if space is not None and arch else None,
        "space": {"name": space.name, "config": space.to_config()} if space else None,
        "input": {"shape": [1, *input_shape], "dtype": "float32", "layout": "NCHW",
                  "normalization": (dataset or {}).get("normalization")},
        "output": {"logits": int(want.shape[1])},
        "metrics": dict(metrics or {}),
        "recorded": {k: v for k, v in (recorded or {}).items() if _jsonable(v)},
        "dataset": dict(dataset or {}),
        "profilers": [dict(p) for p in profilers],
        "latency": latency,
        "export_check": {"torchscript_max_abs_diff": ts_diff,
                         "onnxruntime_max_abs_diff": onnx_diff, "atol": atol, "rtol": rtol},
        "params": int(sum(p.numel() for p in model.parameters())),
        "seed": seed,
        "versions": library_versions(),
        "code": code_version(),
        "files": {k: {"path": p.name, "sha256": _sha256(p), "bytes": p.stat().st_size}
                  for k, p in files.items()},
        **({"extra": dict(extra)} if extra else {}),
    }
    files["card_json"] = out / f"{name}_card.json"
    files["card_json"].write_text(json.dumps(card, indent=2, sort_keys=False, default=str))
    files["card_md"] = out / f"{name}_card.md"
    files["card_md"].write_text(card_markdown(card))
    return ExportResult({k: str(p) for k, p in files.items()}, card)


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def card_markdown(card: Mapping[str, Any]) -> str:
    """A human-readable model card."""
    lines = [f"# Model card: {card['name']}", ""]
    if card.get("architecture_str"):
        lines += [f"**Architecture** ({card['space']['name']}): `{card['architecture_str']}`",
                  ""]
    lines += [f"- Input: {card['input']['shape']} float32 NCHW; normalization "
              f"{card['input'].get('normalization')}",
              f"- Output: {card['output']['logits']} logits",
              f"- Parameters: {card['params']:,}",
              f"- Seed: {card.get('seed')}",
              f"- Dataset: {card['dataset'].get('provenance') or card['dataset'].get('source')}"
              f" (splits {card['dataset'].get('sizes')})", ""]
    if card.get("metrics") or card.get("recorded"):
        lines += ["## Metrics", "", "| metric | value |", "| --- | --- |"]
        for k, v in {**card.get("metrics", {}), **card.get("recorded", {})}.items():
            if isinstance(v, int | float):
                lines.append(f"| {k} | {v:.4g} |")
        lines.append("")
    lat = card.get("latency") or {}
    if lat:
        lines += ["## Latency", ""]
        for k, v in lat.items():
            lines.append(f"- {k}: {v:.4g} ms" if isinstance(v, float) else f"- {k}: {v}")
        lines.append("")
    chk = card["export_check"]
    lines += ["## Export check", "",
              f"TorchScript max |diff| {chk['torchscript_max_abs_diff']:.3g}, ONNX Runtime "
              f"max |diff| {chk['onnxruntime_max_abs_diff']:.3g} (atol {chk['atol']}, "
              f"rtol {chk['rtol']}).", "", "## Files", ""]
    for k, f in card["files"].items():
        lines.append(f"- {k}: `{f['path']}` ({f['bytes']:,} bytes, sha256 {f['sha256'][:16]}…)")
    lines += ["", "## Provenance", "", f"- Versions: {card['versions']}",
              f"- Code: {card['code']}", f"- Profilers: "
              f"{[p.get('name') for p in card.get('profilers', [])]}", f"- Created: "
              f"{card['created']}", ""]
    return "\n".join(lines)


def export_trial(spec: JobSpec, trial: TrialRecord, out_dir: str | Path, *,
                 name: str | None = None, model: nn.Module | None = None,
                 measure_latency: bool = True) -> ExportResult:
    """Export a trial of a job that used the ``train`` evaluator.

    Without ``model``, the trial's network is trained again with the seed the search used
    (``search.loop.evaluation_seed``); training is deterministic, so on the same machine it
    is the searched model, and the card records both validation accuracies.
    """
    from search.evaluators.train import TrainingEvaluator, build_for, train_model
    from search.loop import evaluation_seed
    from search.registry import EVALUATORS, PROFILERS
    from spaces.registry import SPACES

    space = SPACES.create(spec.space.name, options=spec.space.options)
    evaluator = EVALUATORS.create(spec.evaluator.name, options=spec.evaluator.options)
    if not isinstance(evaluator, TrainingEvaluator):
        raise ValueError(f"export needs a job with the 'train' evaluator, got "
                         f"{spec.evaluator.name!r}")
    data = evaluator.data()
    seed = evaluation_seed(spec.seed, trial.arch_key)
    extra: dict[str, Any] = {"trial_id": trial.trial_id, "job": spec.name}
    if model is None:
        model = build_for(space, trial.arch, data, seed)
        result = train_model(model, data, evaluator.config, seed=seed)
        extra["reproduced_val_acc"] = result.val_acc
        extra["searched_val_acc"] = trial.metrics.get("val_acc")
    profilers = []
    for p in spec.profilers:
        try:
            described = PROFILERS.create(p.name, options=p.options).describe()
            profilers.append({**described, "options": p.options})
        except Exception:  # noqa: BLE001 - a description is provenance, never a failure
            profilers.append({"name": p.name, "options": p.options})
    return export_model(
        model, out_dir, input_shape=data.input_shape, arch=trial.arch, space=space,
        metrics=trial.metrics, recorded=trial.recorded, dataset=data.description,
        profilers=profilers, seed=seed, name=name or f"trial{trial.trial_id}",
        measure_latency=measure_latency, extra=extra,
    )


def model_exporter(spec: JobSpec) -> Callable[..., ExportResult] | None:
    """The job's evaluator's declared exporter (``Evaluator.model_exporter``), or None when
    its evaluator makes no models (imports the evaluator class, not its heavy state)."""
    import importlib

    from search.registry import EVALUATORS

    path = getattr(EVALUATORS.get(spec.evaluator.name).load(), "model_exporter", None)
    if not path:
        return None
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def export_job_models(spec: JobSpec, trials: Sequence[TrialRecord],
                      out_dir: str | Path, *, ids: Sequence[int] | None = None,
                      measure_latency: bool | None = None) -> dict[int, ExportResult]:
    """The files ``spec.export`` asks for (best trial, Pareto front), or the trials ``ids``,
    one folder each: ``out_dir/trial<ID>``. Evaluators without an exporter give nothing."""
    from search.results import best_trial, pareto_trials

    exporter = model_exporter(spec)
    if exporter is None:
        return {}
    chosen: dict[int, TrialRecord] = {}
    if ids is not None:
        by_id = {t.trial_id: t for t in trials}
        chosen = {i: by_id[i] for i in ids}
    else:
        best = best_trial(trials) if spec.export.best else None
        if best is not None:
            chosen[best.trial_id] = best
        if spec.export.pareto and len(spec.objectives) >= 2:
            chosen.update((t.trial_id, t) for t in pareto_trials(trials, spec))
    latency = spec.export.measure_latency if measure_latency is None else measure_latency
    return {tid: exporter(spec, t, Path(out_dir) / f"trial{tid}", measure_latency=latency)
            for tid, t in sorted(chosen.items())}
