"""benchmarks/amc_signal_study.py: the rank statistics that judge a search signal."""

from __future__ import annotations

import pytest

from benchmarks import amc_signal_study as study


def _rows(outcomes: list[float], signal: list[float]) -> list[dict]:
    names = ["uniform"] + [f"p{i}" for i in range(1, len(outcomes))]
    return [{"policy": n, "heldout_ft1": y, **{s: x for s in study.SIGNALS}}
            for n, y, x in zip(names, outcomes, signal, strict=True)]


def test_a_signal_that_orders_policies_as_fine_tuning_does_gets_rho_one_and_the_best() -> None:
    ys = [0.80, 0.78, 0.83, 0.75, 0.81, 0.79]
    summary = study.summarize(_rows(ys, ys), [1.0])
    first = summary[0]
    assert first["rho"] == pytest.approx(1.0)
    assert first["top1"] == max(ys) and first["top1_policy"] == "p2"
    assert first["top3_mean"] == pytest.approx((0.83 + 0.81 + 0.80) / 3)
    assert first["uniform"] == 0.80 and first["pool_best"] == 0.83
    assert first["low"] <= 1.0 <= first["high"] + 1e-12


def test_a_reversed_signal_gets_rho_minus_one_and_picks_the_worst() -> None:
    ys = [0.80, 0.78, 0.83, 0.75, 0.81, 0.79]
    summary = study.summarize(_rows(ys, [-y for y in ys]), [1.0])
    assert summary[0]["rho"] == pytest.approx(-1.0)
    assert summary[0]["top1"] == min(ys)
    low, high = study.bootstrap_ci(ys, [-y for y in ys], n=200)
    assert high <= -0.99
