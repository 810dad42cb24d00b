"""The job's Pareto front and hypervolume history, kept up to date as trials arrive.

The front is maintained incrementally (a newcomer is checked against the current front only)
so each stored trial carries an ``on_front`` flag and the Pareto route is one indexed query.
The hypervolume uses ``search.pareto.HypervolumeTracker`` with a reference point that needs
no prior: the worst value observed per objective, padded by 10% of the observed range (at
least 1% of its magnitude) so it moves rarely. When a trial moves it, the history is recomputed
against the new point; padding makes that happen O(log n) times instead of at every record.
When the job ends, ``finalize`` recomputes it once against the exact worst observed values, the
reference ``results.json`` reports, so both give the same final hypervolume.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from search.pareto import HypervolumeTracker
from search.spec import ObjectiveSpec

PAD = 0.10


@dataclass
class Change:
    """What one trial did to the front and the hypervolume history."""

    on_front: bool = False
    dropped: list[int] = field(default_factory=list)  # trial ids that left the front
    point: tuple[int, int, float] | None = None  # (trial_id, evaluations, value) appended
    history: list[tuple[int, int, float]] | None = None  # whole history, when recomputed


class Frontier:
    def __init__(self, objectives: Sequence[ObjectiveSpec]) -> None:
        self.metrics = [o.metric for o in objectives]
        self.directions = [o.direction for o in objectives]
        self._signs = np.array([-1.0 if d == "max" else 1.0 for d in self.directions])
        self.points: list[tuple[int, int, np.ndarray]] = []  # (trial_id, evals, minimized)
        self.front: dict[int, np.ndarray] = {}
        self.reference: np.ndarray | None = None  # minimization units
        self.tracker: HypervolumeTracker | None = None
        self.history: list[tuple[int, int, float]] = []

    def vector(self, metrics: Mapping[str, float | None]) -> np.ndarray | None:
        """The objective values in minimization units, or None if one is missing."""
        values = []
        for m in self.metrics:
            v = metrics.get(m)
            if v is None or not isinstance(v, int | float) or not math.isfinite(v):
                return None
            values.append(float(v))
        return np.array(values) * self._signs

    @property
    def reference_values(self) -> list[float] | None:
        """The reference point in the caller's units and directions."""
        if self.reference is None:
            return None
        return (self.reference * self._signs).tolist()

    @property
    def value(self) -> float | None:
        return self.history[-1][2] if self.history else None

    def add(self, trial_id: int, evaluations: int, metrics: Mapping[str, float | None]) -> Change:
        """Add an eligible trial (complete, not a repeat); a missing objective is skipped."""
        vec = self.vector(metrics)
        if vec is None:
            return Change()
        self.points.append((trial_id, evaluations, vec))
        change = self._update_front(trial_id, vec)
        worst = np.max([vec, self.reference], axis=0) if self.reference is not None else vec
        if self.reference is None or (worst > self.reference).any():
            self._rebuild(self._padded())
            change.history = list(self.history)
            return change
        assert self.tracker is not None
        before = self.tracker.value
        after = self.tracker.add(vec * self._signs)
        if after != before:
            self.history.append((trial_id, evaluations, after))
            change.point = self.history[-1]
        return change

    def finalize(self) -> list[tuple[int, int, float]]:
        """Recompute the history against the unpadded worst observed values."""
        if self.points:
            self._rebuild(np.array([p[2] for p in self.points]).max(axis=0))
        return list(self.history)

    def _update_front(self, trial_id: int, vec: np.ndarray) -> Change:
        for other in self.front.values():
            if (other <= vec).all() and (other < vec).any():
                return Change()
        dropped = [t for t, other in self.front.items()
                   if (vec <= other).all() and (vec < other).any()]
        for t in dropped:
            del self.front[t]
        self.front[trial_id] = vec
        return Change(on_front=True, dropped=dropped)

    def _padded(self) -> np.ndarray:
        arr = np.array([p[2] for p in self.points])
        worst, best = arr.max(axis=0), arr.min(axis=0)
        span = np.maximum(worst - best, np.maximum(np.abs(worst), 1.0) * PAD)
        return worst + np.maximum(span * PAD, 1e-9)

    def _rebuild(self, reference: np.ndarray) -> None:
        self.reference = reference
        self.tracker = HypervolumeTracker(reference * self._signs, self.directions)
        self.history = []
        for trial_id, evaluations, vec in self.points:
            before = self.tracker.value
            after = self.tracker.add(vec * self._signs)
            if after != before or not self.history:
                self.history.append((trial_id, evaluations, after))
