"""Full validation at submit (SQLite and PostgreSQL): a spec the worker would refuse, or would
run wrongly, is refused by POST /jobs with the field at fault; the job document says which
metrics the job produces and what its reward is."""

from __future__ import annotations

import pytest

from tests.service.conftest import auth, job_spec

API = "/api/v1"


def _budget(**over):
    return {"budget": {"evaluations": 40, **over}}


@pytest.mark.parametrize(
    ("patch", "field", "says"),
    [
        # Ended 'succeeded' with an empty front before: no component measures zzz.
        ({"objectives": [{"metric": "zzz"}]}, "objectives[0].metric", "valid metrics"),
        # Recorded with every trial, but never shown to the agent: not a metric.
        ({"objectives": [{"metric": "test_acc"}]}, "objectives[0].metric", "val_acc"),
        ({"constraints": [{"metric": "edgegpu_latency", "max": 5}]}, "constraints[0].metric",
         "pixel3_latency"),
        ({"reward": {"kind": "mnas", "accuracy": "val_acc", "latency": "raspi4_latency",
                     "target": 10}}, "reward.latency", "pixel3_latency"),
        ({"reward": {"kind": "weighted", "weights": {"val_acc": 1, "flops_M": -0.1}}},
         "reward.weights.flops_M", "valid metrics"),
        # Failed in the worker with a raw KeyError-like message before.
        ({"evaluator": {"name": "tabular", "options": {"signal": "nope"}}},
         "evaluator.options.signal", "val_acc_12ep"),
        ({"evaluator": {"name": "tabular", "options": {"record": ["nope"]}}},
         "evaluator.options.record", "test_acc"),
        ({"evaluator": {"name": "tabular", "options": {"key_column": "nope"}}},
         "evaluator.options.key_column", "arch_str"),
        # Strict types: a boolean is not a count (it became 1 before).
        (_budget(evaluations=True), "budget.evaluations", "integer"),
        (_budget(evaluations=40.5), "budget.evaluations", "integer"),
        ({"seed": True}, "seed", "integer"),
        ({"executor": {"name": "local", "batch_size": False}}, "executor.batch_size",
         "integer"),
        ({"agent": {"name": "evolution", "options": {"population": True}}}, "agent",
         "population"),
        # Sane bounds: overflowed in the worker before.
        (_budget(max_proposals=1e20), "budget.max_proposals", "integer"),
        (_budget(max_proposals=10**20), "budget.max_proposals", "less than or equal"),
        (_budget(max_failures=10**19), "budget.max_failures", "less than or equal"),
        ({"constraints": [{"metric": "pixel3_latency", "max": 1e300}]}, "constraints[0].max",
         "less than or equal"),
        ({"reward": {"kind": "mnas", "accuracy": "val_acc", "latency": "pixel3_latency",
                     "target": 1e200}}, "reward.target", "less than or equal"),
        ({"evaluator": {"name": "train", "options": {"dataset": {"seed": 2**40}}}},
         "evaluator", "seed"),
        ({"profilers": [{"name": "torch-analytical",
                         "options": {"input_shape": [3, 10**9, 32]}}]}, "profilers[0]",
         "input_shape"),
        # Honest fields: the service runs jobs on its own Ray.
        ({"executor": {"name": "ray", "address": "ray://10.0.0.1:10001"}}, "executor.address",
         "own Ray"),
        ({"executor": {"name": "local", "address": "auto"}}, "executor.address", "'ray'"),
        # Steady mode: a known mode, one evaluation per Ray task.
        ({"executor": {"mode": "async"}}, "executor.mode", "'steady'"),
        ({"executor": {"name": "ray", "mode": "steady", "chunk_size": 4}},
         "executor.chunk_size", "steady"),
    ],
)
def test_bad_spec_refused_at_submit_with_the_field(client, tokens, patch, field, says):
    r = client.post(f"{API}/jobs", json=job_spec(**patch), headers=auth(tokens["alice"]))
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["errors"][0]["field"] == field, body
    assert says in body["detail"], body
    assert "Traceback" not in r.text and "/site-packages/" not in r.text
    assert client.get(f"{API}/jobs", headers=auth(tokens["alice"])).json()["count"] == 0


def test_unknown_metric_lists_the_valid_names(client, tokens):
    r = client.post(f"{API}/jobs", json=job_spec(objectives=[{"metric": "zzz"}]),
                    headers=auth(tokens["alice"]))
    assert r.json()["errors"][0]["valid"] == ["pixel3_latency", "val_acc"]


def test_csv_profiler_columns_are_read_at_submit(client, tokens, settings):
    settings.tables_dir.mkdir(parents=True)
    (settings.tables_dir / "lat.csv").write_text("arch_str,my_latency,note\nx,1.5,a\n")
    h = auth(tokens["alice"])
    csv = {"name": "csv", "options": {"path": "lat.csv", "prefix": "dev_"}}
    ok = job_spec(profilers=[csv], objectives=[{"metric": "val_acc"},
                                               {"metric": "dev_my_latency", "direction": "min"}])
    r = client.post(f"{API}/jobs", json=ok, headers=h)
    assert r.status_code == 201, r.text
    assert r.json()["metrics"]["dev_my_latency"] == {
        "label": "Latency (dev_my)", "unit": "ms", "device": None, "direction": "min"}
    wrong = job_spec(profilers=[{**csv, "options": {**csv["options"], "columns": ["nope"]}}])
    r = client.post(f"{API}/jobs", json=wrong, headers=h)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "profilers[0].options.columns"
    assert "my_latency" in r.json()["detail"]


def test_job_document_names_metrics_and_reward(client, tokens):
    h = auth(tokens["alice"])
    spec = job_spec(profilers=[{"name": "lut:pixel3"}, {"name": "lut:edgegpu"},
                               {"name": "analytical"}],
                    reward={"kind": "mnas", "accuracy": "val_acc",
                            "latency": "pixel3_latency", "target": 10, "w": -0.07})
    created = client.post(f"{API}/jobs", json=spec, headers=h).json()
    job = client.get(f"{API}/jobs/{created['id']}", headers=h).json()
    m = job["metrics"]
    assert m["val_acc"] == {"label": "Validation accuracy", "unit": "%", "device": None,
                            "direction": "max"}
    assert m["pixel3_latency"] == {"label": "Latency on Pixel 3", "unit": "ms",
                                   "device": "pixel3", "direction": "min"}
    assert m["edgegpu_energy"]["unit"] == "mJ" and m["edgegpu_energy"]["device"] == "edgegpu"
    assert m["flops_M"]["unit"] == "MFLOPs" and m["params_M"]["direction"] == "min"
    assert sorted(m) == ["edgegpu_energy", "edgegpu_latency", "flops_M", "params_M",
                         "pixel3_latency", "val_acc"]
    assert job["reward_formula"] == "val_acc * (pixel3_latency / 10 ms)^-0.07"
    plain = client.post(f"{API}/jobs", json=job_spec(objectives=[
        {"metric": "pixel3_latency", "direction": "min"}]), headers=h).json()
    assert plain["reward_formula"] == "-pixel3_latency"


def test_registries_list_each_plugins_metrics(client, tokens):
    body = client.get(f"{API}/registries", headers=auth(tokens["alice"])).json()
    profilers = {e["name"]: e["metrics"] for e in body["profilers"]}
    assert {"name": "pixel3_latency", "label": "Latency on Pixel 3", "unit": "ms",
            "device": "pixel3", "direction": "min"} in profilers["lut:pixel3"]
    assert [x["name"] for x in profilers["torch-cpu"]][0] == "torch_latency_ms"
    assert profilers["csv"] is None  # its columns are known per job, from the file
    evaluators = {e["name"]: e["metrics"] for e in body["evaluators"]}
    assert [x["name"] for x in evaluators["tabular"]] == ["val_acc"]
    assert "size_ratio" in [x["name"] for x in evaluators["compress"]] \
        if evaluators["compress"] is not None else True
    assert all(e["metrics"] is None for e in body["agents"])


@pytest.fixture
def ray_settings(settings):
    return settings.model_copy(update={"executor": "ray"})


def test_local_executor_refused_where_every_job_runs_on_ray(tokens, ray_settings, db):
    """``executor = ray`` (``serve --executor ray``): a job asking for 'local' is told so
    instead of silently running on Ray; one that leaves it out is accepted."""
    from fastapi.testclient import TestClient

    from service.main import create_app

    app = create_app(ray_settings)
    with TestClient(app) as c:
        h = auth(tokens["alice"])
        r = c.post(f"{API}/jobs", json=job_spec(executor={"name": "local"}), headers=h)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "executor.name"
        assert "LIGHTSEARCH_EXECUTOR=ray" in r.json()["detail"]
        r = c.post(f"{API}/jobs", json=job_spec(executor={"batch_size": 4}), headers=h)
        assert r.status_code == 201, r.text
    app.state.lightsearch.db.dispose()
