"""Proxy training: learns, is deterministic for a seed, keeps test accuracy from the agent,
distils from a teacher, and stops poor candidates through Ray Tune's ASHA."""

from __future__ import annotations

import pickle
from dataclasses import replace

import numpy as np
import pytest
import torch

from search.evaluators.asha import AshaGate
from search.evaluators.train import (
    TrainConfig,
    TrainingEvaluator,
    build_for,
    get_dataset,
    lr_at,
    train_model,
)
from search.registry import EVALUATORS
from spaces.nb201 import NB201Space
from tests.models.conftest import tiny_space_options

DIGITS = {"source": "digits", "max_samples": 600}


def _evaluator(**kw):
    opts = {"dataset": DIGITS, "epochs": 1, "batch_size": 32, "lr": 0.1, **kw}
    return EVALUATORS.create("train", options=opts)


def test_training_learns_and_records_test_accuracy_apart(tiny_space):
    ev = _evaluator(epochs=2)
    arch = tiny_space.sample(np.random.default_rng(0))
    result = ev.evaluate(arch, tiny_space, seed=5)
    assert set(result.metrics) == {"val_acc"}
    assert result.metrics["val_acc"] > 40  # chance is 10%
    rec = result.recorded
    assert 0 <= rec["test_acc"] <= 100 and "test_acc" not in result.metrics
    assert len(rec["val_curve"]) == 2 and rec["epochs_run"] == 2
    assert rec["params"] > 0 and rec["dataset"] == "digits"


def test_training_is_deterministic_for_a_seed(tiny_space):
    ev = _evaluator()
    data = ev.data()
    arch = tiny_space.sample(np.random.default_rng(1))
    runs = []
    for seed in (7, 7, 8):
        model = build_for(tiny_space, arch, data, seed)
        runs.append(train_model(model, data, ev.config, seed=seed))
    a, b, c = runs
    assert a.val_acc == b.val_acc and a.test_acc == b.test_acc and a.train_loss == b.train_loss
    for pa, pb in zip(a.model.state_dict().values(), b.model.state_dict().values(),
                      strict=True):
        assert torch.equal(pa, pb)
    assert any(not torch.equal(pa, pc) for pa, pc in
               zip(a.model.state_dict().values(), c.model.state_dict().values(), strict=True))


def test_evaluator_is_cheap_to_pickle_after_loading_data(tiny_space):
    ev = _evaluator()
    ev.data()
    blob = pickle.dumps(ev)
    assert len(blob) < 5000  # options only: data stays in the process cache
    clone = pickle.loads(blob)
    assert clone.config == ev.config and clone.dataset == ev.dataset


def test_schedules():
    cfg = TrainConfig(lr=1.0, schedule="cosine")
    assert lr_at(cfg, 0, 100) == 1.0 and lr_at(cfg, 50, 100) == pytest.approx(0.5)
    step = replace(cfg, schedule="step")
    assert [lr_at(step, s, 100) for s in (0, 49, 50, 75)] == pytest.approx([1, 1, 0.1, 0.01])
    assert lr_at(replace(cfg, schedule="constant"), 99, 100) == 1.0


def test_distillation_changes_training_and_stays_deterministic(tiny_space):
    ev = _evaluator()
    data = ev.data()
    arch = tiny_space.sample(np.random.default_rng(2))
    teacher = train_model(build_for(tiny_space, arch, data, 1), data, ev.config, seed=1).model
    cfg = replace(ev.config, distill_alpha=0.9)
    plain = train_model(build_for(tiny_space, arch, data, 2), data, cfg, seed=2)
    kd1 = train_model(build_for(tiny_space, arch, data, 2), data, cfg, seed=2, teacher=teacher)
    kd2 = train_model(build_for(tiny_space, arch, data, 2), data, cfg, seed=2, teacher=teacher)
    assert kd1.train_loss == kd2.train_loss
    assert kd1.train_loss != plain.train_loss


def test_clear_errors():
    with pytest.raises(TypeError, match="does not build PyTorch models"):
        _evaluator().evaluate(NB201Space().from_index(0), NB201Space(), seed=0)
    with pytest.raises(ValueError, match="epochs must be >= 1"):
        TrainingEvaluator(epochs=0)
    with pytest.raises(ValueError, match="schedule must be one of"):
        TrainingEvaluator(schedule="linear")
    with pytest.raises(ValueError, match="asha.grace_period must be in 1..epochs"):
        TrainingEvaluator(epochs=2, asha={"grace_period": 3})


def test_dataset_is_loaded_once_per_process():
    a = get_dataset(DIGITS)
    assert get_dataset(dict(DIGITS)) is a


# ---- ASHA -----------------------------------------------------------------------------------
def test_asha_gate_stops_trials_below_the_rung_cutoff():
    gate = AshaGate("test-cutoff", max_t=4, grace_period=1, reduction_factor=2)
    try:
        assert gate.report("a", 1, 90.0)  # first at the rung: nothing to compare with
        assert not gate.report("b", 1, 50.0)  # below the median of {90}
        assert gate.report("c", 1, 95.0)
        assert gate.report("a", 2, 92.0)  # rung 2 is empty
        assert not gate.report("c", 2, 60.0)
        assert gate.summary()["stopped"] == 2
    finally:
        gate.close()


def test_evaluator_with_asha_prunes_and_says_so(tiny_space):
    ev = _evaluator(epochs=3, asha={"grace_period": 1, "reduction_factor": 2},
                    dataset={**DIGITS, "max_samples": 300})
    rng = np.random.default_rng(4)
    try:
        results = [ev.evaluate(tiny_space.sample(rng), tiny_space, seed=i) for i in range(4)]
    finally:
        ev.close()
    pruned = [r.recorded["pruned"] for r in results]
    assert not pruned[0] and any(pruned)
    for r in results:
        assert (r.recorded["epochs_run"] < 3) == r.recorded["pruned"]
        assert r.metrics["val_acc"] == r.recorded["val_curve"][-1]


@pytest.mark.ray
@pytest.mark.slow
def test_asha_state_is_shared_by_ray_workers(ray_session):
    ray = ray_session
    gate = AshaGate("test-ray", max_t=4, grace_period=1, reduction_factor=2)

    @ray.remote(num_cpus=0)
    def report(g, trial, value):
        return g.report(trial, 1, value)

    try:
        assert ray.get(report.remote(gate, "a", 90.0))
        assert not ray.get(report.remote(gate, "b", 10.0))  # another process, same rungs
        assert gate.summary()["trials"] == 2
    finally:
        gate.close()
    with pytest.raises(ValueError):
        ray.get_actor(gate.actor_name, namespace="lightsearch")


def test_train_options_validate_in_the_job_spec():
    from search.spec import SpecError, parse_spec

    spec = parse_spec({"space": {"name": "mnasnet", "options": tiny_space_options()},
                       "evaluator": {"name": "train", "options": {"dataset": DIGITS}}})
    assert spec.evaluator.options["dataset"]["source"] == "digits"
    with pytest.raises(SpecError, match="evaluator: .*lr"):
        parse_spec({"evaluator": {"name": "train", "options": {"lr": -1}}})
