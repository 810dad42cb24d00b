"""Auth and isolation on every route; tokens hashed; artifact paths cannot escape."""

from __future__ import annotations

import hashlib
import os

import pytest
from sqlalchemy import select

from service.models import ApiToken
from tests.service.conftest import auth, job_spec

API = "/api/v1"


#: Routes that need no token by design: signing out only clears the dashboard's cookie.
PUBLIC = {("DELETE", "/api/v1/dashboard/session")}


def _routes(app):
    """(method, path template) of every /api/v1 route."""
    return [(method.upper(), path) for path, ops in app.openapi()["paths"].items()
            if path.startswith(API) for method in ops
            if (method.upper(), path) not in PUBLIC]


def _fill(path: str, job_id: str) -> str:
    return (path.replace("{job_id}", job_id).replace("{path:path}", "results.json")
            .replace("{path}", "results.json").replace("{kind}", "agents")
            .replace("{trial_id}", "0").replace("{token_id}", "1"))


def _body(method: str, path: str):
    if method == "PATCH":
        return {"note": "written by whoever sent this"}
    if method != "POST":
        return None
    if path.endswith("/tokens"):
        return {"user": "mallory"}
    return job_spec() if path.endswith("/jobs") else None


def test_every_route_needs_a_token(app, client, tokens):
    job = client.post(f"{API}/jobs", json=job_spec(), headers=auth(tokens["alice"])).json()
    routes = _routes(app)
    assert len(routes) >= 12
    for method, path in routes:
        url = _fill(path, job["id"])
        for headers in ({}, auth("ls_not-a-real-token"), {"Authorization": "Basic YTpi"}):
            r = client.request(method, url, headers=headers, json=_body(method, path))
            assert r.status_code == 401, (method, url, headers, r.status_code)
            assert r.headers["www-authenticate"] == "Bearer"


def test_another_users_job_is_404_on_every_route(app, client, tokens, settings):
    job = client.post(f"{API}/jobs", json=job_spec(), headers=auth(tokens["alice"])).json()
    art = settings.artifact_dir / job["id"]
    art.mkdir(parents=True)
    (art / "results.json").write_text("{}")
    job_routes = [(m, p) for m, p in _routes(app) if "{job_id}" in p]
    assert {p.rsplit("/", 1)[-1] for _, p in job_routes} >= {
        "{job_id}", "cancel", "trials", "pareto", "hypervolume", "artifacts", "{path}"}
    for method, path in job_routes:
        url = _fill(path, job["id"])
        r = client.request(method, url, headers=auth(tokens["bob"]), json=_body(method, path))
        assert r.status_code == 404, (method, url, r.status_code)
        assert job["id"] not in client.get(f"{API}/jobs", headers=auth(tokens["bob"])).text
    # The owner and an admin see it; bob's failed cancel/delete changed nothing.
    assert client.get(_fill(f"{API}/jobs/{{job_id}}/artifacts/{{path}}", job["id"]),
                      headers=auth(tokens["alice"])).content == b"{}"
    r = client.get(f"{API}/jobs/{job['id']}", headers=auth(tokens["root"]))
    assert r.status_code == 200 and r.json()["status"] == "queued" and r.json()["note"] is None
    every = client.get(f"{API}/jobs", params={"all": "true"}, headers=auth(tokens["root"]))
    assert job["id"] in every.text
    assert client.get(f"{API}/jobs", params={"all": "true"},
                      headers=auth(tokens["bob"])).status_code == 403


def test_tokens_are_stored_hashed(db, tokens):
    with db.reading() as session:
        stored = session.scalars(select(ApiToken.token_hash)).all()
    for token in tokens.values():
        assert hashlib.sha256(token.encode()).hexdigest() in stored
        assert token not in stored


def test_admin_creates_tokens_over_the_api(client, tokens):
    r = client.post(f"{API}/tokens", json={"user": "carol"}, headers=auth(tokens["alice"]))
    assert r.status_code == 403
    r = client.post(f"{API}/tokens", json={"user": "carol"}, headers=auth(tokens["root"]))
    assert r.status_code == 201
    carol = r.json()["token"]
    me = client.get(f"{API}/users/me", headers=auth(carol)).json()
    assert me["name"] == "carol" and me["is_admin"] is False


@pytest.mark.parametrize("path", [
    "../../../etc/passwd", "..%2F..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd",
    "sub/../../other/secret.txt", "link-out/secret.txt", "link-file", "trials", "missing.txt",
    "%00", "a%00b",
])
def test_artifact_downloads_cannot_escape(client, tokens, settings, tmp_path, path):
    h = auth(tokens["alice"])
    job = client.post(f"{API}/jobs", json=job_spec(), headers=h).json()
    other = client.post(f"{API}/jobs", json=job_spec(), headers=auth(tokens["bob"])).json()
    secret_dir = tmp_path / "outside"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("secret")
    base = settings.artifact_dir / job["id"]
    (base / "trials").mkdir(parents=True)
    (base / "ok.txt").write_text("fine")
    os.symlink(secret_dir, base / "link-out")
    os.symlink(secret_dir / "secret.txt", base / "link-file")
    (settings.artifact_dir / other["id"]).mkdir(parents=True)
    (settings.artifact_dir / other["id"] / "secret.txt").write_text("bob's")
    assert client.get(f"{API}/jobs/{job['id']}/artifacts/ok.txt", headers=h).text == "fine"
    r = client.get(f"{API}/jobs/{job['id']}/artifacts/{path}", headers=h)
    assert r.status_code == 404, (path, r.status_code, r.text[:100])
    assert "secret" not in r.text or "not found" in r.text
    listing = client.get(f"{API}/jobs/{job['id']}/artifacts", headers=h).json()
    assert [a["path"] for a in listing["data"]] == ["ok.txt"]
