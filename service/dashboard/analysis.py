"""The job page's analysis views, computed on the server so a 10k-trial job sends kilobytes:
decision importance per objective (Optuna's PED-ANOVA evaluator), parallel coordinates over
decisions and metrics (down-sampled rows), and slices (each decision's choices against one
metric, as quantiles).

Every view reads the same rows: completed, first-time trials (repeats would count one
architecture many times). Answers are cached per job and cursor: a new trial changes the
cursor, so a cached answer is never stale, and replicas compute the same thing.
"""

from __future__ import annotations

import math
import threading
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.core.errors import InvalidInput
from service.dashboard.queries import _number, objectives
from service.models import Job, Trial

MAX_CHOICES = 64  # a decision with more distinct values is shown as numbers, not categories
IMPORTANCE_SAMPLE = 4_000  # trials PED-ANOVA reads, evenly spread over the job's history


@dataclass
class Table:
    """Completed first-time trials of a job as columns: ids, decisions, metrics."""

    ids: list[int]
    front: list[bool]
    decisions: dict[str, list[Any]]
    metrics: dict[str, list[float | None]]


def load_table(session: Session, job: Job) -> Table:
    rows = session.execute(
        select(Trial.trial_id, Trial.on_front, Trial.arch, Trial.metrics)
        .where(Trial.job_id == job.id, Trial.state == "complete", Trial.cached.is_(False))
        .order_by(Trial.trial_id)).all()
    names: dict[str, None] = {}
    metric_names: dict[str, None] = {o["metric"]: None for o in objectives(job)}
    for r in rows[:200]:
        names.update(dict.fromkeys(k for k, v in (r.arch or {}).items()
                                   if isinstance(v, str | int | float) and not isinstance(v, bool)))
        metric_names.update(dict.fromkeys(k for k, v in (r.metrics or {}).items()
                                          if _number(v) is not None))
    decisions = {n: [(r.arch or {}).get(n) for r in rows] for n in names}
    metrics = {m: [_number((r.metrics or {}).get(m)) for r in rows] for m in metric_names}
    return Table([r.trial_id for r in rows], [bool(r.on_front) for r in rows], decisions,
                 metrics)


def _choices(values: list[Any]) -> list[Any] | None:
    """The sorted distinct values of a categorical decision, or None when it is numeric with
    too many values to list."""
    distinct = {v for v in values if v is not None}
    if len(distinct) > MAX_CHOICES and all(isinstance(v, int | float) for v in distinct):
        return None
    return sorted(distinct, key=lambda v: (isinstance(v, str), v))


# ---- cache ---------------------------------------------------------------------------------
class _Cache:
    """A few recent answers keyed by (view, job, cursor, arguments)."""

    def __init__(self, size: int = 32) -> None:
        self.size = size
        self.data: OrderedDict[tuple[Any, ...], Any] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple[Any, ...]) -> Any:
        with self.lock:
            if key in self.data:
                self.data.move_to_end(key)
                return self.data[key]
        return None

    def put(self, key: tuple[Any, ...], value: Any) -> Any:
        with self.lock:
            self.data[key] = value
            while len(self.data) > self.size:
                self.data.popitem(last=False)
        return value


CACHE = _Cache()


def _version(session: Session, job: Job) -> tuple[Any, ...]:
    last = session.scalar(select(func.max(Trial.id)).where(Trial.job_id == job.id))
    return (job.id, int(last or 0), job.status)


def cached(view: str, session: Session, job: Job, args: tuple[Any, ...], build: Any) -> Any:
    key = (view, *_version(session, job), *args)
    hit = CACHE.get(key)
    return hit if hit is not None else CACHE.put(key, build())


# ---- importance ----------------------------------------------------------------------------
def warm() -> None:
    """Import what the importance view needs (Optuna pulls in SciPy: seconds, once)."""
    import optuna.importance  # noqa: F401

def importance(session: Session, job: Job) -> dict[str, Any]:
    """Each decision's importance for each objective: Optuna's PED-ANOVA (how differently a
    decision's choices are spread among the best 10% of trials than among all of them)."""
    return cached("importance", session, job, (), lambda: _importance(load_table(session, job),
                                                                      objectives(job)))


def _importance(table: Table, objs: list[dict[str, str]]) -> dict[str, Any]:
    import optuna
    from optuna.distributions import CategoricalDistribution, FloatDistribution
    from optuna.importance import PedAnovaImportanceEvaluator

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    dists: dict[str, Any] = {}
    for name, values in table.decisions.items():
        choices = _choices(values)
        if choices is None:
            nums = [float(v) for v in values if v is not None]
            if nums and max(nums) > min(nums):
                dists[name] = FloatDistribution(min(nums), max(nums))
        elif len(choices) > 1:
            dists[name] = CategoricalDistribution(choices)
    out = []
    for o in objs:
        metric = o["metric"]
        values = table.metrics.get(metric, [])
        idx = [i for i, v in enumerate(values) if v is not None
               and all(table.decisions[d][i] is not None for d in dists)]
        if len(idx) > IMPORTANCE_SAMPLE:  # evenly over the job's history
            idx = [idx[i] for i in np.linspace(0, len(idx) - 1, IMPORTANCE_SAMPLE).astype(int)]
        entry: dict[str, Any] = {"metric": metric, "direction": o["direction"],
                                 "trials": len(idx), "values": {}}
        if len(idx) < 10 or not dists:
            entry["note"] = "needs at least 10 completed trials with this metric"
            out.append(entry)
            continue
        trials = _StudyTrials(table, idx, dists, values, o["direction"])
        with warnings.catch_warnings():  # "few trials in a regime": the values say so
            warnings.simplefilter("ignore")
            scores = PedAnovaImportanceEvaluator().evaluate(trials)  # type: ignore[arg-type]
        total = sum(scores.values())
        entry["values"] = {k: round(float(v) / total, 6) if total > 0 else 0.0
                           for k, v in sorted(scores.items(), key=lambda kv: -kv[1])}
        out.append(entry)
    return {"evaluator": "PED-ANOVA (optuna)", "objectives": out,
            "decisions": list(dists), "sample": IMPORTANCE_SAMPLE}


class _StudyTrials:
    """The part of an Optuna ``Study`` the PED-ANOVA evaluator reads (its completed trials
    and direction), built from plain columns: a real study's in-memory storage deep-copies
    every trial it stores, which took 20 s for 10k trials."""

    def __init__(self, table: Table, idx: list[int], dists: dict[str, Any],
                 values: list[float | None], direction: str) -> None:
        from optuna.distributions import FloatDistribution
        from optuna.study import StudyDirection
        from optuna.trial import FrozenTrial, TrialState

        self.directions = [StudyDirection.MAXIMIZE if direction == "max"
                           else StudyDirection.MINIMIZE]
        self.trials = [FrozenTrial(
            number=n, trial_id=n, state=TrialState.COMPLETE, value=float(values[i]),  # type: ignore[arg-type]
            values=None, datetime_start=None, datetime_complete=None,
            params={d: float(table.decisions[d][i]) if isinstance(dists[d], FloatDistribution)
                    else table.decisions[d][i] for d in dists},
            distributions=dists, user_attrs={}, system_attrs={}, intermediate_values={})
            for n, i in enumerate(idx)]

    def get_trials(self, deepcopy: bool = True, states: Any = None) -> list[Any]:
        return self.trials

    def _is_multi_objective(self) -> bool:
        return False


# ---- parallel coordinates --------------------------------------------------------------------
def parallel(session: Session, job: Job, max_rows: int) -> dict[str, Any]:
    """Axes over decisions (categorical: their choices) and metrics (numeric: their range),
    and up to ``max_rows`` trials as column arrays; Pareto points are always included."""
    return cached("parallel", session, job, (max_rows,),
                  lambda: _parallel(load_table(session, job), max_rows))


def _sample(table: Table, max_rows: int) -> list[int]:
    n = len(table.ids)
    if n <= max_rows:
        return list(range(n))
    keep = [i for i in range(n) if table.front[i]][:max_rows]
    rest = [i for i in range(n) if not table.front[i]]
    budget = max_rows - len(keep)
    if budget > 0 and rest:
        keep += [rest[i] for i in np.linspace(0, len(rest) - 1, budget).astype(int)]
    return sorted(set(keep))


def _parallel(table: Table, max_rows: int) -> dict[str, Any]:
    idx = _sample(table, max_rows)
    dims = []
    for name, values in table.decisions.items():
        choices = _choices(values)
        if choices is not None and len(choices) > 1:
            code = {c: i for i, c in enumerate(choices)}
            dims.append({"key": f"arch.{name}", "name": name, "kind": "decision",
                         "choices": choices, "values": [code.get(values[i]) for i in idx]})
    for name, values in table.metrics.items():
        present = [v for v in values if v is not None]
        if present:
            dims.append({"key": f"metrics.{name}", "name": name, "kind": "metric",
                         "range": [min(present), max(present)],
                         "values": [values[i] for i in idx]})
    return {"total": len(table.ids), "shown": len(idx), "t": [table.ids[i] for i in idx],
            "f": [int(table.front[i]) for i in idx], "dims": dims}


# ---- slices ------------------------------------------------------------------------------------
def slices(session: Session, job: Job, metric: str | None) -> dict[str, Any]:
    """For each decision, the chosen ``metric``'s quantiles (10/25/50/75/90%) and mean among
    the trials that took each choice."""
    objs = objectives(job)
    name = metric.removeprefix("metrics.") if metric else (objs[0]["metric"] if objs else None)
    if name is None:
        raise InvalidInput("metric", "the job has no objective; name a metric")
    return cached("slices", session, job, (name,),
                  lambda: _slices(load_table(session, job), name))


def _slices(table: Table, metric: str) -> dict[str, Any]:
    if metric not in table.metrics:
        raise InvalidInput("metric", f"no trial has metric {metric!r}; metrics: "
                                     f"{sorted(table.metrics)}")
    values = np.array([math.nan if v is None else v for v in table.metrics[metric]], float)
    out = []
    for name, chosen in table.decisions.items():
        choices = _choices(chosen)
        if choices is None or len(choices) < 2:
            continue
        arr = np.array([choices.index(c) if c in choices else -1 for c in chosen])
        rows = []
        for i, c in enumerate(choices):
            v = values[(arr == i) & ~np.isnan(values)]
            if not len(v):
                rows.append({"choice": c, "n": 0})
                continue
            q = np.quantile(v, [0.1, 0.25, 0.5, 0.75, 0.9])
            rows.append({"choice": c, "n": int(len(v)), "mean": float(v.mean()),
                         "min": float(v.min()), "max": float(v.max()),
                         "q": [round(float(x), 6) for x in q]})
        out.append({"decision": name, "choices": rows})
    return {"metric": metric, "decisions": out}
