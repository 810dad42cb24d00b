"""Service fixtures: the same tests on SQLite and PostgreSQL, an app per test, tokens.

PostgreSQL (127.0.0.1:5432, database ``test``; override with LIGHTSEARCH_TEST_PG_URL) gets a
fresh schema per test, dropped afterwards, so parallel runs never collide.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text

REPO = Path(__file__).resolve().parents[2]
PG_URL = os.environ.get("LIGHTSEARCH_TEST_PG_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
#: Registers the test evaluators when an app or a worker loads its plugins (not at import,
#: so collecting this folder leaves the registries as they are for other suites).
PLUGINS = "tests.service.plugins"


def pg_schema_url(schema: str) -> str:
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Any]:
    engine = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_admin: Any) -> Iterator[str]:
    """A URL whose search_path is a brand-new schema (dropped at teardown)."""
    schema = f"ls_test_{uuid.uuid4().hex[:12]}"
    with pg_admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    yield pg_schema_url(schema)
    with pg_admin.connect() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'lightsearch.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Any:
    from service.core.config import Settings

    return Settings(data_dir=tmp_path / "data", database_url=db_url, executor="spec",
                    lease_s=5.0, poll_s=0.05, cancel_poll_s=0.05, auth_cache_s=0.0,
                    plugins=PLUGINS)


@pytest.fixture
def app(settings: Any) -> Iterator[Any]:
    from service.main import create_app

    application = create_app(settings)
    yield application
    application.state.lightsearch.db.dispose()


@pytest.fixture
def db(app: Any) -> Any:
    return app.state.lightsearch.db


@pytest.fixture
def client(app: Any) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    with TestClient(app) as c:
        yield c


def make_token(db: Any, user: str, *, admin: bool = False) -> str:
    from service import crud

    with db.write_session() as session:
        _user, token = crud.create_token(session, user, admin=admin)
    return token


@pytest.fixture
def tokens(db: Any) -> dict[str, str]:
    return {"alice": make_token(db, "alice"), "bob": make_token(db, "bob"),
            "root": make_token(db, "root", admin=True)}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def job_spec(**over: Any) -> dict[str, Any]:
    """A small two-objective NB201 job (table look-ups, in-process)."""
    spec: dict[str, Any] = {
        "name": "svc-test", "agent": {"name": "random"},
        "evaluator": {"name": "tabular", "options": {"table": "nb201", "signal": "val_acc"}},
        "profilers": [{"name": "lut:pixel3"}],
        "objectives": [{"metric": "val_acc", "direction": "max"},
                       {"metric": "pixel3_latency", "direction": "min"}],
        "budget": {"evaluations": 40}, "executor": {"name": "local", "batch_size": 8},
        "seed": 0,
    }
    spec.update(over)
    return spec


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    env["LIGHTSEARCH_PLUGINS"] = PLUGINS
    env["LIGHTSEARCH_TORCH_THREADS"] = "1"
    env.update(extra)
    return env


PYTHON = sys.executable


def wait_for(predicate: Any, timeout: float = 60.0, interval: float = 0.05) -> Any:
    """Poll until ``predicate()`` is truthy; its value, or AssertionError on timeout."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(interval)


class RunningWorker:
    """A ``Worker`` on a thread; ``stop()`` hands its jobs back and joins it."""

    def __init__(self, settings: Any, db: Any = None, worker_id: str | None = None) -> None:
        import threading

        from service.worker import Worker

        self.worker = Worker(settings, db=db, worker_id=worker_id)
        self.thread = threading.Thread(target=self.worker.run, daemon=True)
        self.thread.start()

    def stop(self, timeout: float = 60.0) -> None:
        self.worker.stop.set()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "worker did not stop"


@pytest.fixture
def start_worker(settings: Any, db: Any) -> Iterator[Any]:
    started: list[RunningWorker] = []

    def start(**over: Any) -> RunningWorker:
        s = settings.model_copy(update=over) if over else settings
        w = RunningWorker(s, db=db)
        started.append(w)
        return w

    yield start
    for w in started:
        w.stop()
