"""A finished (or running) job as one JSON document: spec, trials, Pareto front, best trial."""

from __future__ import annotations

import math
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np

from agents.base import TrialState
from search.pareto import hypervolume, pareto_front_indices
from search.sinks import TrialRecord
from search.spec import JobSpec
from spaces.base import Space


def lightsearch_version() -> str:
    try:
        return version("lightsearch")
    except PackageNotFoundError:
        return "unknown"


def front_candidates(
    trials: Sequence[TrialRecord], spec: JobSpec
) -> tuple[list[TrialRecord], np.ndarray]:
    """Completed, first-evaluation trials with every objective measured, and their values."""
    metrics = [o.metric for o in spec.objectives]
    rows = [
        t for t in trials
        if t.state is TrialState.COMPLETE and not t.cached and feasible(t)
        and all(m in t.metrics and math.isfinite(t.metrics[m]) for m in metrics)
    ]
    values = np.array([[t.metrics[m] for m in metrics] for t in rows], dtype=float)
    return rows, values.reshape(len(rows), len(metrics))


def feasible(t: TrialRecord) -> bool:
    """False for a trial that broke one of the job's constraints (recorded by the loop)."""
    return not t.recorded.get("constraint_violations")


def pareto_trials(trials: Sequence[TrialRecord], spec: JobSpec) -> list[TrialRecord]:
    """The non-dominated trials under the job's objectives, sorted by the first objective."""
    rows, values = front_candidates(trials, spec)
    if not rows:
        return []
    directions = [o.direction for o in spec.objectives]
    front = [rows[i] for i in pareto_front_indices(values, directions)]
    first = spec.objectives[0]
    return sorted(front, key=lambda t: t.metrics[first.metric],
                  reverse=first.direction == "max")


def observed_reference(values: np.ndarray, directions: Sequence[str]) -> list[float]:
    """The worst observed value per objective: a reference point that needs no prior."""
    return [float(values[:, j].min() if d == "max" else values[:, j].max())
            for j, d in enumerate(directions)]


def best_trial(trials: Sequence[TrialRecord]) -> TrialRecord | None:
    """Highest reward among completed trials that meet the constraints; earliest wins ties."""
    done = [t for t in trials
            if t.state is TrialState.COMPLETE and t.reward is not None and feasible(t)]
    return max(done, key=lambda t: (t.reward, -t.trial_id)) if done else None


def _trial_json(t: TrialRecord, space: Space | None) -> dict[str, Any]:
    d = t.to_dict()
    if space is not None:
        d["describe"] = space.describe(t.arch)
    return d


def build_results(
    spec: JobSpec,
    trials: Sequence[TrialRecord],
    *,
    status: str | None,
    reason: str | None = None,
    space: Space | None = None,
    elapsed_s: float | None = None,
) -> dict[str, Any]:
    """The results document the CLI writes and the service serves."""
    front = pareto_trials(trials, spec)
    best = best_trial(trials)
    directions = [o.direction for o in spec.objectives]
    hv = None
    reference = None
    if len(spec.objectives) >= 2 and front:
        _, values = front_candidates(trials, spec)
        reference = observed_reference(values, directions)
        front_values = np.array([[t.metrics[o.metric] for o in spec.objectives] for t in front])
        hv = float(hypervolume(front_values, reference, directions))
    counts: dict[str, int] = {}
    for t in trials:
        counts[t.state.value] = counts.get(t.state.value, 0) + 1
    return {
        "lightsearch_version": lightsearch_version(),
        "spec": spec.model_dump(mode="json"),
        "status": status,
        "reason": reason,
        "elapsed_s": elapsed_s,
        "evaluations": sum(1 for t in trials if not t.cached),
        "proposals": len(trials),
        "states": counts,
        "objectives": [o.model_dump() for o in spec.objectives],
        "best": _trial_json(best, space) if best else None,
        "pareto_front": [_trial_json(t, space) for t in front],
        "hypervolume": {"value": hv, "reference": reference} if hv is not None else None,
        "trials": [_trial_json(t, space) for t in trials],
    }
