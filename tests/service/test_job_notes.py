"""A job's note (SQLite and PostgreSQL): its owner writes it with PATCH /jobs/{id}, in any
status; it is part of the job document; other users cannot see the job (404), an admin sees
it but may not write the note (403); a note too long, with a NUL or with an unknown field is
a 422 naming the field; the migration adds and drops the column."""

from __future__ import annotations

from sqlalchemy import inspect

from service.schemas import NOTE_MAX_CHARS
from tests.service.conftest import auth, job_spec

API = "/api/v1"


def _job(client, token: str) -> str:
    r = client.post(f"{API}/jobs", json=job_spec(name="noted"), headers=auth(token))
    assert r.status_code == 201, r.text
    assert r.json()["note"] is None
    return r.json()["id"]


def test_the_owner_writes_reads_and_clears_the_note(client, tokens) -> None:
    tok = tokens["alice"]
    job = _job(client, tok)
    before = client.get(f"{API}/jobs/{job}", headers=auth(tok)).json()  # cached response
    text = "Baseline for the Pixel 3 runs.\nÜnïcödé, tabs\tand 🙂 kept as written."
    r = client.patch(f"{API}/jobs/{job}", json={"note": text}, headers=auth(tok))
    assert r.status_code == 200, r.text
    assert r.json()["note"] == text and r.json()["status"] == "queued"
    after = client.get(f"{API}/jobs/{job}", headers=auth(tok)).json()
    assert after["note"] == text and after["updated_at"] > before["updated_at"]
    assert after["spec"] == before["spec"]  # nothing else changed
    full = "x" * NOTE_MAX_CHARS  # the limit itself is fine
    assert client.patch(f"{API}/jobs/{job}", json={"note": full},
                        headers=auth(tok)).json()["note"] == full
    for empty in (None, "", "  \n "):  # null or blank clears it
        r = client.patch(f"{API}/jobs/{job}", json={"note": empty}, headers=auth(tok))
        assert r.status_code == 200 and r.json()["note"] is None, r.text
    # a finished job keeps taking notes
    assert client.post(f"{API}/jobs/{job}/cancel", headers=auth(tok)).json()["status"] \
        == "cancelled"
    r = client.patch(f"{API}/jobs/{job}", json={"note": "stopped: wrong budget"},
                     headers=auth(tok))
    assert r.status_code == 200 and r.json()["note"] == "stopped: wrong budget"


def test_only_the_owner_may_write_it(client, tokens) -> None:
    job = _job(client, tokens["alice"])
    client.patch(f"{API}/jobs/{job}", json={"note": "mine"}, headers=auth(tokens["alice"]))
    r = client.patch(f"{API}/jobs/{job}", json={"note": "bob was here"},
                     headers=auth(tokens["bob"]))
    assert r.status_code == 404, r.text  # another user's job does not exist for them
    r = client.patch(f"{API}/jobs/{job}", json={"note": "admin was here"},
                     headers=auth(tokens["root"]))
    assert r.status_code == 403 and "owner" in r.json()["detail"], r.text
    assert client.get(f"{API}/jobs/{job}", headers=auth(tokens["root"])).json()["note"] == "mine"
    r = client.patch(f"{API}/jobs/{job}", json={"note": "anonymous"})
    assert r.status_code == 401
    assert client.patch(f"{API}/jobs/nope", json={"note": "x"},
                        headers=auth(tokens["alice"])).status_code == 404


def test_bad_notes_are_refused_naming_the_field(client, tokens) -> None:
    tok = tokens["alice"]
    job = _job(client, tok)
    client.patch(f"{API}/jobs/{job}", json={"note": "kept"}, headers=auth(tok))
    for body, field, words in (
            ({"note": "x" * (NOTE_MAX_CHARS + 1)}, "note", f"at most {NOTE_MAX_CHARS}"),
            ({"note": "a\x00b"}, "note", "NUL"),
            ({"note": 12}, "note", "string"),
            ({"note": "x", "name": "renamed"}, "name", "not permitted"),
            ({}, "note", "required")):
        r = client.patch(f"{API}/jobs/{job}", json=body, headers=auth(tok))
        assert r.status_code == 422, (body, r.text)
        errors = r.json()["errors"]
        assert errors and errors[0]["field"] == field, (body, errors)
        assert words.lower() in r.json()["detail"].lower(), (body, r.json())
    assert client.get(f"{API}/jobs/{job}", headers=auth(tok)).json()["note"] == "kept"


def test_the_migration_adds_and_drops_the_column(db) -> None:
    from alembic import command

    from service.migrations import alembic_config, upgrade

    def columns() -> set[str]:
        return {c["name"] for c in inspect(db.engine).get_columns("jobs")}

    assert "note" in columns()
    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0005")
    assert "note" not in columns() and "hv_true_front" in columns()
    upgrade(db.engine)
    assert "note" in columns()
