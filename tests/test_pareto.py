"""Pareto fronts, non-dominated sorting and hypervolume against brute force."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from search.pareto import (
    HypervolumeTracker,
    hypervolume,
    hypervolume_2d,
    non_dominated_sort,
    pareto_front_indices,
    to_minimization,
)


def dominates(a: np.ndarray, b: np.ndarray) -> bool:
    """Minimization: a is no worse everywhere and better somewhere."""
    return bool((a <= b).all() and (a < b).any())


def brute_front(pts: np.ndarray) -> list[int]:
    return [i for i in range(len(pts))
            if not any(dominates(pts[j], pts[i]) for j in range(len(pts)))]


def brute_sort(pts: np.ndarray) -> list[list[int]]:
    left, fronts = list(range(len(pts))), []
    while left:
        front = [i for i in left if not any(dominates(pts[j], pts[i]) for j in left)]
        fronts.append(front)
        left = [i for i in left if i not in front]
    return fronts


def brute_hv(pts: np.ndarray, ref: np.ndarray) -> float:
    """Exact volume by summing the cells of the grid of unique coordinates (minimization)."""
    pts = pts[(pts < ref).all(axis=1)]
    if len(pts) == 0:
        return 0.0
    axes = [np.unique(np.append(pts[:, d], ref[d])) for d in range(len(ref))]
    total = 0.0
    for cell in itertools.product(*(range(len(a) - 1) for a in axes)):
        lo = np.array([axes[d][c] for d, c in enumerate(cell)])
        if (pts <= lo).all(axis=1).any():
            total += float(np.prod([axes[d][c + 1] - axes[d][c] for d, c in enumerate(cell)]))
    return total


def random_points(rng: np.random.Generator, n: int, m: int) -> np.ndarray:
    # Integer-valued coordinates so ties and duplicates occur often.
    return rng.integers(0, 12, size=(n, m)).astype(float)


@pytest.mark.parametrize("m", [2, 3])
def test_front_and_sort_match_brute_force(m: int) -> None:
    rng = np.random.default_rng(m)
    for _ in range(30):
        pts = random_points(rng, int(rng.integers(1, 40)), m)
        dirs = list(rng.choice(["max", "min"], size=m))
        mini = to_minimization(pts, dirs)
        assert pareto_front_indices(pts, dirs) == brute_front(mini)
        fronts = non_dominated_sort(pts, dirs)
        assert [sorted(f) for f in fronts] == [sorted(f) for f in brute_sort(mini)]
        assert sorted(i for f in fronts for i in f) == list(range(len(pts)))


def test_directions_change_the_front() -> None:
    pts = [[90.0, 10.0], [80.0, 5.0], [70.0, 20.0]]  # accuracy (max), latency (min)
    assert pareto_front_indices(pts, ["max", "min"]) == [0, 1]
    assert pareto_front_indices(pts, ["min", "max"]) == [2]


@pytest.mark.parametrize("m", [2, 3])
def test_hypervolume_matches_grid_count(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    for _ in range(25):
        pts = random_points(rng, int(rng.integers(1, 15 if m == 3 else 30)), m)
        dirs = list(rng.choice(["max", "min"], size=m))
        ref_min = rng.integers(4, 14, size=m).astype(float)  # some points lie beyond it
        ref = ref_min * np.where(np.array(dirs) == "max", -1.0, 1.0)
        expected = brute_hv(to_minimization(pts, dirs), ref_min)
        assert hypervolume(pts, ref, dirs) == pytest.approx(expected, rel=1e-12, abs=1e-12)
        if m == 2:
            got = hypervolume_2d(to_minimization(pts, dirs), ref_min)
            assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


def test_hypervolume_known_values() -> None:
    # Max accuracy, min latency; reference (acc 0, lat 100).
    pts = [[90.0, 20.0], [80.0, 10.0]]
    # 90*(100-20) + 80*(20-10) = 7200 + 800
    assert hypervolume(pts, [0.0, 100.0], ["max", "min"]) == pytest.approx(8000.0)
    # A point worse than the reference in one objective adds nothing.
    assert hypervolume(pts + [[95.0, 150.0]], [0.0, 100.0], ["max", "min"]) == 8000.0
    assert hypervolume([[95.0, 150.0]], [0.0, 100.0], ["max", "min"]) == 0.0
    assert hypervolume(np.empty((0, 2)), [0.0, 100.0], ["max", "min"]) == 0.0
    # Unit cube corner in 3-D.
    assert hypervolume([[0.0, 0.0, 0.0]], [1.0, 2.0, 3.0], ["min"] * 3) == pytest.approx(6.0)


@pytest.mark.parametrize("m", [2, 3])
def test_tracker_matches_batch_hypervolume(m: int) -> None:
    rng = np.random.default_rng(20 + m)
    for _ in range(10):
        dirs = list(rng.choice(["max", "min"], size=m))
        ref_min = np.full(m, 10.0)
        ref = ref_min * np.where(np.array(dirs) == "max", -1.0, 1.0)
        pts = rng.uniform(0, 12, size=(60, m))
        pts[::7] = np.round(pts[::7])  # some ties
        pts *= np.where(np.array(dirs) == "max", -1.0, 1.0)
        tracker = HypervolumeTracker(ref, dirs)
        for i, p in enumerate(pts):
            got = tracker.add(p)
            assert got == pytest.approx(hypervolume(pts[: i + 1], ref, dirs), rel=1e-9)
        assert tracker.history == sorted(tracker.history)  # hypervolume never decreases
        front = tracker.front
        assert hypervolume(front, ref, dirs) == pytest.approx(tracker.value, rel=1e-9)


def test_tracker_2d_exact_sequence() -> None:
    t = HypervolumeTracker([0.0, 100.0], ["max", "min"])
    assert t.add([80.0, 10.0]) == pytest.approx(80 * 90)
    assert t.add([70.0, 20.0]) == pytest.approx(80 * 90)  # dominated: no change
    assert t.add([90.0, 20.0]) == pytest.approx(8000.0)
    assert t.add([95.0, 5.0]) == pytest.approx(95 * 95)  # dominates the whole front
    assert t.add([99.0, 100.0]) == pytest.approx(95 * 95)  # on the reference: nothing
    assert t.front.tolist() == [[95.0, 5.0]]
    assert len(t.history) == 5


def test_bad_input_is_named() -> None:
    with pytest.raises(ValueError, match="directions"):
        pareto_front_indices([[1.0, 2.0]], ["max"])
    with pytest.raises(ValueError, match="'max' or 'min'"):
        pareto_front_indices([[1.0, 2.0]], ["max", "up"])
    with pytest.raises(ValueError, match="finite"):
        hypervolume([[np.nan, 2.0]], [0.0, 0.0], ["max", "max"])
    with pytest.raises(ValueError, match="reference"):
        hypervolume([[1.0, 2.0]], [0.0, 0.0, 0.0], ["max", "max"])
