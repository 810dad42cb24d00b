"""Database engines: embedded SQLite (WAL, shared by API and workers) or PostgreSQL by URL.

SQLite allows one writer at a time. A transaction that reads and then writes can fail at once
with SQLITE_BUSY when another connection committed in between (WAL snapshot rule), and the busy
timeout does not help there. So write sessions start with ``BEGIN IMMEDIATE`` (they queue on
the busy timeout instead), while read sessions use plain deferred transactions that never
block in WAL mode. On PostgreSQL both are ordinary transactions.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from service.core.hotreads import HotReads
from service.core.threadconn import PerThreadConnections

T = TypeVar("T")


def finite_json(value: Any) -> Any:
    """A copy with NaN and infinities replaced by None (strict JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): finite_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite_json(v) for v in value]
    return value


def _std_dumps(value: Any) -> str:
    try:
        return json.dumps(value, allow_nan=False, separators=(",", ":"), default=str)
    except ValueError:
        return json.dumps(finite_json(value), allow_nan=False, separators=(",", ":"), default=str)


try:  # several times faster, and writes NaN and infinities as null by itself
    import orjson

    _ORJSON_OPTS = orjson.OPT_NON_STR_KEYS | orjson.OPT_SERIALIZE_NUMPY

    def json_dumps(value: Any) -> str:
        """JSON for the database: NaN and infinities become null (PostgreSQL rejects them)."""
        try:
            return orjson.dumps(value, default=str, option=_ORJSON_OPTS).decode()
        except TypeError:  # e.g. integers beyond 64 bits
            return _std_dumps(value)

    def json_loads(text: str | bytes) -> Any:
        """JSON from the database, several times faster than ``json.loads`` (trial pages
        decode five JSON columns a row); rows an old writer stored with NaN still load."""
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError:
            return json.loads(text)
except ImportError:  # pragma: no cover - orjson is optional
    json_dumps = _std_dumps
    json_loads = json.loads


def normalize_url(url: str) -> str:
    """``postgresql://`` means psycopg 3 here (psycopg2 is not a dependency)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(engine_or_url: Engine | str) -> bool:
    url = engine_or_url.url if isinstance(engine_or_url, Engine) else make_url(engine_or_url)
    return url.get_backend_name() == "sqlite"


def make_engine(url: str, *, pool_size: int = 20, busy_timeout_ms: int = 30_000) -> Engine:
    url = normalize_url(url)
    if is_sqlite(url):
        database = make_url(url).database
        if not database or database == ":memory:":
            raise ValueError("the service needs a SQLite file (API and workers share it), "
                             f"got {url!r}")
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, json_serializer=json_dumps, json_deserializer=json_loads,
            pool_size=pool_size, max_overflow=pool_size,
            connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        )
        _sqlite_events(engine, busy_timeout_ms)
        return engine
    return create_engine(url, json_serializer=json_dumps, json_deserializer=json_loads,
                         pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def _sqlite_events(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we emit BEGIN ourselves (below)
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cur.execute("PRAGMA foreign_keys=ON")
        # WAL + NORMAL: a commit survives a process crash (SIGKILL); only an OS crash or power
        # loss may drop the last commits, never corrupt the file.
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        immediate = conn.get_execution_options().get("sqlite_immediate", False)
        # Straight to the driver: this runs for every transaction (one per stored trial).
        conn.connection.driver_connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")


# The tables a job writes as it runs (see ``refresh_statistics``).
STATISTICS_TABLES = ("jobs", "trials", "trial_metrics", "hypervolume_points")


class Database:
    """An engine with a read and a write session factory."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.writer = engine.execution_options(sqlite_immediate=True)
        self.read_session = sessionmaker(engine, expire_on_commit=False)
        self.write_session = sessionmaker(self.writer, expire_on_commit=False)
        self.hot = HotReads(engine)
        self._read_conns = PerThreadConnections(self._open_read_connection)

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(make_engine(url, **kwargs))

    @property
    def sqlite(self) -> bool:
        return is_sqlite(self.engine)

    @contextmanager
    def reading(self) -> Iterator[Session]:
        with self.read_session() as session:
            yield session

    @contextmanager
    def writing(self) -> Iterator[Session]:
        """A session that commits on success and rolls back on error."""
        with self.write_session() as session, session.begin():
            yield session

    def checkpoint_wal(self) -> tuple[int, int, int]:
        """Copy committed WAL pages into the database file without blocking anyone; returns
        SQLite's (busy, frames in the WAL, frames checkpointed)."""
        raw = self.engine.raw_connection()  # autocommit: no transaction around the pragma
        try:
            row = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        finally:
            raw.close()
        return int(row[0]), int(row[1]), int(row[2])

    def read(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` on a read-only session: the API's cached read routes.

        On PostgreSQL the session runs on a connection the calling thread keeps, in autocommit
        mode. A pooled session costs three round trips besides the queries (pre-ping, BEGIN
        and ROLLBACK); here there are none. Each statement then sees its own snapshot, which
        those routes allow: their answers are never older than the job version checked
        before. A connection that fails is dropped and ``fn`` retried once on a new one.
        On SQLite: an ordinary read session (in-process, without such round trips)."""
        if self.sqlite:
            with self.reading() as session:
                return fn(session)

        def on(conn: Connection) -> T:
            with Session(bind=conn, expire_on_commit=False) as session:
                return fn(session)
        return self._read_conns.run(on, retry_on=(DBAPIError,))

    def _open_read_connection(self) -> Connection:
        return self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")

    def refresh_statistics(self, *, vacuum: bool = False) -> None:
        """PostgreSQL: ``ANALYZE`` (or, with ``vacuum``, ``VACUUM``) the tables a job writes;
        a no-op on SQLite.

        Right after a job stores thousands of trials, autovacuum has not run yet: the planner
        still thinks the job has a few dozen rows and sorts a heap scan for a trials page
        (10.7 ms for a page of a 10,000-trial job) instead of walking the index (2.0 ms after
        ``ANALYZE``, which reads a fixed-size sample; 0.6 ms after ``VACUUM`` marks the pages
        all-visible, so that the index alone answers)."""
        if self.sqlite:
            return
        raw = self.engine.raw_connection()
        try:
            conn = raw.driver_connection
            conn.autocommit = True  # VACUUM cannot run inside a transaction
            for table in STATISTICS_TABLES:
                conn.execute(f"{'VACUUM' if vacuum else 'ANALYZE'} {table}")
        finally:
            raw.invalidate()  # never back to the pool in autocommit mode

    def dispose(self) -> None:
        self.hot.close()
        self._read_conns.close()
        self.engine.dispose()
