"""Per-trial writes in hand-written SQL on one raw driver connection.

A table look-up job stores hundreds of trials a second, each in its own transaction. Through
SQLAlchemy's execution layer a statement costs about ten times the database's own work, so
the sink's hot path (progress update, trial insert, front flags, hypervolume points) sends
plain parameterized SQL to the driver instead. Everything else goes through SQLAlchemy; the
schema stays defined once, in ``models.py`` and the Alembic migrations (the service tests
read every column written here back through the ORM, on SQLite and PostgreSQL).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine

from service.core.db import json_dumps

TRIAL_COLUMNS = ("job_id", "trial_id", "arch", "arch_key", "state", "reward", "metrics",
                 "recorded", "info", "error", "cached", "evaluation_index", "duration_s",
                 "node", "artifacts", "on_front", "created_at")
POINT_COLUMNS = ("job_id", "trial_id", "evaluations", "value", "created_at")
JSON_COLUMNS = frozenset({"arch", "metrics", "recorded", "info", "artifacts", "hv_reference"})
TIME_COLUMNS = frozenset({"created_at", "updated_at"})


class RawTx:
    """The statements of one transaction."""

    def __init__(self, cursor: Any, sqlite: bool) -> None:
        self.cur = cursor
        self.sqlite = sqlite
        self.ph = "?" if sqlite else "%s"

    def _slot(self, column: str) -> str:
        return f"{self.ph}::jsonb" if column in JSON_COLUMNS and not self.sqlite else self.ph

    def _value(self, column: str, value: Any) -> Any:
        if column in JSON_COLUMNS:
            return None if value is None else json_dumps(value)
        if column in TIME_COLUMNS and isinstance(value, datetime) and self.sqlite:
            return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
        return value

    def _in(self, n: int) -> str:
        return ", ".join([self.ph] * n)

    def update_job(self, job_id: str, worker_id: str, attempt: int,
                   values: dict[str, Any]) -> int:
        """Update the job row if this worker still owns it; the number of rows changed."""
        cols = list(values)
        sets = ", ".join(f"{c} = {self._slot(c)}" for c in cols)
        self.cur.execute(
            f"UPDATE jobs SET {sets} WHERE id = {self.ph} AND worker_id = {self.ph} "
            f"AND attempts = {self.ph}",
            [self._value(c, values[c]) for c in cols] + [job_id, worker_id, attempt])
        return int(self.cur.rowcount)

    def insert_trial(self, row: dict[str, Any]) -> None:
        """The trial row, and one ``trial_metrics`` row per finite metric (for sorting)."""
        slots = ", ".join(self._slot(c) for c in TRIAL_COLUMNS)
        values = [json_dumps(row[c]) if c in JSON_COLUMNS else row[c] for c in TRIAL_COLUMNS]
        values[-1] = self._value("created_at", row["created_at"])
        self.cur.execute(f"INSERT INTO trials ({', '.join(TRIAL_COLUMNS)}) VALUES ({slots})",
                         values)
        metrics = [(row["job_id"], row["trial_id"], str(k)[:200], float(v))
                   for k, v in row["metrics"].items()
                   if isinstance(v, int | float) and math.isfinite(v)]
        if metrics:
            self.cur.executemany(
                f"INSERT INTO trial_metrics (job_id, trial_id, name, value) "
                f"VALUES ({self._in(4)})", metrics)

    def delete_trial(self, job_id: str, trial_id: int) -> None:
        for table in ("trials", "trial_metrics"):
            self.cur.execute(
                f"DELETE FROM {table} WHERE job_id = {self.ph} AND trial_id = {self.ph}",
                [job_id, trial_id])

    def set_front(self, job_id: str, trial_ids: Sequence[int], flag: bool) -> None:
        for i in range(0, len(trial_ids), 500):
            part = list(trial_ids[i:i + 500])
            self.cur.execute(
                f"UPDATE trials SET on_front = {self.ph} WHERE job_id = {self.ph} "
                f"AND trial_id IN ({self._in(len(part))})", [flag, job_id, *part])

    def clear_front(self, job_id: str) -> None:
        self.cur.execute(f"UPDATE trials SET on_front = {self.ph} WHERE job_id = {self.ph}",
                         [False, job_id])

    def replace_points(self, job_id: str, rows: Sequence[dict[str, Any]]) -> None:
        self.cur.execute(f"DELETE FROM hypervolume_points WHERE job_id = {self.ph}", [job_id])
        self.insert_points(rows)

    def insert_points(self, rows: Sequence[dict[str, Any]]) -> None:
        if rows:
            slots = ", ".join([self.ph] * len(POINT_COLUMNS))
            self.cur.executemany(
                f"INSERT INTO hypervolume_points ({', '.join(POINT_COLUMNS)}) VALUES ({slots})",
                [[self._value(c, r[c]) for c in POINT_COLUMNS] for r in rows])


class RawWriter:
    """One pooled connection kept for a job's lifetime; ``close()`` returns it.

    On SQLite it does not checkpoint the WAL itself: an automatic checkpoint runs inside the
    commit that crosses 1,000 pages and waits on fsync, which doubled the cost of storing a
    trial. The worker checkpoints in the background instead (``Worker._heartbeat_loop``).
    Commits stay as durable: a WAL commit survives a process crash either way."""

    def __init__(self, engine: Engine) -> None:
        self.sqlite = engine.dialect.name == "sqlite"
        self.proxy = engine.raw_connection()
        self.conn = self.proxy.driver_connection
        if self.sqlite:
            self.conn.execute("PRAGMA wal_autocheckpoint=0")

    @contextmanager
    def transaction(self) -> Iterator[RawTx]:
        cur = self.conn.cursor()
        try:
            if self.sqlite:
                cur.execute("BEGIN IMMEDIATE")  # queue on the write lock (see core.db)
            yield RawTx(cur, self.sqlite)
        except BaseException:
            self.conn.rollback() if not self.sqlite else cur.execute("ROLLBACK")
            raise
        else:
            if self.sqlite:
                cur.execute("COMMIT")
            else:
                self.conn.commit()
        finally:
            cur.close()

    def close(self) -> None:
        if self.sqlite:
            self.conn.execute("PRAGMA wal_autocheckpoint=1000")  # back to the pool as it was
        self.proxy.close()
