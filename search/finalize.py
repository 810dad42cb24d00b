"""The post-search step, one for ``lightsearch search`` and the service's worker.

When a job ends: the results document is written (atomically), then, for a job that
succeeded or ended exhausted (its trials are as good as any) and whose evaluator declares a
model exporter (``Evaluator.model_exporter``: the ``train`` and ``compress`` evaluators), the
trials ``spec.export`` asks for become deployable files, one folder per trial. A failed
export is reported (in the returned reason and ``<models>/export-error.txt``); the search's
results stand.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from search.export import ExportResult
    from search.sinks import TrialRecord
    from search.spec import JobSpec
    from search.trials import HvReference
    from spaces.base import Space

log = logging.getLogger(__name__)


@dataclass
class Finalized:
    results: dict[str, Any]
    reason: str | None  # the job's reason, with an export failure appended
    exported: dict[int, ExportResult] = field(default_factory=dict)
    export_error: str | None = None


def _finite(value: Any) -> Any:
    """NaN and infinities become null: strict JSON, the same text on every path."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write_atomic(path: Path, text: str) -> None:
    """A crash leaves the old file or none, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def wants_export(spec: JobSpec) -> bool:
    """True when the job asks for files and its evaluator declares an exporter."""
    from search.export import model_exporter

    return bool(spec.export.best or spec.export.pareto) and model_exporter(spec) is not None


def finalize(spec: JobSpec, trials: Sequence[TrialRecord], *, status: str,
             reason: str | None, elapsed_s: float | None, results_path: str | Path,
             models_dir: str | Path, space: Space | None = None,
             reference: HvReference | None = None, export: bool = True) -> Finalized:
    """Write ``results_path`` and, if the job succeeded, the models under ``models_dir``."""
    from search.results import build_results

    if space is None:
        from spaces.registry import SPACES

        space = SPACES.create(spec.space.name, options=spec.space.options)
    ordered = sorted(trials, key=lambda t: t.trial_id)
    results = _finite(build_results(spec, ordered, status=status, reason=reason, space=space,
                                    elapsed_s=elapsed_s, reference=reference))
    write_atomic(Path(results_path), json.dumps(results, indent=1, default=str))
    done = Finalized(results, reason)
    if not (export and status in ("succeeded", "exhausted") and wants_export(spec)):
        return done
    from search.export import export_job_models

    folder = Path(models_dir)
    try:
        done.exported = export_job_models(spec, ordered, folder)
    except Exception as err:  # noqa: BLE001 - the search's results must not be lost
        log.exception("%s: model export failed", spec.name)
        folder.mkdir(parents=True, exist_ok=True)
        done.export_error = f"{type(err).__name__}: {err}"
        (folder / "export-error.txt").write_text(done.export_error + "\n")
        done.reason = f"{reason or 'done'}; model export failed: {done.export_error}"
    return done
