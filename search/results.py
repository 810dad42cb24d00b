"""A finished (or running) job as one JSON document: spec, trials, Pareto front, best trial."""

from __future__ import annotations

from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from search.sinks import TrialRecord
from search.spec import JobSpec
from search.trials import HvReference, best_trial, hypervolume_of, pareto_front
from spaces.base import Space

__all__ = ["best_trial", "build_results", "hypervolume_section", "pareto_trials"]


def lightsearch_version() -> str:
    try:
        return version("lightsearch")
    except PackageNotFoundError:
        return "unknown"


def pareto_trials(trials: Sequence[TrialRecord], spec: JobSpec) -> list[TrialRecord]:
    """The job's Pareto front by ``search.trials``' definition, best first objective first."""
    return pareto_front(trials, spec.objectives)


def hypervolume_section(trials: Sequence[TrialRecord], spec: JobSpec,
                        reference: HvReference | None) -> dict[str, Any] | None:
    """The front's hypervolume, its fixed reference point and where that came from, and the
    ratio to the true front's hypervolume when the tables give one; None for one objective
    (or before any trial counted)."""
    value = hypervolume_of(trials, spec.objectives, reference)
    if value is None or reference is None:
        return None
    return {"value": value, "reference": list(reference.point), "source": reference.source,
            "true_front": reference.true_front, "normalized": reference.normalized(value)}


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
    reference: HvReference | None = None,
) -> dict[str, Any]:
    """The results document the CLI writes and the service serves; ``reference`` is the
    job's fixed hypervolume reference point (the loop's ``SearchSummary.reference``)."""
    front = pareto_trials(trials, spec)
    best = best_trial(trials)
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
        "hypervolume": hypervolume_section(trials, spec, reference),
        "trials": [_trial_json(t, space) for t in trials],
    }
