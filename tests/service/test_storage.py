"""Storage on both backends: migrations match the models, SQLite runs in WAL mode with a
busy timeout, and API and worker writes interleave without 'database is locked'."""

from __future__ import annotations

import threading
import time

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from search.spec import parse_spec
from service import crud
from service.core.db import Database
from service.core.security import Principal
from service.migrations import current_revision, head_revision, upgrade
from service.models import Base


def test_migrations_match_the_models(db):
    assert current_revision(db.engine) == head_revision()
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
    tables = set(inspect(db.engine).get_table_names())
    assert {"users", "api_tokens", "jobs", "trials", "checkpoints",
            "hypervolume_points"} <= tables
    upgrade(db.engine)  # idempotent


def test_downgrade_to_base_and_back(db):
    from alembic import command

    from service.migrations import alembic_config

    cfg = alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    assert "jobs" not in inspect(db.engine).get_table_names()
    upgrade(db.engine)
    assert "jobs" in inspect(db.engine).get_table_names()


def test_sqlite_pragmas(tmp_path):
    db = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}", busy_timeout_ms=12_345)
    with db.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 12_345
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    db.dispose()


def test_concurrent_writers_share_the_database(db, settings):
    """Job creations (API) and cancels race against each other from several connections."""
    with db.write_session() as session:
        user, _ = crud.create_token(session, "writer")
    owner = Principal(user.id, user.name)
    errors: list[BaseException] = []

    def writer(n: int) -> None:
        own = Database.from_url(settings.url, pool_size=2)
        try:
            for i in range(15):
                with own.write_session() as session:
                    job = crud.create_job(session, owner, parse_spec({"name": f"w{n}-{i}"}))
                with own.write_session() as session:
                    crud.cancel_job(session, owner, job.id)
        except BaseException as err:  # noqa: BLE001 - reported below
            errors.append(err)
        finally:
            own.dispose()

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    with db.reading() as session:
        jobs, count = crud.list_jobs(session, owner, status="cancelled", limit=100)
    assert count == 60


def test_hot_path_leaves_wal_checkpoints_to_the_worker(tmp_path):
    """Trial writes do not checkpoint (it waits on fsync); ``checkpoint_wal`` does."""
    from service.fastpath import RawWriter

    db = Database.from_url(f"sqlite:///{tmp_path / 'x.db'}")
    upgrade(db.engine)
    writer = RawWriter(db.engine)
    with writer.transaction() as tx:
        tx.cur.execute("INSERT INTO users (name, is_admin, created_at) VALUES "
                       "('u', 0, '2026-01-01 00:00:00.000000')")
    for i in range(3000):  # well past SQLite's automatic checkpoint at 1,000 pages
        with writer.transaction() as tx:
            tx.cur.execute("UPDATE users SET name = ? WHERE id = 1", (f"u{i}" * 200,))
    busy, frames, done = db.checkpoint_wal()
    assert busy == 0 and frames >= 3000 and done == frames
    writer.close()
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == 1000
    db.dispose()


def test_reads_survive_a_dropped_postgresql_connection(pg_url, pg_admin):
    """The API's cached reads keep a connection per thread; when PostgreSQL drops it (a
    restart, a network cut) the next read reconnects instead of failing."""
    db = Database.from_url(pg_url)
    upgrade(db.engine)
    try:
        pid = db.read(lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar())
        assert db.read(lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar()) == pid
        with pg_admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": pid}).scalar()
        time.sleep(0.2)
        again = db.read(lambda s: s.execute(text("SELECT pg_backend_pid()")).scalar())
        assert again != pid
        # autocommit: nothing is left open between reads (no idle-in-transaction backend)
        with pg_admin.connect() as conn:
            state = conn.execute(text("SELECT state FROM pg_stat_activity WHERE pid = :p"),
                                 {"p": again}).scalar()
        assert state == "idle"
    finally:
        db.dispose()
