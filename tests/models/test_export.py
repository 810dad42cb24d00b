"""Artifacts: weights, TorchScript and ONNX that load and match PyTorch, a model card with its
provenance, exported-file latency; second-stage retraining with distillation."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from agents.base import TrialState
from search.evaluators.retrain import rank_trials, retrain_top_k
from search.export import ExportMismatch, _check_close, export_model, export_trial
from search.sinks import TrialRecord
from search.spec import parse_spec
from tests.models.conftest import tiny_space_options

DIGITS = {"source": "digits", "max_samples": 250}


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_export_files_load_and_match(tiny_space, tmp_path):
    arch = tiny_space.sample(np.random.default_rng(0))
    torch.manual_seed(0)
    model = tiny_space.build_model(arch, (1, 8, 8), 10).eval()
    result = export_model(model, tmp_path, input_shape=(1, 8, 8), arch=arch, space=tiny_space,
                          metrics={"val_acc": 91.0, "torch_latency_ms": 0.5},
                          recorded={"test_acc": 90.0, "curve": [1, 2], "obj": object()},
                          dataset={"source": "digits", "normalization": {"mean": [0.3]}},
                          seed=11, name="best")
    files = result.files
    x = torch.randn(3, 1, 8, 8)
    with torch.no_grad():
        want = model(x).numpy()
    weights = tiny_space.build_model(arch, (1, 8, 8), 10).eval()
    weights.load_state_dict(torch.load(files["weights"], weights_only=True))
    with torch.no_grad():
        assert np.allclose(weights(x).numpy(), want, atol=1e-6)
        assert np.allclose(torch.jit.load(files["torchscript"])(x).numpy(), want, atol=1e-5)
    session = ort.InferenceSession(files["onnx"], providers=["CPUExecutionProvider"])
    got = session.run(None, {"input": x.numpy()})[0]  # dynamic batch: 3 though exported at 1
    assert np.allclose(got, want, atol=1e-4, rtol=1e-3)

    card = json.loads(open(files["card_json"]).read())
    assert card == json.loads(json.dumps(result.card, default=str))
    assert card["architecture"] == arch and card["space"]["name"] == "mnasnet"
    assert card["architecture_str"] == tiny_space.describe(arch)
    assert card["metrics"]["val_acc"] == 91.0 and card["recorded"]["test_acc"] == 90.0
    assert "obj" not in card["recorded"] and card["seed"] == 11
    assert card["input"]["normalization"] == {"mean": [0.3]}
    assert card["latency"]["exported_torchscript_ms"] > 0
    assert card["latency"]["exported_onnxruntime_ms"] > 0
    assert card["latency"]["searched"] == {"torch_latency_ms": 0.5}
    assert card["export_check"]["onnxruntime_max_abs_diff"] < 1e-4
    assert {"torch", "onnxruntime", "onnx"} <= set(card["versions"])
    assert "git_commit" in card["code"]
    assert len(card["files"]["onnx"]["sha256"]) == 64
    md = open(files["card_md"]).read()
    assert "# Model card: best" in md and "val_acc" in md and "ONNX Runtime" in md


def test_mismatch_is_an_error():
    with pytest.raises(ExportMismatch, match="ONNX Runtime output differs"):
        _check_close("ONNX Runtime", np.ones(3) + 0.1, np.ones(3), 1e-4, 1e-3)


def _spec(**evaluator):
    return parse_spec({
        "space": {"name": "mnasnet", "options": tiny_space_options()},
        "evaluator": {"name": "train", "options": {"dataset": DIGITS, "epochs": 1,
                                                   "batch_size": 32, "lr": 0.1, **evaluator}},
        "seed": 3,
    })


def _trials(spec, n=3, seed=0):
    from search.evaluators.train import TrainingEvaluator
    from search.loop import evaluation_seed
    from spaces.registry import SPACES

    space = SPACES.create("mnasnet", options=spec.space.options)
    ev = TrainingEvaluator(**spec.evaluator.options)
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        arch = space.sample(rng)
        key = space.key(arch)
        e = ev.evaluate(arch, space, seed=evaluation_seed(spec.seed, key))
        out.append(TrialRecord(i, arch, key, TrialState.COMPLETE, reward=float(i),
                               metrics=e.metrics, recorded=e.recorded))
    return out


def test_export_trial_reproduces_the_searched_model(tmp_path):
    spec = _spec()
    trial = _trials(spec, n=1)[0]
    result = export_trial(spec, trial, tmp_path, measure_latency=False)
    extra = result.card["extra"]
    assert extra["reproduced_val_acc"] == extra["searched_val_acc"] == trial.metrics["val_acc"]
    assert result.card["seed"] is not None and result.card["dataset"]["source"] == "digits"


def test_rank_trials_by_reward_and_metric():
    spec = _spec()
    recs = [TrialRecord(i, {}, f"k{i % 3}", TrialState.COMPLETE, reward=r, metrics={"m": -r})
            for i, r in enumerate([1.0, 3.0, 2.0, 5.0])]
    recs.append(TrialRecord(9, {}, "bad", TrialState.FAILED))
    assert [t.trial_id for t in rank_trials(spec, recs)] == [1, 2, 0]  # k0 repeat dropped
    assert [t.trial_id for t in rank_trials(spec, recs, "m")] == [0, 2, 1]


def test_retrain_top_k_with_distillation_and_export(tmp_path):
    spec = _spec()
    trials = _trials(spec, n=3)
    results = retrain_top_k(spec, trials, {"top_k": 2, "epochs": 2,
                                           "distill": {"teacher": "best", "alpha": 0.5}},
                            out_dir=tmp_path)
    assert [r.trial_id for r in results] == [2, 1]  # highest reward first
    assert results[0].teacher is None and results[1].teacher == "trial 2"
    for r in results:
        assert r.epochs == 2 and len(r.val_curve) == 2 and 0 <= r.test_acc <= 100
        assert json.loads(open(r.files["card_json"]).read())["recorded"]["retrain_epochs"] == 2
        assert "model" not in r.to_dict()
    with pytest.raises(ValueError, match="no completed trial"):
        retrain_top_k(spec, [], {"top_k": 1})


def test_retrain_needs_the_train_evaluator():
    spec = parse_spec({})
    with pytest.raises(ValueError, match="'train' evaluator"):
        retrain_top_k(spec, [], {"top_k": 1})


def test_cli_exports_the_chosen_trials_of_a_results_file(tmp_path, capsys):
    from search.cli import main
    from search.results import build_results

    spec = _spec()
    trials = _trials(spec, n=2)
    results = tmp_path / "results.json"
    results.write_text(json.dumps(build_results(spec, trials, status="succeeded")))
    assert main(["export", str(results), "--out", str(tmp_path / "out"), "--no-latency"]) == 0
    best = tmp_path / "out" / "trial1"  # the higher reward
    card = json.loads((best / next(p.name for p in best.iterdir()
                                   if p.name.endswith(".json"))).read_text())
    assert card["extra"]["reproduced_val_acc"] == trials[1].metrics["val_acc"]
    assert any(p.suffix == ".onnx" for p in best.iterdir())
    assert not (tmp_path / "out" / "trial0").exists()

    assert main(["export", str(results), "--trial", "7", "--out", str(tmp_path / "x")]) == 2
    assert "no such trial" in capsys.readouterr().err


def test_search_cli_exports_the_best_model_of_a_train_job(tmp_path, capsys):
    from search.cli import main

    job = tmp_path / "job.json"
    job.write_text(json.dumps({
        "name": "tiny", "space": {"name": "mnasnet", "options": tiny_space_options()},
        "evaluator": {"name": "train", "options": {"dataset": DIGITS, "epochs": 1,
                                                   "batch_size": 32, "lr": 0.1}},
        "budget": {"evaluations": 2}, "seed": 1,
        "export": {"best": True, "measure_latency": False}}))
    out = tmp_path / "res.json"
    assert main(["search", str(job), "--out", str(out), "--quiet"]) == 0
    best = json.loads(out.read_text())["best"]["trial_id"]
    folder = tmp_path / "res-models" / f"trial{best}"
    assert any(p.suffix == ".onnx" for p in folder.iterdir())
    assert [p.name for p in (tmp_path / "res-models").iterdir()] == [f"trial{best}"]
