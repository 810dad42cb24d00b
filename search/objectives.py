"""Rewards and constraints: how a trial's metrics become the scalar an agent learns from.

A metric that a reward or constraint needs but the trial lacks raises ``MetricNotMeasured``
naming it (the loop marks the trial INVALID); it is never read as 0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Literal, Protocol

import numpy as np

from agents.rewards import mnas_reward
from search.base import MetricNotMeasured
from search.spec import ConstraintSpec, RewardSpec

Reward = Callable[[Mapping[str, float]], float]


class ObjectiveLike(Protocol):
    """``search.spec.ObjectiveSpec`` and ``agents.base.Objective`` both fit."""

    metric: str
    direction: str


def metric_value(metrics: Mapping[str, float], name: str) -> float:
    """``metrics[name]`` as a float; ``MetricNotMeasured`` when absent, None or NaN."""
    value = metrics.get(name)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        available = ", ".join(sorted(metrics)) or "none"
        raise MetricNotMeasured(f"metric {name!r} was not measured (measured: {available})")
    return float(value)


def make_reward(reward: RewardSpec, objectives: Sequence[ObjectiveLike]) -> Reward:
    """The scalar reward function a job spec describes (see ``RewardSpec``)."""
    if reward.kind == "objective":
        if not objectives:
            raise ValueError("reward kind 'objective' needs at least one objective")
        first = objectives[0]
        sign = -1.0 if first.direction == "min" else 1.0
        return lambda m: sign * metric_value(m, first.metric)
    if reward.kind == "mnas":
        acc, lat, target = reward.accuracy, reward.latency, reward.target
        if acc is None or lat is None or target is None:
            raise ValueError("reward kind 'mnas' needs accuracy, latency and target")
        w, mode = reward.w, reward.mode
        return lambda m: mnas_reward(metric_value(m, acc), metric_value(m, lat), target,
                                     w=w, mode=mode)
    if reward.kind == "weighted":
        weights = dict(reward.weights)
        if not weights:
            raise ValueError("reward kind 'weighted' needs 'weights' (metric -> weight)")
        return lambda m: float(sum(wt * metric_value(m, k) for k, wt in weights.items()))
    raise ValueError(f"unknown reward kind {reward.kind!r}; valid: objective, mnas, weighted")


def reward_formula(reward: RewardSpec, objectives: Sequence[ObjectiveLike],
                   units: Mapping[str, str | None] | None = None) -> str:
    """The reward ``make_reward`` computes, written out for people, e.g.
    ``val_acc * (pixel3_latency / 10 ms)^-0.07``; ``units`` puts the target's unit in."""
    if reward.kind == "objective":
        if not objectives:
            return "none (no objective)"
        first = objectives[0]
        return f"-{first.metric}" if first.direction == "min" else first.metric
    if reward.kind == "mnas":
        unit = (units or {}).get(reward.latency or "")
        target = f"{reward.target:g}" + (f" {unit}" if unit else "")
        ratio = f"({reward.latency} / {target})"
        if reward.mode == "hard":
            return f"{reward.accuracy} * {ratio}^(0 if {reward.latency} <= {target} else -1)"
        return f"{reward.accuracy} * {ratio}^{reward.w:g}"
    terms = []
    for i, (name, weight) in enumerate(reward.weights.items()):
        sign = "-" if weight < 0 else "+"
        term = name if abs(weight) == 1 else f"{abs(weight):g} * {name}"
        terms.append((sign if sign == "-" else "") + term if i == 0 else f"{sign} {term}")
    return " ".join(terms)


def constraint_violations(
    constraints: Sequence[ConstraintSpec],
    metrics: Mapping[str, float],
    *,
    missing: Literal["raise", "skip"] = "raise",
) -> list[str]:
    """Human-readable violations, e.g. ``"pixel3_latency=23.1 > max 20"``; empty when met.

    ``missing="skip"`` ignores constraints on metrics not yet known (the loop checks the
    ``reject`` constraints on profiler metrics before the evaluator has run).
    """
    out = []
    for c in constraints:
        if missing == "skip" and c.metric not in metrics:
            continue
        value = metric_value(metrics, c.metric)
        if c.max is not None and value > c.max:
            out.append(f"{c.metric}={value:g} > max {c.max:g}")
        if c.min is not None and value < c.min:
            out.append(f"{c.metric}={value:g} < min {c.min:g}")
    return out


def minimization_matrix(
    rows: Sequence[Mapping[str, float]], objectives: Sequence[ObjectiveLike]
) -> np.ndarray:
    """``(n, m)`` array of objective values, maximized ones negated: all minimized.

    Raises ``MetricNotMeasured`` naming the row and metric when one is absent (select the
    complete trials first).
    """
    out = np.empty((len(rows), len(objectives)), dtype=np.float64)
    for i, row in enumerate(rows):
        for j, obj in enumerate(objectives):
            try:
                value = metric_value(row, obj.metric)
            except MetricNotMeasured as err:
                raise MetricNotMeasured(f"row {i}: {err}") from None
            out[i, j] = -value if obj.direction == "max" else value
    return out
