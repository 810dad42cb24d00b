"""The trust boundary (issue 12): no file a user names runs code, and every path a spec
names passes one policy. On SQLite and PostgreSQL where the database is involved.

The payload is a real pickle: unpickling it calls ``open(marker, "w")``, which creates the
marker file (``test_payload_is_real`` proves it does). Every test then checks the marker of
its own payload never appears.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.service.conftest import REPO, auth, job_spec, wait_for

API = "/api/v1"


class Payload:
    """Unpickled, it creates ``marker`` (any callable would do; ``open`` needs no shell)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.fixture
def server(tmp_path):
    """Payload files on the server, outside every root the service allows."""
    base = tmp_path / "server"
    base.mkdir()
    marker = tmp_path / "PWNED"
    torch.save(Payload(marker), base / "evil.pt")
    (base / "evil.pkl").write_bytes(pickle.dumps(Payload(marker)))
    sk = io.BytesIO()
    torch.save(Payload(marker), sk)
    with zipfile.ZipFile(base / "evil.lsz", "w") as zf:
        zf.writestr("manifest.json", json.dumps({"format": "lightsearch-compressed/1",
                                                 "input_shape": [1, 8, 8], "tensors": []}))
        zf.writestr("skeleton.pt", sk.getvalue())
        zf.writestr("data.bin", b"")
    cifar = base / "cifar"
    cifar.mkdir()
    for name in ("data_batch_1", "test_batch", "batches.meta"):
        (cifar / name).write_bytes(pickle.dumps(Payload(marker)))
    folder = base / "images"
    for cls in ("a", "b"):
        (folder / cls).mkdir(parents=True)
        (folder / cls / "x.pkl").write_bytes(pickle.dumps(Payload(marker)))
    return {"dir": base, "marker": marker}


def test_payload_is_real(tmp_path):
    marker = tmp_path / "m"
    pickle.loads(pickle.dumps(Payload(marker)))
    assert marker.exists()


# ---- every path field, at any depth -------------------------------------------------------
def _compress(model, **evaluator):
    return {"name": "c", "kind": "compress", "model": model, "agent": {"name": "random"},
            "evaluator": {"name": "compress", "options": evaluator},
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": 2}, "executor": {"name": "local"}}


def _train(dataset):
    return {"name": "t", "space": {"name": "mnasnet"}, "agent": {"name": "random"},
            "evaluator": {"name": "train", "options": {"dataset": dataset}},
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": 2}, "executor": {"name": "local"}}


#: field -> (payload file under the server folder, spec naming path P)
FIELDS = {
    "model.artifact": ("evil.pt", lambda p: _compress({"artifact": p})),
    "model.artifact (lsz)": ("evil.lsz", lambda p: _compress({"artifact": p})),
    "model.weights": ("evil.pt", lambda p: _compress({"reference": "resnet_small",
                                                      "weights": p})),
    "model.space_options.model.artifact": ("evil.pt", lambda p: _compress(
        {"space": "compression", "arch": {}, "space_options": {"model": {"artifact": p}}})),
    "evaluator.options.dataset.root (imagefolder)": ("images", lambda p: _train(
        {"source": "imagefolder", "root": p})),
    "evaluator.options.dataset.root (cifar10)": ("cifar", lambda p: _train(
        {"source": "cifar10", "root": p})),
    "evaluator.options.table": ("evil.pkl", lambda p: job_spec(
        evaluator={"name": "tabular", "options": {"table": p}})),
    "profilers[1].options.path": ("evil.pkl", lambda p: job_spec(
        profilers=[{"name": "lut:pixel3"}, {"name": "csv", "options": {"path": p}}])),
    "evaluator.options.export_dir": (".", lambda p: _compress(
        {"reference": "resnet_small"}, export_dir=p)),
    "profilers[0].options.table": ("evil.pkl", lambda p: job_spec(
        profilers=[{"name": "predictor:torch-cpu", "options": {"table": p}}])),
}


def _post(client, token, spec):
    return client.post(f"{API}/jobs", json=spec, headers=auth(token))


@pytest.mark.parametrize("case", list(FIELDS))
def test_payload_through_every_path_field_is_422(client, tokens, server, settings, case):
    field = case.split(" (")[0]
    name, make = FIELDS[case]
    target = server["dir"] / name
    rel = os.path.relpath(target, settings.data_dir / "tables")  # "../../server/..." etc.
    answers = []
    for value in (str(target), str(server["dir"] / "no-such-file"), rel, f"../../{name}"):
        r = _post(client, tokens["alice"], make(value))
        assert r.status_code == 422, (value, r.text)
        err = r.json()["errors"][0]
        assert err["field"] == field, (value, err)
        answers.append(err["message"])
    # One answer whether the file exists or not, and no server path in it.
    assert len(set(answers)) == 1 and str(server["dir"]) not in answers[0]
    assert str(settings.data_dir) not in answers[0]
    assert not server["marker"].exists()


def test_symlinks_out_of_roots_are_422(client, tokens, server, settings):
    for root in (settings.tables_dir, settings.datasets_dir, settings.models_dir):
        root.mkdir(parents=True, exist_ok=True)
    (settings.tables_dir / "t.csv").symlink_to(server["dir"] / "evil.pkl")
    (settings.models_dir / "m.pt").symlink_to(server["dir"] / "evil.pt")
    (settings.datasets_dir / "cifar").symlink_to(server["dir"] / "cifar")
    (settings.datasets_dir / "real").mkdir()
    (settings.datasets_dir / "real" / "up").symlink_to(server["dir"])
    cases = [
        (job_spec(evaluator={"name": "tabular", "options": {"table": "t.csv"}}),
         "evaluator.options.table"),
        (_compress({"artifact": "m.pt"}), "model.artifact"),
        (_compress({"space": "compression", "arch": {},
                    "space_options": {"model": {"artifact": "m.pt"}}}),
         "model.space_options.model.artifact"),
        (_train({"source": "cifar10", "root": "cifar"}), "evaluator.options.dataset.root"),
        (_train({"source": "cifar10", "root": "real/up/cifar"}),
         "evaluator.options.dataset.root"),
    ]
    for spec, field in cases:
        r = _post(client, tokens["alice"], spec)
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["field"] == field
    assert not server["marker"].exists()


def test_odd_path_values_never_500(client, tokens):
    for value in ("x" * 5000, "a/" * 3000, "/" + "b" * 300 + "/c", "upload:", "job:",
                  "job:" + "f" * 32, "job:../../etc/passwd", "upload:" + "9" * 100, "\\..\\x",
                  "\u00e9/\U0001f600.csv", "."):
        r = _post(client, tokens["alice"], _compress({"artifact": value}))
        assert r.status_code in (201, 422), (value[:50], r.text)
        if r.status_code == 422:
            assert r.json()["errors"][0]["field"] == "model.artifact"


def test_paths_inside_admin_roots_are_stored_absolute(client, tokens, settings):
    r = _post(client, tokens["alice"], _train({"source": "imagefolder", "root": "pets"}))
    assert r.status_code == 201, r.text
    root = r.json()["spec"]["evaluator"]["options"]["dataset"]["root"]
    assert root == str((settings.datasets_dir / "pets").resolve())
    r = _post(client, tokens["alice"], _compress({"reference": "resnet_small"},
                                                  export_dir="runs/one"))
    assert r.status_code == 201, r.text
    out = r.json()["spec"]["evaluator"]["options"]["export_dir"]
    assert out.startswith(str(settings.work_dir.resolve())) and out.endswith("runs/one")


def test_admin_root_payload_is_refused_by_the_worker(client, tokens, server, settings,
                                                      start_worker):
    """A payload the administrator's folder holds passes the path policy, and the loader
    still refuses it: the job fails, nothing runs."""
    settings.models_dir.mkdir(parents=True)
    (settings.models_dir / "evil.pt").write_bytes((server["dir"] / "evil.pt").read_bytes())
    spec = _compress({"artifact": "evil.pt", "limit": 60})
    r = _post(client, tokens["alice"], spec)
    assert r.status_code == 201, r.text
    start_worker()
    job = wait_for(lambda: _finished(client, tokens["alice"], r.json()["id"]), 120)
    assert job["status"] == "failed" and "not a LightSearch compressed artifact" in \
        job["reason"], job["reason"]
    assert not server["marker"].exists()


def _finished(client, token, job_id):
    job = client.get(f"{API}/jobs/{job_id}", headers=auth(token)).json()
    return job if job["status"] in ("succeeded", "failed", "cancelled", "exhausted") else None


# ---- the loaders refuse the payload when called directly ----------------------------------
def test_loaders_refuse_pickles(server, monkeypatch):
    from search.compression.export import load_artifact
    from search.compression.factory import load_model_file
    from search.datasets import DatasetError, load_dataset
    from search.weights import UnsafeModelFile, load_state_dict

    d = server["dir"]
    # model.artifact takes only .lsz files (JSON and raw bytes): a pickle is not opened,
    # and an artifact that carries one (the old format's skeleton.pt) is refused by format.
    with pytest.raises(ValueError, match="not a LightSearch compressed artifact"):
        load_model_file(str(d / "evil.pt"))
    with pytest.raises(UnsafeModelFile):
        load_state_dict(d / "evil.pt")
    with pytest.raises(ValueError, match="not a LightSearch compressed artifact"):
        load_artifact(d / "evil.lsz")
    with pytest.raises(ValueError, match="not a LightSearch compressed artifact"):
        load_model_file(str(d / "evil.lsz"))
    monkeypatch.delenv("LIGHTSEARCH_CIFAR10_DIRS", raising=False)
    with pytest.raises(DatasetError, match="LIGHTSEARCH_CIFAR10_DIRS"):
        load_dataset("cifar10", root=str(d / "cifar"))
    # Even from a folder the administrator trusts, only numpy arrays are rebuilt.
    monkeypatch.setenv("LIGHTSEARCH_CIFAR10_DIRS", str(d / "cifar"))
    with pytest.raises(DatasetError, match="not allowed"):
        load_dataset("cifar10", root=str(d / "cifar"), seed=1)
    assert not server["marker"].exists()


def _cifar_python(folder: Path, n: int = 100) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in ("data_batch_1", "test_batch"):
        batch = {b"data": rng.integers(0, 255, (n, 3072), dtype=np.uint8),
                 b"labels": [i % 10 for i in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch))
    (folder / "batches.meta").write_bytes(pickle.dumps(
        {b"label_names": [f"c{i}".encode() for i in range(10)]}))


def _cifar_binary(folder: Path, n: int = 100) -> None:
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for name in ("data_batch_1.bin", "test_batch.bin"):
        rec = np.concatenate([np.arange(n, dtype=np.uint8)[:, None] % 10,
                              rng.integers(0, 255, (n, 3072), dtype=np.uint8)], axis=1)
        (folder / name).write_bytes(rec.tobytes())


def test_cifar10_formats(tmp_path, monkeypatch):
    from search.datasets import load_dataset

    _cifar_python(tmp_path / "py")
    monkeypatch.setenv("LIGHTSEARCH_CIFAR10_DIRS", str(tmp_path / "py"))
    data = load_dataset("cifar10", root=str(tmp_path / "py"), seed=2)
    assert data.classes[3] == "c3" and data.input_shape == (3, 32, 32)
    _cifar_binary(tmp_path / "bin")
    monkeypatch.delenv("LIGHTSEARCH_CIFAR10_DIRS")
    data = load_dataset("cifar10", root=str(tmp_path / "bin"), seed=3)  # no trust needed
    assert len(data.y_test) == 100 and data.input_shape == (3, 32, 32)


def test_real_models_load_weights_only(tmp_path):
    """LightSearch's own weights still load, as safetensors or a torch file; a whole saved
    module is refused (networks are rebuilt from their description)."""
    from safetensors.torch import save_file

    from search.compression.factory import load_model_file
    from search.compression.reference import build_reference
    from search.weights import load_state_dict

    model = build_reference("mobilenetv2_small", width=0.5)
    torch.save(model, tmp_path / "whole.pt")
    with pytest.raises(ValueError, match="not a LightSearch compressed artifact"):
        load_model_file(str(tmp_path / "whole.pt"))
    save_file(model.state_dict(), tmp_path / "w.safetensors")
    torch.save(model.state_dict(), tmp_path / "w.pt")
    for name in ("w.safetensors", "w.pt"):
        state = load_state_dict(tmp_path / name)
        assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


def test_local_search_walks_the_same_fields(tmp_path, monkeypatch):
    """``lightsearch search``: the same declared fields, made absolute on the user's disk."""
    from search.spec import SpecError
    from search.spec_paths import local_resolver, rewrite_paths

    monkeypatch.chdir(tmp_path)
    data = _train({"source": "imagefolder", "root": "pets"})
    data["profilers"] = [{"name": "csv", "options": {"path": "~/lat.csv"}}]
    assert rewrite_paths(data, local_resolver)
    assert data["evaluator"]["options"]["dataset"]["root"] == str(tmp_path / "pets")
    assert data["profilers"][0]["options"]["path"] == str(Path("~/lat.csv").expanduser())
    data["profilers"][0]["options"]["path"] = "a\x00b"
    with pytest.raises(SpecError, match="profilers\\[0\\].options.path"):
        rewrite_paths(data, local_resolver)


def test_pickle_scan(tmp_path):
    """The upload check reads opcodes only: globals outside the tensor (and layer class)
    allowlist are refused, however they are named."""
    from search.pickle_scan import UnsafePickle, check_pickle

    marker = tmp_path / "m"
    for protocol in (2, 4):  # GLOBAL and STACK_GLOBAL
        with pytest.raises(UnsafePickle):
            check_pickle(pickle.dumps(Payload(marker), protocol=protocol), modules=True)
    hook = b"\x80\x02ctorch.nn.modules.module\nregister_module_forward_hook\nq\x00."
    with pytest.raises(UnsafePickle, match="register_module_forward_hook"):
        check_pickle(hook, modules=True)
    layer = b"\x80\x02ctorch.nn.modules.conv\nConv2d\nq\x00."
    check_pickle(layer, modules=True)
    with pytest.raises(UnsafePickle):
        check_pickle(layer, modules=False)  # a state dict holds no layers
    with pytest.raises(UnsafePickle, match="not a readable pickle"):
        check_pickle(b"\x80\x02garbage")
    assert not marker.exists()


# ---- uploads -------------------------------------------------------------------------------
def _upload(client, token, kind, data, name="f"):
    return client.post(f"{API}/uploads", params={"kind": kind, "name": name}, content=data,
                       headers={**auth(token), "content-type": "application/octet-stream"})


def _zip(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("L", (4, 4), 128).save(buf, format="PNG")
    return buf.getvalue()


def test_upload_isolation(client, tokens, settings):
    alice, bob = tokens["alice"], tokens["bob"]
    r = _upload(client, alice, "table", b"arch_str,latency\na,1.0\n", "lat.csv")
    assert r.status_code == 201, r.text
    up = r.json()
    assert up["ref"] == f"upload:{up['id']}" and up["size"] == 23
    assert client.get(f"{API}/uploads", headers=auth(alice)).json()["count"] == 1
    assert client.get(f"{API}/uploads", headers=auth(bob)).json() == {"data": [], "count": 0}
    assert client.get(f"{API}/uploads/{up['id']}", headers=auth(bob)).status_code == 404
    assert client.delete(f"{API}/uploads/{up['id']}", headers=auth(bob)).status_code == 404
    # Bob naming Alice's upload gets the same answer as a made-up id.
    answers = []
    for ref in (up["ref"], "upload:0123456789abcdef0123456789abcdef"):
        r = _post(client, bob, job_spec(profilers=[{"name": "lut:pixel3"},
                                                   {"name": "csv", "options": {"path": ref}}]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == \
            "profilers[1].options.path"
        answers.append(r.json()["errors"][0]["message"].replace(ref.split(":")[1], "ID"))
    assert answers[0] == answers[1]
    # ... and so does naming the stored file's absolute path, or Alice's job's artifacts.
    stored = next((settings.uploads_dir).rglob("lat.csv"))
    r = _post(client, bob, job_spec(profilers=[{"name": "lut:pixel3"},
                                               {"name": "csv", "options": {"path": str(stored)}}]))
    assert r.status_code == 422
    alice_job = _post(client, alice, job_spec()).json()["id"]
    for value in (f"job:{alice_job}/results.json",
                  str(settings.artifact_dir / alice_job / "results.json")):
        r = _post(client, bob, job_spec(evaluator={"name": "tabular",
                                                   "options": {"table": value}}))
        assert r.status_code == 422, value
    # Alice may name all three; the stored spec holds the absolute path.
    r = _post(client, alice, job_spec(profilers=[{"name": "lut:pixel3"},
                                                 {"name": "csv", "options": {"path": up["ref"]}}]))
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["profilers"][1]["options"]["path"] == str(stored.resolve())
    # Her own job's file passes the path policy; the job has not written it yet, so the
    # table check that follows the policy answers that it is not there.
    r = _post(client, alice, job_spec(evaluator={"name": "tabular", "options": {
        "table": f"job:{alice_job}/results.json"}}))
    assert r.status_code == 422 and "not found" in r.json()["errors"][0]["message"], r.text
    # A table upload in a field that needs a model is refused with the kinds named.
    r = _post(client, alice, _compress({"artifact": up["ref"]}))
    assert r.status_code == 422 and "is a table" in r.json()["errors"][0]["message"]
    assert client.delete(f"{API}/uploads/{up['id']}", headers=auth(alice)).status_code == 204
    assert not stored.exists()
    assert client.get(f"{API}/uploads/{up['id']}", headers=auth(alice)).status_code == 404


def test_upload_size_limit(tokens, settings):
    from fastapi.testclient import TestClient

    from service.main import create_app

    small = settings.model_copy(update={"max_upload_bytes": 4096})
    app = create_app(small)  # the same database: the tokens work
    client = TestClient(app)
    data = b"a,b\n" + b"1,2\n" * 2000
    r = _upload(client, tokens["alice"], "table", data)  # refused on Content-Length
    assert r.status_code == 413

    def chunks():  # no Content-Length: counted by the route as it streams
        for _ in range(20):
            yield b"1,2\n" * 100

    r = client.post(f"{API}/uploads", params={"kind": "table", "name": "t.csv"},
                    content=chunks(), headers=auth(tokens["alice"]))
    assert r.status_code == 413, r.text
    leftovers = [p for p in settings.uploads_dir.rglob("*") if p.is_file()]
    assert leftovers == []
    assert _upload(client, tokens["alice"], "table", b"a,b\n1,2\n").status_code == 201
    app.state.lightsearch.db.dispose()


def test_uploads_are_checked(client, tokens, server, tmp_path):
    from safetensors.torch import save_file

    tok = tokens["alice"]
    d = server["dir"]
    bad = [
        ("model", (d / "evil.pt").read_bytes(), "tensors only"),
        ("model", (d / "evil.lsz").read_bytes(), "tensors only"),
        ("model", (d / "evil.pkl").read_bytes(), "safetensors"),
        ("table", b"\xff\xfe\x00\x01", "UTF-8"),
        ("dataset", _zip({f"cifar/{n}": (d / "cifar" / n).read_bytes()
                          for n in ("data_batch_1", "test_batch")}), "pickles"),
        ("dataset", _zip({"../evil/a/x.png": _png(), "b/y.png": _png()}), "unsafe name"),
        ("dataset", _zip({"a/x.png": _png(), "b/y.png": _png()}, {"c/l.png": "/etc/passwd"}),
         "link"),
        ("dataset", b"not an archive", "zip or tar"),
    ]
    for kind, data, words in bad:
        r = _upload(client, tok, kind, data)
        assert r.status_code == 422, (kind, words, r.text)
        assert r.json()["errors"][0]["field"] == "file" and words in r.text, r.text
    assert not server["marker"].exists()
    state = {"w": torch.ones(3, 2)}
    save_file(state, tmp_path / "w.safetensors")
    torch.save(state, tmp_path / "w.pt")
    from search.compression.reference import build_reference

    torch.save(build_reference("resnet_small", width=0.5), tmp_path / "whole.pt")
    for name in ("w.safetensors", "w.pt", "whole.pt"):
        r = _upload(client, tok, "model", (tmp_path / name).read_bytes(), name)
        assert r.status_code == 201, r.text
    r = _upload(client, tok, "dataset", _zip({"pets/cat/1.png": _png(),
                                              "pets/dog/2.png": _png()}), "pets.zip")
    assert r.status_code == 201, r.text
    spec = _train({"source": "imagefolder", "root": r.json()["ref"]})
    r = _post(client, tok, spec)
    assert r.status_code == 201, r.text
    assert r.json()["spec"]["evaluator"]["options"]["dataset"]["root"].endswith("/data/pets")


# ---- uploads used by jobs, end to end --------------------------------------------------------
def test_job_reads_an_uploaded_table(client, tokens, start_worker):
    import pandas as pd

    from search.tables import NB201_ACCURACY_FILE

    table = pd.read_csv(NB201_ACCURACY_FILE)[["arch_str", "val_acc"]]
    table["val_acc"] = 1.0 + np.arange(len(table)) % 7  # not the shipped values
    tok = tokens["alice"]
    r = _upload(client, tok, "table", table.to_csv(index=False).encode(), "mine.csv")
    assert r.status_code == 201, r.text
    spec = job_spec(evaluator={"name": "tabular", "options": {"table": r.json()["ref"]}},
                    profilers=[], objectives=[{"metric": "val_acc", "direction": "max"}],
                    budget={"evaluations": 10})
    job_id = _post(client, tok, spec).json()["id"]
    start_worker()
    job = wait_for(lambda: _finished(client, tok, job_id), 120)
    assert job["status"] == "succeeded", job["reason"]
    trials = client.get(f"{API}/jobs/{job_id}/trials", headers=auth(tok)).json()["data"]
    values = {t["metrics"]["val_acc"] for t in trials if t["state"] == "complete"}
    assert values and values <= {float(v) for v in range(1, 8)}


def test_compress_job_uses_uploaded_weights(client, tokens, start_worker, tmp_path):
    """Weights that predict class 3 for every image: the job's base accuracy is the share
    of 3s in the validation split, so the uploaded weights (not a trained model) were used."""
    from safetensors.torch import save_file

    from search.compression.data import load_dataset
    from search.compression.reference import build_reference

    model = build_reference("resnet_small", width=0.5, seed=0)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["fc.weight"].zero_()
    state["fc.bias"].copy_(torch.arange(10) == 3)
    save_file(state, tmp_path / "w.safetensors")
    tok = tokens["alice"]
    up = _upload(client, tok, "model", (tmp_path / "w.safetensors").read_bytes(),
                 "w.safetensors").json()
    spec = _compress({"reference": "resnet_small", "width": 0.5, "limit": 200,
                      "weights": up["ref"]}, measure_latency=False, calib_samples=32)
    spec["space"] = {"name": "compression", "options": {"controls": ["prune"]}}
    r = _post(client, tok, spec)
    assert r.status_code == 201, r.text
    start_worker()
    job = wait_for(lambda: _finished(client, tok, r.json()["id"]), 300)
    assert job["status"] == "succeeded", job["reason"]
    trial = client.get(f"{API}/jobs/{job['id']}/trials", headers=auth(tok)).json()["data"][0]
    y_val = load_dataset("digits", seed=0, limit=200).val.y
    assert trial["recorded"]["base_val_acc"] == pytest.approx(
        100 * float((y_val == 3).float().mean()))


# ---- the declarations and the API process ---------------------------------------------------
def test_plugins_declare_their_path_fields():
    from search.spec_paths import REGISTRIES
    from spaces.paths import declared_paths

    found = {(kind, entry.name, field, pk) for kind, reg in REGISTRIES.items()
             for entry in reg.entries()
             for field, pk in declared_paths(entry.options)}
    expected = {
        ("evaluator", "tabular", "table", "table"),
        ("evaluator", "train", "dataset.root", "dataset"),
        ("evaluator", "compress", "model.artifact", "model"),
        ("evaluator", "compress", "model.weights", "model"),
        ("evaluator", "compress", "export_dir", "output"),
        ("space", "compression", "model.artifact", "model"),
        ("space", "compression", "model.weights", "model"),
        ("profiler", "csv", "path", "table"),
        ("profiler", "predictor:torch-cpu", "table", "output"),
    }
    assert expected <= found


def test_uploads_and_path_checks_import_neither_torch_nor_ray(tmp_path):
    code = (
        "import sys, json, io, zipfile\n"
        "from fastapi.testclient import TestClient\n"
        "from service.core.config import Settings\n"
        "from service.main import create_app\n"
        "from service.admin import bootstrap_admin\n"
        f"s = Settings(data_dir={str(tmp_path)!r})\n"
        "app = create_app(s)\n"
        "tok = bootstrap_admin(app.state.lightsearch.db, s.admin_token_file)\n"
        "c = TestClient(app)\n"
        "h = {'Authorization': 'Bearer ' + tok}\n"
        "up = c.post('/api/v1/uploads', params={'kind': 'table', 'name': 't.csv'},\n"
        "            content=b'arch_str,x\\na,1\\n', headers=h).json()['ref']\n"
        "spec = {'profilers': [{'name': 'csv', 'options': {'path': up}}]}\n"
        "ok = c.post('/api/v1/jobs', json=spec, headers=h).status_code\n"
        "spec = {'kind': 'compress', 'model': {'artifact': '/etc/passwd'}}\n"
        "bad = c.post('/api/v1/jobs', json=spec, headers=h).status_code\n"
        "print(json.dumps([ok, bad, 'torch' in sys.modules, 'ray' in sys.modules]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [201, 422, False, False]
