"""benchmarks/amc_fashion.py: the RLlib SAC method's options record and its paired rows
(no search is run here)."""

from __future__ import annotations

import argparse

import pytest

from agents.rllib_options import RLlibOptions
from benchmarks import amc_fashion


def test_rllib_sac_is_a_method_with_registry_defaults() -> None:
    assert "rllib_sac" in amc_fashion.METHODS
    assert "rllib_sac" not in amc_fashion.ISSUE_METHODS
    record = amc_fashion.rllib_record("rllib_sac")
    assert record["agent"] == "rllib"
    assert record["given"] == {"algorithm": "SAC", "environment": "compression"}
    defaults = RLlibOptions().model_dump()
    opts = record["options"]
    assert opts["algorithm"] == "SAC" and opts["environment"] == "compression"
    # everything not given is the registry's default (not tuned on the benchmark's seeds)
    assert {k: v for k, v in opts.items() if k not in record["given"]} == {
        k: v for k, v in defaults.items() if k not in record["given"]}
    assert set(record["training"]) >= {"actor_lr", "critic_lr", "alpha_lr"}


def test_summary_pairs_rllib_sac_with_amc_and_uniform_per_seed() -> None:
    args = argparse.Namespace(epochs=[1.0])
    target = "resnet_small:flops:0.1"
    acc = {("rllib_sac", 0): 80.0, ("rllib_sac", 1): 79.0, ("uniform", 0): 81.0,
           ("uniform", 1): 79.5, ("amc", 0): 80.5, ("amc", 1): 80.0}
    rows = [{"target": target, "method": m, "seed": s, "test_acc_ft1": a}
            for (m, s), a in acc.items()]
    summary = amc_fashion.summarize(rows, args)
    pairs = {(p["a"], p["b"]): p for p in summary["paired"]}
    assert pairs[("rllib_sac", "uniform")]["mean"] == pytest.approx(-0.75)
    assert pairs[("rllib_sac", "amc")]["mean"] == pytest.approx(-0.75)
    assert pairs[("rllib_sac", "uniform")]["n"] == 2
    assert {e["method"] for e in summary["methods"]} == {"rllib_sac", "uniform", "amc"}
