"""The two look-ups every API request makes, in hand-written SQL on held driver connections.

Each request checks its token and, on the job routes, the job's owner and version (the
response cache's key). Through an ORM session each costs a pool checkout (and on PostgreSQL a
pre-ping round trip), ``BEGIN`` and a rollback: about 0.2 ms on SQLite and 1 ms on PostgreSQL,
more than the rest of a cached answer. Here each is one indexed ``SELECT`` on a connection
that the calling thread keeps, in autocommit mode (a single statement is its own consistent
snapshot): a few microseconds on SQLite, one round trip on PostgreSQL. So the token is read
from the database on every request, and a revoked token fails at once in every process.

A connection that errors (database restarted, network) is thrown away and the statement
retried once on a new one; a second failure propagates (``threadconn``).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Engine

from service.core.security import Principal
from service.core.threadconn import PerThreadConnections


class JobVersion(NamedTuple):
    id: str
    owner_id: int
    updated_at: Any  # opaque: compared for equality only
    n_trials: int  # read with the version: a trials page needs no second read of the job


class HotReads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = engine.dialect.name == "sqlite"
        ph = "?" if self.sqlite else "%s"
        self._token_sql = (
            "SELECT users.id, users.name, users.is_admin FROM api_tokens "
            "JOIN users ON users.id = api_tokens.user_id "
            f"WHERE api_tokens.token_hash = {ph} AND api_tokens.revoked_at IS NULL")
        self._job_sql = f"SELECT id, owner_id, updated_at, n_trials FROM jobs WHERE id = {ph}"
        self._both_sql = (
            "SELECT users.id, users.name, users.is_admin, jobs.id, jobs.owner_id, "
            "jobs.updated_at, jobs.n_trials "
            "FROM api_tokens JOIN users ON users.id = api_tokens.user_id "
            f"LEFT JOIN jobs ON jobs.id = {ph} "
            f"WHERE api_tokens.token_hash = {ph} AND api_tokens.revoked_at IS NULL")
        self._conns: PerThreadConnections[Any] = PerThreadConnections(self._open)

    def principal(self, token_hash: str) -> Principal | None:
        """The user of a live (not revoked) token, by its SHA-256 digest."""
        row = self._one(self._token_sql, (token_hash,))
        return Principal(int(row[0]), row[1], bool(row[2])) if row is not None else None

    def job_version(self, job_id: str) -> JobVersion | None:
        if len(job_id) > 32:  # longer than any id (and than the column on PostgreSQL)
            return None
        row = self._one(self._job_sql, (job_id,))
        return JobVersion(row[0], int(row[1]), row[2], int(row[3])) if row is not None else None

    def principal_and_job(self, token_hash: str,
                          job_id: str) -> tuple[Principal | None, JobVersion | None]:
        """Both look-ups in one statement (one round trip on PostgreSQL): the job routes."""
        if len(job_id) > 32:
            return self.principal(token_hash), None
        row = self._one(self._both_sql, (job_id, token_hash))
        if row is None:
            return None, None
        job = JobVersion(row[3], int(row[4]), row[5], int(row[6])) if row[3] is not None else None
        return Principal(int(row[0]), row[1], bool(row[2])), job

    def _one(self, sql: str, params: tuple[Any, ...]) -> Any:
        def fetch(conn: Any) -> Any:
            cur = conn.cursor()
            try:
                cur.execute(sql, params)
                return cur.fetchone()
            finally:
                cur.close()
        return self._conns.run(fetch)

    def _open(self) -> Any:
        conn = self.engine.raw_connection()  # held by one thread until close()
        if not self.sqlite:  # SQLite connections already run without BEGIN (core.db)
            conn.driver_connection.autocommit = True
        return conn

    def close(self) -> None:
        """Close every held connection (the app is shutting down)."""
        self._conns.close()
