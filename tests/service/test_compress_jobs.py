"""Compression jobs through the service (SQLite and PostgreSQL): submitted over REST, run by
a worker, their best model exported by the shared finalize step and downloaded; every
compression agent runnable by name."""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pytest

from tests.service.conftest import auth, wait_for

API = "/api/v1"
MODEL = {"reference": "resnet_small", "dataset": "digits", "limit": 300, "epochs": 3,
         "width": 0.5, "seed": 0}


@pytest.fixture(autouse=True)
def _cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reference training is cached on disk: one folder for the whole module's jobs."""
    root = tmp_path_factory.getbasetemp() / "compress-cache"
    root.mkdir(exist_ok=True)
    monkeypatch.setenv("LIGHTSEARCH_CACHE", str(root))


def _compress_job(**over) -> dict:
    spec = {"name": "svc-compress", "kind": "compress", "model": MODEL,
            "target": {"metric": "flops", "ratio": 0.5},
            "space": {"name": "compression", "options": {"controls": ["prune", "bits"],
                                                          "bit_choices": [8]}},
            "agent": {"name": "uniform"},
            "evaluator": {"name": "compress", "options": {"measure_latency": False}},
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": 1}, "executor": {"name": "local"},
            "export": {"best": True, "measure_latency": False}, "seed": 0}
    spec.update(over)
    return spec


def _run(client, token, start_worker, spec) -> dict:
    r = client.post(f"{API}/jobs", json=spec, headers=auth(token))
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    start_worker()

    def finished():
        job = client.get(f"{API}/jobs/{job_id}", headers=auth(token)).json()
        return job if job["status"] in ("succeeded", "failed", "cancelled", "exhausted") \
            else None

    return wait_for(finished, 240, 0.1)


@pytest.mark.slow
def test_compress_job_ships_its_best_model_end_to_end(client, tokens, start_worker) -> None:
    tok = tokens["alice"]
    job = _run(client, tok, start_worker, _compress_job())
    assert job["status"] == "succeeded", job["reason"]
    assert "export failed" not in (job["reason"] or "")
    best = job["best"]["trial_id"]
    files = {a["path"] for a in client.get(f"{API}/jobs/{job['id']}/artifacts",
                                           headers=auth(tok)).json()["data"]}
    prefix = f"models/trial{best}/trial{best}"
    assert {f"{prefix}.onnx", f"{prefix}.lsz", f"{prefix}_int8.onnx", f"{prefix}_card.json",
            "results.json"} <= files

    def get(path: str) -> bytes:
        r = client.get(f"{API}/jobs/{job['id']}/artifacts/{path}", headers=auth(tok))
        assert r.status_code == 200, path
        return r.content

    card = json.loads(get(f"{prefix}_card.json"))
    assert card["compression"]["shipped_state"] == "before_finetune"  # no fine-tuning asked
    assert card["compression"]["meets_target"]
    results = json.loads(get("results.json"))
    assert results["best"]["trial_id"] == best and results["spec"]["kind"] == "compress"

    # The downloaded ONNX computes what the downloaded packed model computes (PyTorch),
    # and the packed file holds no pickle.
    import onnxruntime as ort
    import torch

    from search.compression.data import load_dataset
    from search.compression.export import load_artifact

    lsz = get(f"{prefix}.lsz")
    with zipfile.ZipFile(io.BytesIO(lsz)) as zf:
        assert sorted(zf.namelist()) == ["data.bin", "manifest.json"]
    model, _ = load_artifact(io.BytesIO(lsz))
    x = load_dataset("digits", seed=0, limit=300).val.x[:32]
    with torch.no_grad():
        want = model(x).numpy()
    session = ort.InferenceSession(get(f"{prefix}.onnx"), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: x.numpy()})[0]
    assert np.allclose(got, want, atol=1e-4, rtol=1e-3)
    int8 = get(f"{prefix}_int8.onnx")
    assert len(int8) < 0.6 * len(get(f"{prefix}.onnx"))
    q = ort.InferenceSession(int8, providers=["CPUExecutionProvider"])
    assert q.run(None, {q.get_inputs()[0].name: x.numpy()})[0].shape == (32, 10)


@pytest.mark.slow
@pytest.mark.parametrize("agent,options", [
    ("uniform", {}), ("uniform_fill", {}), ("shallow_first", {}), ("deep_first", {}),
    ("netadapt", {"initial_reduction": 0.3})])
def test_every_compression_agent_runs_by_name(client, tokens, start_worker, agent,
                                              options) -> None:
    tok = tokens["alice"]
    # A fixed policy is one architecture: a budget of one evaluation is all it can reach
    # (more ends the job 'exhausted'); NetAdapt proposes a new candidate each step.
    budget = 3 if agent == "netadapt" else 1
    spec = _compress_job(name=f"svc-{agent}", agent={"name": agent, "options": options},
                         space={"name": "compression", "options": {"controls": ["prune"]}},
                         budget={"evaluations": budget}, export={"best": False})
    job = _run(client, tok, start_worker, spec)
    assert job["status"] == "succeeded", job["reason"]
    trials = client.get(f"{API}/jobs/{job['id']}/trials", headers=auth(tok)).json()["data"]
    done = [t for t in trials if t["state"] == "complete"]
    assert done and all(t["metrics"]["flops"] > 0 for t in done)
    if agent != "netadapt":  # a fixed policy that just meets the target
        assert all(t["metrics"]["flops_ratio"] <= 0.5 + 1e-9 for t in done)
    else:  # one layer pruned per candidate, each saving the step's reduction
        assert {t["info"]["layer"] for t in done if "layer" in t["info"]}


def test_compression_agents_are_refused_at_submit_without_a_target(client, tokens) -> None:
    r = client.post(f"{API}/jobs", json=_compress_job(target=None), headers=auth(
        tokens["alice"]))
    assert r.status_code == 422
    assert "agent.name" in r.text and "target" in r.text


def test_depth_and_flops_block_options_are_checked_at_submit(client, tokens) -> None:
    """The ``depth`` control and ``flops_block`` are space options: a wrong value is a 422
    naming the option and the valid values, before the job is queued."""
    tok = tokens["alice"]
    opts = {"controls": ["prune", "depth"], "flops_block": "fast"}
    r = client.post(f"{API}/jobs", json=_compress_job(
        space={"name": "compression", "options": opts}), headers=auth(tok))
    assert r.status_code == 422
    assert "flops_block" in r.text and "'auto'" in r.text
    r = client.post(f"{API}/jobs", json=_compress_job(
        space={"name": "compression", "options": {"controls": ["prune", "blocks"]}}),
        headers=auth(tok))
    assert r.status_code == 422
    assert "controls.1" in r.text and "'depth'" in r.text
