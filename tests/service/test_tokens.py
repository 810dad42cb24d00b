"""Token listing and revocation (REST and CLI), on SQLite and PostgreSQL: a revoked token
gets 401 on the very next request, whoever revoked it."""

from __future__ import annotations

import pytest

from service import crud
from service.cli import main
from tests.service.conftest import auth, job_spec

API = "/api/v1"


def _ok(client, token: str) -> int:
    return client.get(f"{API}/users/me", headers=auth(token)).status_code


def test_list_and_revoke_over_the_api(client, tokens):
    alice, bob, root = tokens["alice"], tokens["bob"], tokens["root"]
    created = client.post(f"{API}/tokens", json={"user": "alice", "label": "laptop"},
                          headers=auth(root)).json()
    second, second_id = created["token"], created["id"]
    job = client.post(f"{API}/jobs", json=job_spec(), headers=auth(second)).json()

    mine = client.get(f"{API}/tokens", headers=auth(alice)).json()
    assert mine["count"] == 2 and {t["user"] for t in mine["data"]} == {"alice"}
    assert [t["current"] for t in mine["data"]] == [True, False]
    assert mine["data"][1]["label"] == "laptop" and "token" not in mine["data"][1]
    bob_id = client.get(f"{API}/tokens", headers=auth(bob)).json()["data"][0]["id"]
    assert client.get(f"{API}/tokens", params={"all": "true"},
                      headers=auth(alice)).status_code == 403
    assert client.get(f"{API}/tokens", params={"all": "true"},
                      headers=auth(root)).json()["count"] == 4

    # Another user's token is not found (not forbidden: ids do not leak) and still works.
    r = client.post(f"{API}/tokens/{bob_id}/revoke", headers=auth(alice))
    assert r.status_code == 404 and _ok(client, bob) == 200

    # Warm the job's cached answers with the token, then revoke it: the next request fails.
    assert client.get(f"{API}/jobs/{job['id']}", headers=auth(second)).status_code == 200
    r = client.post(f"{API}/tokens/{second_id}/revoke", headers=auth(alice))
    assert r.status_code == 200, r.text
    assert r.json()["revoked_at"] is not None and r.json()["current"] is False
    for path in ("/users/me", f"/jobs/{job['id']}", f"/jobs/{job['id']}/trials", "/tokens"):
        assert client.get(API + path, headers=auth(second)).status_code == 401, path
    assert _ok(client, alice) == 200  # the user's other token is untouched
    again = client.post(f"{API}/tokens/{second_id}/revoke", headers=auth(alice))
    assert again.status_code == 200 and again.json()["revoked_at"] == r.json()["revoked_at"]

    # An admin revokes anyone's; anyone revokes the token they call with.
    assert client.post(f"{API}/tokens/{bob_id}/revoke", headers=auth(root)).status_code == 200
    assert _ok(client, bob) == 401
    r = client.post(f"{API}/tokens/current/revoke", headers=auth(alice))
    assert r.status_code == 200 and r.json()["current"] is True
    assert _ok(client, alice) == 401
    assert client.post(f"{API}/tokens/current/revoke", headers=auth(alice)).status_code == 401


@pytest.mark.parametrize("bad", ["0", "-1", "abc", "1.5", "2147483648", "99999999999999999999",
                                 "%00", "1%20OR%201=1"])
def test_bad_token_ids_are_4xx(client, tokens, bad):
    r = client.post(f"{API}/tokens/{bad}/revoke", headers=auth(tokens["root"]))
    assert r.status_code == 422, (bad, r.status_code, r.text)
    assert r.json()["errors"][0]["field"] == "path.token_id"


def test_missing_token_id_is_404(client, tokens):
    r = client.post(f"{API}/tokens/{2**31 - 1}/revoke", headers=auth(tokens["root"]))
    assert r.status_code == 404 and "not found" in r.json()["detail"]


def test_revocation_outside_the_process_is_immediate(client, db, tokens):
    """Another process (the CLI, another API worker) revokes in the database: with the
    default settings the token is re-read on every request, so it fails at once."""
    assert _ok(client, tokens["bob"]) == 200
    with db.write_session() as session:
        crud.revoke_token(session, crud.find_token(
            session, None, token_hash=crud.hash_token(tokens["bob"])))
    assert _ok(client, tokens["bob"]) == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_auth_cache_bound(settings, tokens):
    """With ``auth_cache_s`` on, this process's own revocation still acts at once; one made
    elsewhere waits for the documented bound (the entry's expiry)."""
    from fastapi.testclient import TestClient

    from service.main import create_app

    app = create_app(settings.model_copy(update={"auth_cache_s": 60.0}))
    try:
        with TestClient(app) as client:
            alice, bob = tokens["alice"], tokens["bob"]
            assert _ok(client, alice) == 200 and _ok(client, bob) == 200  # both cached now
            alice_id = client.get(f"{API}/tokens", headers=auth(alice)).json()["data"][0]["id"]
            assert client.post(f"{API}/tokens/{alice_id}/revoke",
                               headers=auth(alice)).status_code == 200
            assert _ok(client, alice) == 401
            db = app.state.lightsearch.db
            with db.write_session() as session:
                crud.revoke_token(session, crud.find_token(
                    session, None, token_hash=crud.hash_token(bob)))
            assert _ok(client, bob) == 200  # cached: within the bound
            app.state.lightsearch.auth_cache.evict(crud.hash_token(bob))  # as at expiry
            assert _ok(client, bob) == 401
    finally:
        app.state.lightsearch.db.dispose()


def test_cli_list_and_revoke(client, settings, tokens, monkeypatch, capsys):
    monkeypatch.setenv("LIGHTSEARCH_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("LIGHTSEARCH_DATABASE_URL", settings.url)
    assert main(["token", "list", "--json"]) == 0
    listed = __import__("json").loads(capsys.readouterr().out)
    assert [t["user"] for t in listed] == ["alice", "bob", "root"]
    assert all(t["revoked_at"] is None for t in listed)
    bob_id = listed[1]["id"]

    assert main(["token", "revoke", str(bob_id), tokens["alice"]]) == 0
    out = capsys.readouterr().out
    assert f"token {bob_id} revoked" in out and tokens["alice"] not in out
    assert _ok(client, tokens["bob"]) == 401 and _ok(client, tokens["alice"]) == 401
    assert _ok(client, tokens["root"]) == 200

    assert main(["token", "revoke", str(bob_id)]) == 0
    assert "already" in capsys.readouterr().out
    assert main(["token", "revoke", "999999", "ls_unknown"]) == 1
    assert main(["token", "revoke", "nonsense"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["token", "list", "--user", "bob"]) == 0
    table = capsys.readouterr().out
    assert "bob" in table and "alice" not in table
