"""Which trials count: the one definition of a feasible completed trial, the best trial, the
Pareto front and the hypervolume. The loop, the service's sink (and through its rows the API
and the dashboard), ``results.json`` and model exports all call these, so they name the same
trials.

Decided once:

- A trial **counts** when it is COMPLETE, is the first evaluation of its architecture (a
  repeat answered from the job's cache is the same evaluation again), and broke none of the
  job's constraints (``recorded["constraint_violations"]`` is empty). Failed, invalid and
  pruned trials, repeats and constraint violators never count. The functions take anything
  with ``state``/``cached``/``recorded`` attributes: a ``TrialRecord`` or a database row.
- The **best trial** is the counting trial with the highest finite reward; the earliest trial
  wins a tie. A NaN or infinite reward is no score.
- The **Pareto front** is the counting trials whose every objective is a finite number and
  that no other such trial dominates; equal points are all kept.
- The **hypervolume** of the front is taken against a reference point fixed once per job
  (``HvReference``): from the spec, else the worst values of the tables the metrics come from,
  else the first batch that has a counting trial, widened. A point worse than the reference in
  some objective adds no volume, so the value never falls while nothing improves. Single-
  objective jobs have none.
- **Histories** (hypervolume, best reward) have one point per distinct evaluation that changed
  them: ``(trial_id, evaluation_index, value)``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agents.base import TrialState
from search.pareto import HypervolumeTracker, hypervolume, pareto_front_indices

#: Widening of a reference point taken from the first batch: this fraction of the batch's
#: range per objective, at least this fraction of the worst value's magnitude (or 1).
WIDEN = 0.10

Point = tuple[int, int, float]  # (trial_id, evaluation_index, value)


def _state(t: Any) -> TrialState:
    return TrialState(t.state)


def counts(t: Any) -> bool:
    """A feasible completed first evaluation: the only trials best and front are chosen from."""
    return (_state(t) is TrialState.COMPLETE and not t.cached
            and not (t.recorded or {}).get("constraint_violations"))


def _finite(value: Any) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


def ranks_for_best(t: Any) -> bool:
    """Counts and has a finite reward."""
    return counts(t) and _finite(t.reward)


def objective_vector(t: Any, metrics: Sequence[str]) -> tuple[float, ...] | None:
    """The trial's objective values, or None unless it counts and measured each finitely."""
    if not counts(t):
        return None
    values = t.metrics or {}
    out = []
    for m in metrics:
        v = values.get(m)
        if not _finite(v):
            return None
        out.append(float(v))
    return tuple(out)


def better_best(candidate: Any, best: Any | None) -> bool:
    """Whether ``candidate`` replaces ``best`` (higher reward; the earlier trial wins ties)."""
    if not ranks_for_best(candidate):
        return False
    if best is None:
        return True
    return (candidate.reward, -candidate.trial_id) > (best.reward, -best.trial_id)


def best_trial(trials: Iterable[Any]) -> Any | None:
    """The best trial (see the module docstring), or None."""
    best = None
    for t in trials:
        if better_best(t, best):
            best = t
    return best


def _metrics_and_directions(objectives: Sequence[Any]) -> tuple[list[str], list[str]]:
    return [o.metric for o in objectives], [o.direction for o in objectives]


def pareto_front(trials: Sequence[Any], objectives: Sequence[Any]) -> list[Any]:
    """The front (see the module docstring), sorted by the first objective, best first, then
    by trial id."""
    metrics, directions = _metrics_and_directions(objectives)
    rows, values = [], []
    for t in trials:
        v = objective_vector(t, metrics)
        if v is not None:
            rows.append(t)
            values.append(v)
    if not rows:
        return []
    front = [rows[i] for i in pareto_front_indices(np.array(values), directions)]
    sign = -1.0 if directions[0] == "max" else 1.0
    return sorted(front, key=lambda t: (sign * t.metrics[metrics[0]], t.trial_id))


# ---- the reference point -------------------------------------------------------------------
@dataclass(frozen=True)
class HvReference:
    """The fixed reference point of a job's hypervolume, where it came from, and the true
    front's hypervolume against it when the tables hold every objective (for the ratio)."""

    point: tuple[float, ...]
    source: str  # per objective, comma-separated: spec | table | first batch
    true_front: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {"point": list(self.point), "source": self.source,
                "true_front": self.true_front}

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> HvReference | None:
        if not data or data.get("point") is None:
            return None
        return cls(tuple(float(v) for v in data["point"]), str(data.get("source") or ""),
                   data.get("true_front"))

    def normalized(self, value: float | None) -> float | None:
        """``value`` over the true front's hypervolume (the benchmarks' ratio), if known."""
        if value is None or not self.true_front:
            return None
        return value / self.true_front


@dataclass
class KnownValues:
    """Every value a table holds for some metrics, one row per architecture; rows of different
    tables are matched by ``keys`` (the architecture's key, e.g. NAS-Bench-201's arch_str)."""

    keys: Sequence[Any]
    columns: dict[str, np.ndarray]


def _worst(values: np.ndarray, direction: str) -> float:
    return float(values.min() if direction == "max" else values.max())


def partial_reference(objectives: Sequence[Any],
                      tables: Sequence[KnownValues]) -> tuple[list[float | None], list[str],
                                                                float | None]:
    """Per objective, the spec's ``reference`` or the worst value a table holds (None where
    neither is known), its source, and the true front's hypervolume when one joined table
    set holds every objective (its rows measured in all of them)."""
    metrics, directions = _metrics_and_directions(objectives)
    point: list[float | None] = []
    source: list[str] = []
    joined = _join(metrics, tables)
    for j, o in enumerate(objectives):
        if getattr(o, "reference", None) is not None:
            point.append(float(o.reference))
            source.append("spec")
            continue
        if joined is not None:
            point.append(_worst(joined[:, j], o.direction))
            source.append("table")
            continue
        column = next((t.columns[o.metric] for t in tables if o.metric in t.columns), None)
        finite = column[np.isfinite(column)] if column is not None else np.empty(0)
        point.append(_worst(finite, o.direction) if len(finite) else None)
        source.append("table" if len(finite) else "")
    true_front = None
    if joined is not None and len(metrics) >= 2 and all(v is not None for v in point):
        true_front = float(hypervolume(joined, point, directions)) or None
    return point, source, true_front


def _join(metrics: Sequence[str], tables: Sequence[KnownValues]) -> np.ndarray | None:
    """Rows (architectures) of the tables holding ``metrics`` with every metric finite."""
    owners = []
    for m in metrics:
        owner = next((t for t in tables if m in t.columns), None)
        if owner is None:
            return None
        owners.append(owner)
    common: set[Any] | None = None
    for t in {id(o): o for o in owners}.values():
        keys = set(t.keys)
        common = keys if common is None else common & keys
    if not common:
        return None
    order = sorted(common, key=str)
    cols = []
    for m, t in zip(metrics, owners, strict=True):
        pos = {k: i for i, k in enumerate(t.keys)}
        cols.append(np.asarray(t.columns[m], dtype=float)[[pos[k] for k in order]])
    arr = np.column_stack(cols)
    arr = arr[np.isfinite(arr).all(axis=1)]
    return arr if len(arr) else None


def widened_reference(points: np.ndarray, directions: Sequence[str]) -> list[float]:
    """The worst value per objective of ``points`` moved away by ``WIDEN`` of the range (at
    least ``WIDEN`` of its magnitude, or of 1): later, worse trials rarely fall outside."""
    out = []
    for j, d in enumerate(directions):
        col = points[:, j]
        worst, best = (col.min(), col.max()) if d == "max" else (col.max(), col.min())
        pad = max(abs(worst - best), abs(worst) if worst else 1.0) * WIDEN
        out.append(float(worst - pad if d == "max" else worst + pad))
    return out


def complete_reference(objectives: Sequence[Any], partial: Sequence[float | None],
                       source: Sequence[str], batch: Sequence[Any],
                       true_front: float | None = None) -> HvReference | None:
    """Fill the objectives ``partial`` leaves open from ``batch``'s counting trials, widened;
    None while the batch has none."""
    metrics, directions = _metrics_and_directions(objectives)
    if all(v is not None for v in partial):
        return HvReference(tuple(float(v) for v in partial), ",".join(source), true_front)
    vectors = [v for t in batch if (v := objective_vector(t, metrics)) is not None]
    if not vectors:
        return None
    widened = widened_reference(np.array(vectors), directions)
    point = tuple(float(v) if v is not None else widened[j] for j, v in enumerate(partial))
    names = [s if partial[j] is not None else "first batch" for j, s in enumerate(source)]
    return HvReference(point, ",".join(names), None)


# ---- the running standing of a job ---------------------------------------------------------
@dataclass
class Change:
    """What one trial did: front membership, trials that left the front, new history points."""

    on_front: bool = False
    dropped: list[int] = field(default_factory=list)
    hv_point: Point | None = None
    best_point: Point | None = None


class Standing:
    """Best trial, Pareto front and hypervolume kept up to date as trials arrive, in trial
    order. The loop and the service's sink fold the same records through it (and the batch
    functions above give the same answers: a property test checks all three)."""

    def __init__(self, objectives: Sequence[Any], reference: HvReference | None = None) -> None:
        self.metrics, self.directions = _metrics_and_directions(objectives)
        self.multi = len(self.metrics) >= 2
        self._signs = np.array([-1.0 if d == "max" else 1.0 for d in self.directions])
        self.best: Any | None = None
        self.front: dict[int, np.ndarray] = {}  # trial id -> minimization vector
        self.best_history: list[Point] = []
        self._candidates: list[tuple[int, int, np.ndarray]] = []  # for a new reference
        self.reference: HvReference | None = None
        self._tracker: HypervolumeTracker | None = None
        self.hv_history: list[Point] = []
        if reference is not None:
            self.set_reference(reference)

    @property
    def hypervolume(self) -> float | None:
        """None for one objective or while there is no reference point."""
        if self._tracker is None:
            return None
        return self._tracker.value

    @property
    def normalized(self) -> float | None:
        return self.reference.normalized(self.hypervolume) if self.reference else None

    def add(self, rec: Any) -> Change:
        change = Change()
        if better_best(rec, self.best):
            self.best = rec
            self.best_history.append((rec.trial_id, _evals(rec), float(rec.reward)))
            change.best_point = self.best_history[-1]
        vector = objective_vector(rec, self.metrics)
        if vector is None:
            return change
        vec = np.array(vector) * self._signs
        evals = _evals(rec)
        self._candidates.append((rec.trial_id, evals, vec))
        change.on_front, change.dropped = self._update_front(rec.trial_id, vec)
        change.hv_point = self._track(rec.trial_id, evals, vec)
        return change

    def set_reference(self, reference: HvReference) -> list[Point]:
        """Fix the reference point; the history is rebuilt from the trials seen so far."""
        if not self.multi:
            return []
        if len(reference.point) != len(self.metrics):
            raise ValueError(f"reference point has {len(reference.point)} values for "
                             f"{len(self.metrics)} objectives")
        self.reference = reference
        self._tracker = HypervolumeTracker(list(reference.point), self.directions)
        self.hv_history = []
        for trial_id, evals, vec in self._candidates:
            self._track(trial_id, evals, vec)
        return list(self.hv_history)

    def front_ids(self) -> list[int]:
        return sorted(self.front)

    def _track(self, trial_id: int, evals: int, vec: np.ndarray) -> Point | None:
        if self._tracker is None:
            return None
        before = self._tracker.value
        after = self._tracker.add(vec * self._signs)
        if after == before:
            return None
        self.hv_history.append((trial_id, evals, after))
        return self.hv_history[-1]

    def _update_front(self, trial_id: int, vec: np.ndarray) -> tuple[bool, list[int]]:
        for other in self.front.values():
            if (other <= vec).all() and (other < vec).any():
                return False, []
        dropped = [t for t, other in self.front.items()
                   if (vec <= other).all() and (vec < other).any()]
        for t in dropped:
            del self.front[t]
        self.front[trial_id] = vec
        return True, dropped


def _evals(rec: Any) -> int:
    return int(rec.evaluation_index or 0)


def hypervolume_of(trials: Sequence[Any], objectives: Sequence[Any],
                   reference: HvReference | None) -> float | None:
    """The front's hypervolume against ``reference`` (None: one objective or no reference)."""
    if reference is None or len(objectives) < 2:
        return None
    metrics, directions = _metrics_and_directions(objectives)
    front = pareto_front(trials, objectives)
    if not front:
        return 0.0
    values = np.array([[t.metrics[m] for m in metrics] for t in front], dtype=float)
    return float(hypervolume(values, list(reference.point), directions))
