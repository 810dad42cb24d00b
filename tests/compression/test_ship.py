"""Compression results that ship: sizes against float32, channel multiples, the better of
before/after fine-tuning, and the files ``lightsearch search``/``export`` write for a
compress job (ONNX equal to PyTorch, a packed artifact without pickle, an int8 ONNX that is
smaller and runs)."""

from __future__ import annotations

import json
import re
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from search.compression.apply import apply_policy
from search.compression.export import load_artifact
from search.compression.factory import make_space
from search.compression.measure import count_flops
from search.compression.options import CompressEvaluatorOptions
from search.compression.pipeline import compress_trial
from search.profilers.measured import ort_session
from tests.compression.conftest import REFS, space_of

MODEL = REFS["resnet"]


def test_size_targets_are_fractions_of_the_float32_model(resnet) -> None:
    """With 8 bits the least precise allowed format, the budget is still a fraction of the
    float32 model (it was taken against 8 bits: 4x too generous)."""
    space = space_of(resnet, controls=["bits"], bit_choices=[8, 4],
                     target={"metric": "size", "ratio": 0.2})
    float32 = space.cost({}, "size")
    assert space.uncompressed("size") == float32
    assert space.budget == pytest.approx(0.2 * float32)
    all8 = {n: 8 for n in space.identity()}
    assert space.cost(all8, "size") / float32 > 0.25  # 8 bits + scales: over a quarter
    assert not space.fits(all8)
    least = space.cost(space.most_compressed(), "size") / float32
    with pytest.raises(ValueError, match="out of reach") as err:
        space_of(resnet, controls=["bits"], bit_choices=[8, 4],
                 target={"metric": "size", "ratio": least / 2})
    reported = float(re.search(r"keeps ([0-9.]+) of the uncompressed \(float32\)",
                               str(err.value)).group(1))
    assert reported == pytest.approx(least, abs=1e-4)


def test_channel_multiple_rounds_kept_channels_and_stays_exactly_priced(resnet) -> None:
    space = space_of(resnet, controls=["prune"], channel_multiple=4)
    rng = np.random.default_rng(0)
    for _ in range(4):
        arch = space.sample(rng)
        kept = space.kept_channels(arch)
        for g in space.table.groups:
            assert kept[g.index] % 4 == 0 or kept[g.index] == g.channels
            assert kept[g.index] >= min(4, g.channels)
        assert count_flops(apply_policy(resnet, space, arch).model, (1, 8, 8)) == \
            space.cost(arch, "flops")
    # Through the job's options too (the API validates them torch-free).
    job_space = make_space(model=MODEL, channel_multiple=8,
                           target={"metric": "flops", "ratio": 0.5})
    assert job_space.channel_multiple == 8
    assert all(v % 8 == 0 for v in job_space.kept_channels(job_space.sample(rng)).values())


def test_the_better_of_before_and_after_fine_tuning_is_kept(resnet) -> None:
    space = space_of(resnet, controls=["prune"], target={"metric": "flops", "ratio": 0.5})
    from agents.compression_baselines import uniform_policy

    arch = uniform_policy(space)
    # A learning rate that wrecks the model: the state before fine-tuning is shipped.
    harmful = CompressEvaluatorOptions(model=MODEL, finetune_epochs=0.5, lr=10.0)
    t = compress_trial(harmful, space, arch, seed=0)
    r = t.recorded
    assert r["val_acc_after_finetune"] < r["val_acc_before_finetune"]
    assert r["shipped_state"] == "before_finetune"
    from search.compression.finetune import evaluate_accuracy

    assert 100 * evaluate_accuracy(t.model, t.data.val) == pytest.approx(
        r["val_acc_before_finetune"])
    assert r["val_acc_shipped"] == r["val_acc_before_finetune"]
    # A sane one: whichever scores better on validation is the one kept.
    sane = CompressEvaluatorOptions(model=MODEL, finetune_epochs=1, lr=0.01, signal="shipped")
    t = compress_trial(sane, space, arch, seed=0)
    r = t.recorded
    best = max(r["val_acc_before_finetune"], r["val_acc_after_finetune"])
    assert r["val_acc_shipped"] == best and 100 * t.signal == best
    assert 100 * evaluate_accuracy(t.model, t.data.val) == pytest.approx(best)


def _ort(path, x: np.ndarray) -> np.ndarray:
    s = ort_session(str(path), 1)
    return s.run(None, {s.get_inputs()[0].name: x})[0]


@pytest.mark.slow
def test_lightsearch_search_and_export_ship_a_compress_job(cache, tmp_path, digits) -> None:
    from search.cli import main

    job = {"kind": "compress", "name": "ship", "model": MODEL,
           "target": {"metric": "flops", "ratio": 0.5},
           "space": {"name": "compression", "options": {
               "controls": ["prune", "bits"], "bit_choices": [8], "channel_multiple": 4}},
           "agent": {"name": "uniform"},
           "evaluator": {"name": "compress", "options": {"finetune_epochs": 0.5,
                                                         "measure_latency": False}},
           "budget": {"evaluations": 1}, "export": {"best": True, "measure_latency": True},
           "seed": 0}
    path = tmp_path / "job.json"
    path.write_text(json.dumps(job))
    out = tmp_path / "res.json"
    assert main(["search", str(path), "--out", str(out), "--quiet"]) == 0
    folder = tmp_path / "res-models" / "trial0"
    names = {p.name for p in folder.iterdir()}
    assert {"trial0.onnx", "trial0.ts", "trial0.pt", "trial0.lsz", "trial0_int8.onnx",
            "trial0_card.json", "trial0_card.md"} <= names
    card = json.loads((folder / "trial0_card.json").read_text())
    c = card["compression"]
    assert c["reference_model"]["reference"] == "resnet_small"
    assert c["target"] == {"metric": "flops", "ratio": 0.5, "profiler": "cpu"}
    assert c["meets_target"] and c["flops"]["ratio"] <= 0.5
    assert c["shipped_state"] in ("before_finetune", "after_finetune")
    assert {"val_acc_before_finetune", "val_acc_after_finetune"} <= set(c["accuracy"])
    assert [r["layer"] for r in c["policy"]][0] == "stem.0"
    assert all(r["bits"] == 8 for r in c["policy"])
    size = c["size"]
    assert size["float32_weight_bytes"] > size["policy_weight_bytes"]
    assert size["onnx_int8_bytes"] < 0.6 * size["onnx_bytes"]  # smaller for real
    assert c["latency"]["onnx_ort_ms"] > 0 and c["latency"]["reference_onnx_ort_ms"] > 0
    assert "Compression" in (folder / "trial0_card.md").read_text()

    # The packed artifact: JSON + raw bytes, no pickle; it loads into the ONNX's function.
    with zipfile.ZipFile(folder / "trial0.lsz") as zf:
        assert sorted(zf.namelist()) == ["data.bin", "manifest.json"]
    model, _ = load_artifact(folder / "trial0.lsz")
    x = digits.val.x[:64].numpy()
    with torch.no_grad():
        want = model(torch.from_numpy(x)).numpy()
    assert np.allclose(_ort(folder / "trial0.onnx", x), want, atol=1e-4, rtol=1e-3)
    # The int8 model runs and agrees with the float model on most digits.
    agree = (_ort(folder / "trial0_int8.onnx", x).argmax(1) == want.argmax(1)).mean()
    assert agree >= 0.9
    assert abs(c["accuracy"]["onnx_int8_test_acc"] - c["accuracy"]["onnx_test_acc"]) <= 5

    # lightsearch export on the results file rebuilds the same model.
    again = tmp_path / "again"
    assert main(["export", str(out), "--out", str(again), "--no-latency"]) == 0
    assert np.allclose(_ort(again / "trial0" / "trial0.onnx", x), want, atol=1e-4, rtol=1e-3)
    assert "latency" not in json.loads(
        (again / "trial0" / "trial0_card.json").read_text())["compression"]


def test_export_refuses_a_job_whose_evaluator_makes_no_models(tmp_path, capsys) -> None:
    """Table look-ups have no model: ``export`` says so (exit 2) instead of guessing."""
    from agents.base import TrialState
    from search.cli import main
    from search.results import build_results
    from search.sinks import TrialRecord
    from search.spec import parse_spec

    spec = parse_spec({"name": "tab"})
    from tests.test_finalize import NB201_ARCH

    trial = TrialRecord(0, NB201_ARCH, "k", TrialState.COMPLETE, reward=1.0,
                        metrics={"val_acc": 1.0})
    results = tmp_path / "r.json"
    results.write_text(json.dumps(build_results(spec, [trial], status="succeeded")))
    assert main(["export", str(results), "--out", str(tmp_path / "m")]) == 2
    assert "evaluator makes models" in capsys.readouterr().err
    assert not (tmp_path / "m").exists()


def test_an_artifact_of_an_earlier_job_is_compressed_again_without_pickle(cache, tmp_path,
                                                                         resnet) -> None:
    """``model.artifact`` takes a ``.lsz`` (rebuilt from its JSON manifest); a pickled torch
    module is refused with the field named."""
    from search.compression.factory import resolve_model
    from search.evaluators.compress import CompressionEvaluator

    space = make_space(model=MODEL, target={"metric": "flops", "ratio": 0.5})
    from agents.compression_baselines import uniform_policy

    ev = CompressionEvaluator(model=MODEL, export_dir=str(tmp_path), measure_latency=False)
    lsz = ev.evaluate(uniform_policy(space), space, seed=0).artifacts["model"]
    again = {"artifact": lsz, "dataset": "digits", "limit": 600, "seed": 0}
    model, _, info = resolve_model(again)
    assert info["val_acc"] * 100 == pytest.approx(ev.evaluate(
        uniform_policy(space), space, seed=0).metrics["val_acc"])
    second = make_space(model=again, target={"metric": "flops", "ratio": 0.5})
    assert second.uncompressed("flops") == pytest.approx(space.cost(uniform_policy(space),
                                                                    "flops"))
    pickled = tmp_path / "whole.pt"
    torch.save(resnet, pickled)
    with pytest.raises(ValueError, match="model.artifact"):
        resolve_model({**again, "artifact": str(pickled)})


def test_onnx_runtime_latency_of_the_exported_model_is_a_metric(cache) -> None:
    """``latency_backends: ["onnxruntime"]`` gives ``latency_ort_ms``, usable as an objective
    or constraint; without ``torch`` there is no eager figure."""
    from agents.compression_baselines import uniform_policy
    from search.evaluators.compress import CompressionEvaluator

    space = make_space(model=MODEL, target={"metric": "flops", "ratio": 0.5},
                       channel_multiple=4)
    ev = CompressionEvaluator(model=MODEL, latency_backends=["onnxruntime"])
    m = ev.evaluate(uniform_policy(space), space, seed=0).metrics
    assert m["latency_ort_ms"] > 0 and "latency_ms" not in m
    assert "latency_ort_ms" in ev.signal_metrics()


def _fused_ops(data: bytes) -> dict[str, int]:
    """Operator counts of the graph ONNX Runtime runs (after its fusions)."""
    import collections

    import onnx
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        so.optimized_model_filepath = f"{tmp}/opt.onnx"
        ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
        return dict(collections.Counter(n.op_type for n in onnx.load(so.optimized_model_filepath)
                                        .graph.node))


def test_int8_onnx_stores_no_optional_tensors_and_computes_the_same(cache, tmp_path,
                                                                    mobilenet) -> None:
    """The slimmed int8 file drops the bias scales (derived), zero zero-points and the dead
    Clip bounds, is smaller, computes exactly what the quantizer's file computes, keeps
    ONNX Runtime's integer kernels, and scores like the 8-bit torch model it came from."""
    import onnx

    from search.compression.export import _materialized
    from search.compression.finetune import evaluate_accuracy
    from search.compression.ship import onnx_accuracy, quantize_int8, slim_qdq
    from search.profilers.measured import onnx_bytes

    model_ref = REFS["mobilenet"]
    space = make_space(model=model_ref, controls=["bits"], bit_choices=[8])
    opts = CompressEvaluatorOptions(model=model_ref, finetune_epochs=0)
    ct = compress_trial(opts, space, space.validate(space.identity()), seed=0)
    src = tmp_path / "float.onnx"
    src.write_bytes(onnx_bytes(_materialized(ct.model).eval(), torch.zeros(1, 1, 8, 8),
                               dynamic_batch=True))
    plain, slim = tmp_path / "plain.onnx", tmp_path / "slim.onnx"
    quantize_int8(src, plain, ct.data.train, slim=False)
    quantize_int8(src, slim, ct.data.train)

    graph = onnx.load(str(slim)).graph
    init = {t.name: t for t in graph.initializer}
    convs = [n for n in graph.node if n.op_type == "Conv"]
    gemms = [n for n in graph.node if n.op_type == "Gemm"]
    assert len(convs) == 22 and len(gemms) == 1
    producer = {o: n for n in graph.node for o in n.output}
    for n in convs + gemms:  # the bias's scale is computed, not stored
        bias_dq = producer[n.input[2]]
        assert bias_dq.op_type == "DequantizeLinear"
        assert producer[bias_dq.input[1]].op_type == "Mul"
    for n in convs:  # no stored zero points for the weights and bias
        assert all(len(producer[x].input) == 2 for x in n.input[1:])
    assert not [n for n in graph.node if n.op_type == "Constant"]  # the Clip bounds
    stored = {(t.data_type, tuple(t.dims), onnx.numpy_helper.to_array(t).tobytes())
              for t in init.values()}
    assert len(stored) == len(init)  # each scale and zero point once
    # Slimming a slimmed model finds nothing left to cut.
    again = onnx.load(str(slim))
    assert slim_qdq(again) == {"bias_scales": 0, "zero_points": 0, "dead_nodes": 0,
                               "duplicates": 0}

    assert slim.stat().st_size < 0.85 * plain.stat().st_size
    x = ct.data.val.x.numpy()
    assert np.array_equal(_ort(slim, x), _ort(plain, x))
    fused = _fused_ops(slim.read_bytes())
    assert fused.get("QLinearConv") == 22 and fused.get("QGemm") == 1, fused
    assert _fused_ops(plain.read_bytes()).get("QLinearConv") == 22

    # Accuracy: the int8 file against the 8-bit torch model (weights alike; the file also
    # quantizes activations to 8 bits).
    torch_acc = 100 * evaluate_accuracy(ct.model, ct.data.val)
    int8_acc = onnx_accuracy(ort_session(str(slim), 1), ct.data.val)
    assert abs(int8_acc - torch_acc) <= 2.0, (int8_acc, torch_acc)
    with torch.no_grad():
        want = ct.model.eval()(torch.from_numpy(x)).argmax(1).numpy()
    assert (_ort(slim, x).argmax(1) == want).mean() >= 0.95


def test_onnx_runtime_pads_channels_to_its_nchwc_block(resnet) -> None:
    """``padded_kept`` predicts the output channels ONNX Runtime's optimized graph really
    computes for a pruned model (counts off the block run as the next multiple), with the
    block ``ort_nchwc_block`` reads off this machine's ONNX Runtime."""
    import copy

    import onnx
    import onnxruntime as ort

    from search.compression.graph import analyze
    from search.compression.latency import ort_nchwc_block, padded_kept
    from search.compression.prune import prune_channels
    from search.profilers.measured import onnx_bytes

    assert padded_kept({0: 8, 1: 24, 2: 40, 3: 32}, 16) == {0: 16, 1: 32, 2: 48, 3: 32}
    assert padded_kept({0: 3}, None) == {0: 3}
    block = ort_nchwc_block()
    assert block is None or block in (4, 8, 16, 32)
    table = analyze(resnet, (1, 8, 8)).table
    kept = {g.index: g.channels // 2 - 1 for g in table.groups}  # 3, 7, 15: off any block
    pruned = copy.deepcopy(resnet)
    prune_channels(pruned, table, kept)
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    opts.optimized_model_filepath = str(Path(tempfile.mkdtemp()) / "opt.onnx")
    ort.InferenceSession(onnx_bytes(pruned.eval(), torch.zeros(1, 1, 8, 8)), opts,
                         providers=["CPUExecutionProvider"])
    graph = onnx.load(opts.optimized_model_filepath).graph
    init = {t.name: t for t in graph.initializer}
    computed = sorted(init[n.input[1]].dims[0] for n in graph.node if n.op_type == "Conv")
    padded = padded_kept(kept, block)
    want = sorted(padded[op.out_group] for op in table.ops if op.kind == "conv")
    assert computed == want
    if block is not None:
        assert computed != sorted(kept[op.out_group] for op in table.ops if op.kind == "conv")


def test_a_latency_target_is_judged_on_the_exported_file_too() -> None:
    """The card says whether an ONNX Runtime latency target holds on the shipped file, not
    only as the latency model priced it; other targets and other runtimes are not judged."""
    from search.compression.ship import compression_markdown, target_on_file

    lat = {"reference_onnx_ort_ms": 0.33, "onnx_ort_ms": 0.19, "onnx_ratio_of_reference": 0.57,
           "protocol": "interleaved"}
    ort_target = {"metric": "latency", "ratio": 0.5, "profiler": "onnxruntime"}
    judged = target_on_file(ort_target, lat)
    assert judged == {"ratio_measured": 0.57, "ratio_target": 0.5, "met": False}
    assert target_on_file({**ort_target, "ratio": 0.6}, lat)["met"]
    assert target_on_file({**ort_target, "profiler": "cpu"}, lat) is None
    assert target_on_file({"metric": "flops", "ratio": 0.5}, lat) is None
    assert target_on_file(ort_target, None) is None
    card = {"reference_model": {}, "reference_accuracy": {"val_acc": 90.0, "test_acc": 89.0},
            "target": ort_target, "meets_target": True, "controls": ["prune"],
            "channel_multiple": 8, "flops": {"compressed": 1.0, "reference": 2.0, "ratio": 0.5},
            "shipped_state": "fine-tuned", "accuracy": {},
            "size": {"float32_weight_bytes": 10, "policy_weight_bytes": 5,
                     "policy_ratio_of_float32": 0.5, "reference_onnx_bytes": 10},
            "latency": lat, "target_on_file": judged, "policy": []}
    assert "On the exported file: 0.570 of the reference's" in compression_markdown(card)
    assert "met: False" in compression_markdown(card)
