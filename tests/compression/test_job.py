"""Compression jobs through the job spec, the search loop and the compress evaluator."""

from __future__ import annotations

import pytest

from agents.base import TrialState
from search.compression.export import load_artifact
from search.compression.factory import make_space
from search.evaluators.compress import CompressionEvaluator
from search.loop import run_search
from search.sinks import MemorySink
from search.spec import SpecError, parse_spec

MODEL = {"reference": "resnet_small", "dataset": "digits", "limit": 600, "epochs": 6,
         "width": 0.5, "seed": 0}


def test_compress_spec_fills_space_and_evaluator() -> None:
    spec = parse_spec({"kind": "compress", "model": MODEL,
                       "target": {"metric": "flops", "ratio": 0.25}})
    assert spec.space.name == "compression" and spec.evaluator.name == "compress"
    assert spec.agent.name == "amc"
    assert spec.space.options["target"] == {"metric": "flops", "ratio": 0.25}
    assert spec.evaluator.options["model"] == MODEL
    with pytest.raises(SpecError, match="needs 'model'"):
        parse_spec({"kind": "compress"})
    with pytest.raises(SpecError, match="only for jobs of kind 'compress'"):
        parse_spec({"target": {"metric": "flops", "ratio": 0.5}})
    with pytest.raises(SpecError) as err:
        parse_spec({"kind": "compress", "model": {**MODEL, "dataset": "cifar"}})
    assert "dataset" in str(err.value)
    with pytest.raises(SpecError, match="controls"):
        parse_spec({"kind": "compress", "model": MODEL,
                    "space": {"name": "compression", "options": {"controls": ["bits", "share"]}}})


def test_evaluator_scores_fine_tunes_and_exports(cache, tmp_path) -> None:
    space = make_space(model=MODEL, controls=["prune", "bits"],
                       target={"metric": "flops", "ratio": 0.3})
    evaluator = CompressionEvaluator(model=MODEL, finetune_epochs=1, distill_weight=0.5,
                                     export_dir=str(tmp_path))
    from agents.compression_baselines import uniform_policy

    arch = uniform_policy(space)
    ev = evaluator.evaluate(arch, space, seed=3)
    m = ev.metrics
    assert 0 <= m["val_acc"] <= 100 and m["error"] == pytest.approx(1 - m["val_acc"] / 100)
    assert m["flops_ratio"] <= 0.3 + 1e-9
    assert m["latency_ms"] > 0 and m["size_bytes"] > 0
    assert "test_acc_after_finetune" in ev.recorded and "test_acc" not in m
    assert ev.recorded["meets_target"] is True
    assert [r["layer"] for r in ev.recorded["policy"]][0] == "stem.0"
    assert ev.artifacts["policy_plot"].endswith(".png")
    model, manifest = load_artifact(ev.artifacts["model"])
    assert manifest["meta"]["policy"] == space.validate(arch)
    with pytest.raises(ValueError, match="model"):
        CompressionEvaluator()


def test_a_compression_job_runs_through_the_search_loop(cache) -> None:
    spec = parse_spec({
        "kind": "compress", "name": "amc-digits", "model": MODEL,
        "target": {"metric": "flops", "ratio": 0.3},
        "agent": {"name": "amc", "options": {"warmup": 2, "hidden1": 16, "hidden2": 16,
                                             "batch_size": 8}},
        "evaluator": {"name": "compress", "options": {"measure_latency": False}},
        "objectives": [{"metric": "val_acc", "direction": "max"}],
        "budget": {"evaluations": 4}, "seed": 1,
    })
    sink = MemorySink()
    summary = run_search(spec, sink)
    assert summary.status == "succeeded", summary.reason
    done = [t for t in sink.trials if t.state is TrialState.COMPLETE]
    assert len(done) >= 3
    for t in done:
        assert t.metrics["flops_ratio"] <= 0.3 + 1e-9  # AMC's constrained mode
        assert t.reward == pytest.approx(t.metrics["val_acc"])
        assert "test_acc_before_finetune" in t.recorded
    assert sink.last_checkpoint is not None and "agent" in sink.last_checkpoint


def test_a_model_of_a_lightsearch_space_is_compressible_or_refused_clearly(cache) -> None:
    """Architectures of the MnasNet space: inverted residuals and SE are priced exactly;
    concatenating blocks (fire) are refused with a message, never mispriced."""
    import numpy as np

    from search.compression.apply import apply_policy
    from search.compression.factory import resolve_model
    from search.compression.measure import count_flops
    from spaces.registry import SPACES

    opts = {"ops": ["sep", "mbconv3", "mbconv6"]}
    arch = SPACES.create("mnasnet", options=opts).sample(np.random.default_rng(1))
    ref = {"space": "mnasnet", "arch": arch, "space_options": opts, "dataset": "digits",
           "limit": 100}
    space = make_space(model=ref, target={"metric": "flops", "ratio": 0.5})
    model, data, _ = resolve_model(ref)
    policy = space.sample(np.random.default_rng(2))
    assert count_flops(apply_policy(model, space, policy).model, (1, 8, 8)) == \
        space.cost(policy, "flops")
    fire = {"ops": ["fire"]}
    arch = SPACES.create("mnasnet", options=fire).sample(np.random.default_rng(0))
    with pytest.raises(ValueError, match="not priced exactly"):
        make_space(model={**ref, "arch": arch, "space_options": fire})


def test_an_artifact_of_an_artifact_names_no_file(cache, tmp_path) -> None:
    """A job that starts from an earlier artifact writes a manifest naming no file (its base
    model and both prunings' channel counts), and loading refuses a manifest that names one:
    an uploaded .lsz is read outside the service's path policy."""
    import json
    import zipfile

    from agents.compression_baselines import uniform_policy

    def compress(model: dict, ratio: float, out: str) -> str:
        space = make_space(model=model, controls=["prune"],
                           target={"metric": "flops", "ratio": ratio})
        ev = CompressionEvaluator(model=model, finetune_epochs=0, export_dir=out,
                                  measure_latency=False)
        return ev.evaluate(uniform_policy(space), space, seed=0).artifacts["model"]

    first = compress(MODEL, 0.5, str(tmp_path / "a"))
    second = compress({"artifact": first, "dataset": "digits", "limit": 600},
                      0.5, str(tmp_path / "b"))
    model, manifest = load_artifact(second)
    assert manifest["meta"]["model"] == {**load_artifact(first)[1]["meta"]["model"]}
    assert manifest["meta"]["model"]["artifact"] is None
    assert manifest["meta"]["model"]["weights"] is None
    parent = load_artifact(first)[0]
    assert sum(p.numel() for p in model.parameters()) < sum(
        p.numel() for p in parent.parameters())  # pruned twice, rebuilt from the base

    outside = tmp_path / "outside.lsz"  # never opened: the check comes first
    with zipfile.ZipFile(second) as zf:
        crafted = json.loads(zf.read("manifest.json"))
        data = zf.read("data.bin")
    crafted["meta"]["model"] = {"artifact": str(outside), "dataset": "digits"}
    evil = tmp_path / "evil.lsz"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("manifest.json", json.dumps(crafted))
        zf.writestr("data.bin", data)
    with pytest.raises(ValueError, match=r"names files \(model.artifact\)"):
        load_artifact(evil)
