"""The API fuzzed from its own OpenAPI document (schemathesis): no input gives a 5xx, and
every answer matches the documented schema. GET routes get a real job id half the time, so
trials, front, hypervolume and artifact routes run their queries on stored data."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance

from tests.service.conftest import RunningWorker, auth, job_spec, wait_for


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


QUICK = schemathesis.config.SchemathesisConfig.from_str(
    "[phases.coverage]\nenabled = false\n[phases.stateful]\nenabled = false\n")


@pytest.fixture
def api_schema(request, app, fuzz_target):
    """Quick runs skip the coverage phase (hundreds of boundary cases per route)."""
    thorough = request.node.get_closest_marker("slow") is not None
    config = None if thorough else QUICK
    return schemathesis.openapi.from_asgi("/openapi.json", app, config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


def _fuzz_one(case, target) -> None:
    if case.method.upper() == "GET" and "job_id" in (case.path_parameters or {}) \
            and hash(str(case.query)) % 2 == 0:
        case.path_parameters["job_id"] = target["job_id"]
    response = case.call(headers=auth(target["token"]))
    case.validate_response(response, checks=[not_a_server_error,
                                             response_schema_conformance])


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
