"""The API fuzzed from its own OpenAPI document (schemathesis, every check: ``--checks
all``): no input gives a 5xx, every answer matches the documented schema (status, content
type, headers, body), schema-valid requests are accepted and schema-violating ones refused,
405 answers list the allowed methods. GET routes get a real job id half the time, so trials,
front, hypervolume and artifact routes run their queries on stored data. Settings come from
the repository's ``schemathesis.toml`` (what the CLI reads too)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.parameters import ParameterLocation

from tests.service.conftest import REPO, RunningWorker, auth, job_spec, wait_for


@pytest.fixture
def fuzz_target(app, client, tokens, settings):
    job = client.post("/api/v1/jobs", json=job_spec(budget={"evaluations": 25}),
                      headers=auth(tokens["alice"])).json()
    worker = RunningWorker(settings, db=app.state.lightsearch.db)
    try:
        wait_for(lambda: client.get(f"/api/v1/jobs/{job['id']}",
                                    headers=auth(tokens["alice"])).json()["status"]
                 == "succeeded", 60)
    finally:
        worker.stop()
    return {"job_id": job["id"], "token": tokens["alice"]}


PROJECT = (REPO / "schemathesis.toml").read_text()
THOROUGH = schemathesis.config.SchemathesisConfig.from_str(
    "[phases.stateful]\nenabled = false\n" + PROJECT)
QUICK = schemathesis.config.SchemathesisConfig.from_str(
    "[phases.coverage]\nenabled = false\n[phases.stateful]\nenabled = false\n" + PROJECT)


@pytest.fixture
def api_schema(request, app, fuzz_target):
    """Quick runs skip the coverage phase (hundreds of boundary cases per route)."""
    thorough = request.node.get_closest_marker("slow") is not None
    config = THOROUGH if thorough else QUICK
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


def _fuzz_one(case, target) -> None:
    """Positive cases get the real job id half the time and a valid token; negative cases
    are sent as generated (their token too, if it is the part made invalid)."""
    positive = case.meta is None or case.meta.generation.mode.is_positive
    if positive and case.method.upper() == "GET" and "job_id" in (case.path_parameters or {}) \
            and hash(str(case.query)) % 2 == 0:
        case.path_parameters["job_id"] = target["job_id"]
    if case.path.endswith("/revoke"):  # revoking the token in use would end the run
        case.path_parameters["token_id"] = 10**6
    header = case.meta.components.get(ParameterLocation.HEADER) if case.meta else None
    headers = None if header is not None and not header.mode.is_positive \
        else auth(target["token"])  # a token the case made invalid is sent as it is
    case.call_and_validate(headers=headers)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@schema.parametrize()
@settings(max_examples=6, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gives_a_server_error(case, fuzz_target):
    """Quick pass for the default suite (SQLite)."""
    _fuzz_one(case, fuzz_target)


@pytest.mark.slow
@schema.parametrize()
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_input_gives_a_server_error_thorough(case, fuzz_target):
    """More examples, on SQLite and PostgreSQL."""
    _fuzz_one(case, fuzz_target)


# ---- the places where the document and the behaviour differed (issue: schemathesis) --------
API = "/api/v1"


def test_405_lists_every_method_of_the_path(client, tokens):
    for path, allowed in ((f"{API}/jobs", "GET, POST"), (f"{API}/tokens", "GET, POST"),
                          (f"{API}/jobs/abc", "DELETE, GET, PATCH"),
                          (f"{API}/dashboard/session", "DELETE, POST")):
        r = client.request("PUT", path, headers=auth(tokens["alice"]))
        assert r.status_code == 405 and r.headers["allow"] == allowed, (path, r.headers)


def test_a_body_that_is_not_utf8_json_is_a_documented_400(client, tokens):
    h = {**auth(tokens["alice"]), "content-type": "application/json"}
    r = client.post(f"{API}/jobs", content=b'{"name": "\xff\xfe"}', headers=h)
    assert r.status_code == 400 and "not valid JSON" in r.json()["detail"]
    doc = client.get("/openapi.json").json()
    for path, method in ((f"{API}/jobs", "post"), (f"{API}/tokens", "post")):
        assert "400" in doc["paths"][path][method]["responses"]


def test_event_stream_errors_are_documented_as_json(client):
    doc = client.get("/openapi.json").json()
    responses = doc["paths"][f"{API}/jobs/{{job_id}}/events"]["get"]["responses"]
    assert "text/event-stream" in responses["200"]["content"]
    for code in ("401", "404", "422"):
        assert list(responses[code]["content"]) == ["application/json"]


def test_documented_axis_keys_and_cursors_are_accepted(client, tokens):
    h = auth(tokens["alice"])
    job = client.post(f"{API}/jobs", json=job_spec(), headers=h).json()["id"]
    base = f"{API}/dashboard/jobs/{job}"
    assert client.get(f"{base}/scatter", params={"x": "metrics.a", "y": "recorded.b",
                                                 "color": "none"}, headers=h).status_code == 200
    assert client.get(f"{base}/scatter", params={"x": "zzz"}, headers=h).status_code == 422
    # min/max without a metric bound the sort key (refused before, though schema-valid)
    r = client.get(f"{base}/trials", params={"min": 0, "max": 5}, headers=h)
    assert r.status_code == 200, r.text
    doc = client.get("/openapi.json").json()
    params = doc["paths"][f"{API}/dashboard/jobs/{{job_id}}/scatter"]["get"]["parameters"]
    assert all("pattern" in str(p["schema"]) for p in params if p["name"] in ("x", "y"))
    from service.dashboard.queries import Cursor

    assert Cursor.parse("") == Cursor.parse("  ") == Cursor()  # an empty cursor: from the start
    events = doc["paths"][f"{API}/jobs/{{job_id}}/events"]["get"]["parameters"]
    assert all("pattern" in str(p["schema"]) for p in events
               if p["name"] in ("since", "Last-Event-ID"))


def test_model_outside_compress_jobs_is_refused_as_documented(client, tokens):
    doc = client.get("/openapi.json").json()
    spec = doc["components"]["schemas"]["JobSpec"]
    assert spec["else"]["properties"]["model"] == {"type": "null"}
    assert "address" not in doc["components"]["schemas"]["ExecutorSpec"]["properties"]
    r = client.post(f"{API}/jobs", json=job_spec(model={"reference": "resnet_small"}),
                    headers=auth(tokens["alice"]))
    assert r.status_code == 422 and "only for jobs of kind 'compress'" in r.json()["detail"]


def test_unknown_query_parameters_are_refused(client, tokens):
    r = client.get(f"{API}/jobs", params={"limt": 5}, headers=auth(tokens["alice"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "query.limt"
    assert "limit" in r.json()["detail"]
    ok = client.get(f"{API}/jobs", params={"limit": 5}, headers=auth(tokens["alice"]))
    assert ok.status_code == 200
