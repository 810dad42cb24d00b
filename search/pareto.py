"""Pareto fronts and hypervolume over a job's objectives (2 or 3 of them, max or min each).

Which code does what, and why:

- Non-dominated sorting, front membership and hypervolume in any dimension use ``moocore``
  (the C library behind the R ``moocore``/``eaf`` packages, maintained by López-Ibáñez):
  exact, ``O(n log n)`` dimension-sweep algorithms for 2-D and 3-D (HV3D+ for 3-D volume),
  and tested far beyond what we could re-test here. A numpy ``O(n^2)`` dominance matrix would
  need ``n^2`` memory for a 10k-trial job; a hand-written 3-D hypervolume is easy to get
  subtly wrong.
- A short exact 2-D sweep (``hypervolume_2d``) lives here too: ``HypervolumeTracker`` needs
  an incremental update as each trial arrives (``O(log n)`` to find the slot, then only the
  points the newcomer dominates), which moocore does not offer, and the tests cross-check it
  against moocore and a brute-force grid count.

All functions take raw values plus ``directions`` (``"max"``/``"min"`` per column) and work
internally on a minimization copy. Points that are not strictly better than the reference
point in every objective contribute no volume. Non-finite values are rejected: select the
trials that measured every objective first.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Sequence

import moocore
import numpy as np
from numpy.typing import ArrayLike

Directions = Sequence[str]


def _signs(directions: Directions, m: int) -> np.ndarray:
    if len(directions) != m:
        raise ValueError(f"got {len(directions)} directions for {m} objectives")
    bad = [d for d in directions if d not in ("max", "min")]
    if bad:
        raise ValueError(f"directions must be 'max' or 'min', got {bad}")
    return np.array([-1.0 if d == "max" else 1.0 for d in directions])


def to_minimization(points: ArrayLike, directions: Directions) -> np.ndarray:
    """``(n, m)`` float copy with maximized columns negated; validates shape and values."""
    arr = np.array(points, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        arr = arr.reshape(0, len(directions))
    if arr.ndim != 2:
        raise ValueError(f"points must be a 2-D array (n points x m objectives), got {arr.shape}")
    signs = _signs(directions, arr.shape[1])
    if not np.isfinite(arr).all():
        raise ValueError("points must be finite (drop trials that lack an objective first)")
    return arr * signs


def _reference(reference: ArrayLike, directions: Directions) -> np.ndarray:
    ref = np.asarray(reference, dtype=np.float64).reshape(-1)
    if ref.size != len(directions):
        raise ValueError(f"reference point has {ref.size} values for {len(directions)} "
                         "objectives")
    signs = _signs(directions, ref.size)
    if not np.isfinite(ref).all():
        raise ValueError(f"reference point must be finite, got {ref.tolist()}")
    return ref * signs


def non_dominated_sort(points: ArrayLike, directions: Directions) -> list[list[int]]:
    """Fronts as lists of row indices: front 0 is non-dominated, front 1 is non-dominated
    once front 0 is removed, and so on. Equal points share a front."""
    arr = to_minimization(points, directions)
    if len(arr) == 0:
        return []
    ranks = moocore.pareto_rank(arr)
    return [np.flatnonzero(ranks == r).tolist() for r in range(int(ranks.max()) + 1)]


def pareto_front_indices(points: ArrayLike, directions: Directions) -> list[int]:
    """Rows no other row dominates (duplicates of a front point are all kept), ascending."""
    arr = to_minimization(points, directions)
    if len(arr) == 0:
        return []
    return np.flatnonzero(moocore.is_nondominated(arr, keep_weakly=True)).tolist()


def hypervolume_2d(points_min: np.ndarray, ref_min: np.ndarray) -> float:
    """Exact 2-D hypervolume of minimization points w.r.t. ``ref_min`` (a sweep over x)."""
    p = points_min[(points_min[:, 0] < ref_min[0]) & (points_min[:, 1] < ref_min[1])]
    if len(p) == 0:
        return 0.0
    p = p[np.lexsort((p[:, 1], p[:, 0]))]
    total, y_best = 0.0, float(ref_min[1])
    for x, y in p:
        if y < y_best:
            total += (float(ref_min[0]) - x) * (y_best - y)
            y_best = float(y)
    return total


def hypervolume(points: ArrayLike, reference: ArrayLike, directions: Directions) -> float:
    """Exact volume dominated by ``points`` and bounded by ``reference``."""
    arr = to_minimization(points, directions)
    ref = _reference(reference, directions)
    if arr.shape[1] != ref.size:
        raise ValueError(f"reference has {ref.size} values for {arr.shape[1]} objectives")
    arr = arr[(arr < ref).all(axis=1)]
    if len(arr) == 0:
        return 0.0
    if ref.size == 1:
        return float(ref[0] - arr.min())
    return float(moocore.hypervolume(arr, ref=ref))


class HypervolumeTracker:
    """Hypervolume of all points added so far, updated as each one arrives.

    2-D keeps the front sorted by the first objective and adds only the newcomer's exclusive
    area (``O(log n)`` plus the points it dominates); 3-D keeps the front and recomputes
    with moocore only when the front changes. ``history[i]`` is the volume after ``i+1`` adds.
    """

    def __init__(self, reference: ArrayLike, directions: Directions) -> None:
        if not directions:
            raise ValueError("a hypervolume needs at least one objective direction")
        self.directions = list(directions)
        self._signs = _signs(self.directions, len(self.directions))
        self._ref = _reference(reference, self.directions)
        self.value = 0.0
        self.history: list[float] = []
        self._xs: list[float] = []  # 2-D front: x ascending, y strictly descending
        self._ys: list[float] = []
        self._front = np.empty((0, self._ref.size))  # other dimensions

    @property
    def front(self) -> np.ndarray:
        """The current non-dominated points, in the caller's units and directions."""
        if self._ref.size == 2:
            return np.column_stack([self._xs, self._ys]).reshape(-1, 2) * self._signs
        return self._front * self._signs

    def add(self, point: ArrayLike) -> float:
        """Add one point; returns the new hypervolume."""
        p = to_minimization(np.asarray(point, dtype=np.float64).reshape(1, -1),
                            self.directions)[0]
        if (p < self._ref).all():
            if self._ref.size == 2:
                self.value += self._add_2d(float(p[0]), float(p[1]))
            else:
                self._add_nd(p)
        self.history.append(self.value)
        return self.value

    def _add_2d(self, px: float, py: float) -> float:
        xs, ys = self._xs, self._ys
        rx, ry = float(self._ref[0]), float(self._ref[1])
        i = bisect_right(xs, px)
        if i > 0 and ys[i - 1] <= py:
            return 0.0  # weakly dominated by the front
        k = i
        while k < len(xs) and ys[k] >= py:
            k += 1  # xs[i:k] are dominated by the newcomer
        nxt = xs[k] if k < len(xs) else rx
        old = sum(((xs[j + 1] if j + 1 < len(xs) else rx) - xs[j]) * (ry - ys[j])
                  for j in range(i, k))
        new = (nxt - px) * (ry - py)
        if i > 0:
            old += ((xs[i] if i < len(xs) else rx) - xs[i - 1]) * (ry - ys[i - 1])
            new += (px - xs[i - 1]) * (ry - ys[i - 1])
        xs[i:k] = [px]
        ys[i:k] = [py]
        return new - old

    def _add_nd(self, p: np.ndarray) -> None:
        front = self._front
        if len(front) and (front <= p).all(axis=1).any():
            return
        keep = ~(p <= front).all(axis=1)
        self._front = np.vstack([front[keep], p])
        if self._ref.size == 1:
            self.value = float(self._ref[0] - self._front.min())
        else:
            self.value = float(moocore.hypervolume(self._front, ref=self._ref))
