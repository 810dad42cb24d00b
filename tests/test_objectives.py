"""Rewards (MnasNet soft/hard, objective, weighted), constraints and objective matrices."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agents.base import Objective
from search.base import MetricNotMeasured
from search.objectives import (
    constraint_violations,
    make_reward,
    minimization_matrix,
    mnas_reward,
)
from search.spec import ConstraintSpec, ObjectiveSpec, RewardSpec


def test_mnas_soft_values() -> None:
    assert mnas_reward(0.75, 80.0, 80.0) == pytest.approx(0.75)  # at the target
    assert mnas_reward(0.75, 40.0, 80.0) == pytest.approx(0.75 * 0.5 ** -0.07)
    assert mnas_reward(0.75, 160.0, 80.0) == pytest.approx(0.75 * 2 ** -0.07)
    assert mnas_reward(0.75, 160.0, 80.0, w=-0.15) == pytest.approx(0.75 * 2 ** -0.15)
    assert mnas_reward(0.75, 160.0, 80.0, w=0.0) == pytest.approx(0.75)


def test_mnas_paper_property_2x_latency_needs_5_percent_accuracy() -> None:
    # Tan et al. 2019: with w=-0.07, a model twice as slow needs ~5% relative accuracy gain.
    base = mnas_reward(0.70, 50.0, 60.0)
    needed = 0.70 * 2 ** 0.07
    assert mnas_reward(needed, 100.0, 60.0) == pytest.approx(base, rel=1e-12)
    assert needed / 0.70 - 1 == pytest.approx(0.05, abs=0.001)
    assert mnas_reward(0.70 * 1.04, 100.0, 60.0) < base < mnas_reward(0.70 * 1.06, 100.0, 60.0)


def test_mnas_hard_values() -> None:
    # Below or at the target: accuracy only (alpha = 0), whatever w is.
    assert mnas_reward(0.8, 10.0, 20.0, mode="hard") == pytest.approx(0.8)
    assert mnas_reward(0.8, 20.0, 20.0, mode="hard", w=-0.5) == pytest.approx(0.8)
    # Above: beta = -1, reward falls in proportion to the overshoot.
    assert mnas_reward(0.8, 40.0, 20.0, mode="hard") == pytest.approx(0.4)
    assert mnas_reward(0.8, 25.0, 20.0, mode="hard") == pytest.approx(0.64)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"latency": 0.0}, "latency"),
        ({"latency": -1.0}, "latency"),
        ({"target": 0.0}, "target"),
        ({"accuracy": math.nan}, "accuracy"),
        ({"mode": "medium"}, "mode"),
    ],
)
def test_mnas_rejects_bad_input(kwargs: dict, field: str) -> None:
    args = {"accuracy": 0.7, "latency": 10.0, "target": 20.0} | kwargs
    mode = args.pop("mode", "soft")
    with pytest.raises(ValueError, match=field):
        mnas_reward(args["accuracy"], args["latency"], args["target"], mode=mode)


def test_make_reward_objective_negates_min() -> None:
    r_max = make_reward(RewardSpec(), [ObjectiveSpec(metric="val_acc")])
    assert r_max({"val_acc": 91.5, "pixel3_latency": 3.0}) == 91.5
    r_min = make_reward(RewardSpec(), [Objective("pixel3_latency", "min"),
                                       Objective("val_acc", "max")])
    assert r_min({"val_acc": 91.5, "pixel3_latency": 3.0}) == -3.0


def test_make_reward_mnas_and_weighted() -> None:
    spec = RewardSpec(kind="mnas", accuracy="val_acc", latency="pixel3_latency", target=20.0)
    reward = make_reward(spec, [ObjectiveSpec(metric="val_acc")])
    assert reward({"val_acc": 90.0, "pixel3_latency": 40.0}) == pytest.approx(90 * 2 ** -0.07)
    hard = make_reward(spec.model_copy(update={"mode": "hard"}), [])
    assert hard({"val_acc": 90.0, "pixel3_latency": 40.0}) == pytest.approx(45.0)
    weighted = make_reward(
        RewardSpec(kind="weighted", weights={"val_acc": 1.0, "flops_M": -0.1}), []
    )
    assert weighted({"val_acc": 90.0, "flops_M": 50.0}) == pytest.approx(85.0)


@pytest.mark.parametrize(
    "spec",
    [
        RewardSpec(),
        RewardSpec(kind="mnas", accuracy="val_acc", latency="pixel3_latency", target=20.0),
        RewardSpec(kind="weighted", weights={"val_acc": 1.0, "pixel3_latency": -1.0}),
    ],
)
def test_missing_metric_is_not_zero(spec: RewardSpec) -> None:
    reward = make_reward(spec, [ObjectiveSpec(metric="pixel3_latency", direction="min")])
    for metrics in ({"val_acc": 90.0}, {"val_acc": 90.0, "pixel3_latency": math.nan}):
        with pytest.raises(MetricNotMeasured, match="pixel3_latency"):
            reward(metrics)


def test_constraint_violations() -> None:
    cons = [
        ConstraintSpec(metric="pixel3_latency", max=20.0),
        ConstraintSpec(metric="val_acc", min=80.0, max=95.0),
    ]
    assert constraint_violations(cons, {"pixel3_latency": 12.0, "val_acc": 90.0}) == []
    assert constraint_violations(cons, {"pixel3_latency": 23.1, "val_acc": 70.5}) == [
        "pixel3_latency=23.1 > max 20",
        "val_acc=70.5 < min 80",
    ]
    with pytest.raises(MetricNotMeasured, match="val_acc"):
        constraint_violations(cons, {"pixel3_latency": 12.0})
    # Before evaluation only profiler metrics are known: skip the rest.
    assert constraint_violations(cons, {"pixel3_latency": 23.1}, missing="skip") == [
        "pixel3_latency=23.1 > max 20"
    ]


def test_minimization_matrix() -> None:
    objs = [ObjectiveSpec(metric="val_acc"), ObjectiveSpec(metric="lat", direction="min")]
    rows = [{"val_acc": 90.0, "lat": 3.0}, {"val_acc": 80.0, "lat": 1.0, "x": 7.0}]
    np.testing.assert_array_equal(minimization_matrix(rows, objs), [[-90.0, 3.0], [-80.0, 1.0]])
    assert minimization_matrix([], objs).shape == (0, 2)
    with pytest.raises(MetricNotMeasured, match="row 1.*lat"):
        minimization_matrix([rows[0], {"val_acc": 1.0}], objs)
