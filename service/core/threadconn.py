"""Connections kept one per thread, for reads that must not pay for a pool checkout.

The API's hot reads (``HotReads``) and its cached answers (``Database.read``) each keep a
connection per thread, in autocommit mode, so they never go back to the pool. A connection
that errors (database restarted, network) is thrown away and the work retried once on a new
one; a second failure propagates.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, TypeVar

C = TypeVar("C")
T = TypeVar("T")


class PerThreadConnections(Generic[C]):
    """``open()`` is called once per thread; every connection it made is closed by
    ``close()``. Connections need an ``invalidate()`` (SQLAlchemy's pooled driver connections
    and ``Connection`` both have one): autocommit connections must never rejoin the pool."""

    def __init__(self, open_connection: Callable[[], C]) -> None:
        self._open = open_connection
        self._local = threading.local()
        self._held: list[C] = []
        self._lock = threading.Lock()
        self.closed = False

    def run(self, fn: Callable[[C], T],
            retry_on: tuple[type[BaseException], ...] = (Exception,)) -> T:
        """``fn`` on this thread's connection, retried once on a new one if it raises one of
        ``retry_on``."""
        for attempt in (0, 1):
            conn = self._connection()
            try:
                return fn(conn)
            except retry_on:
                self._discard(conn)
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def _connection(self) -> C:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self.closed:
                raise RuntimeError("the database was closed")
            conn = self._open()
            self._local.conn = conn
            with self._lock:
                self._held.append(conn)
        return conn

    def _discard(self, conn: C) -> None:
        self._local.conn = None
        with self._lock:
            if conn in self._held:
                self._held.remove(conn)
        _invalidate(conn)

    def close(self) -> None:
        """Close every connection held by any thread (the app is shutting down)."""
        self.closed = True
        with self._lock:
            held, self._held = self._held, []
        for conn in held:
            _invalidate(conn)


def _invalidate(conn: Any) -> None:
    try:
        conn.invalidate()  # never back to the pool (autocommit was switched on)
    except Exception:  # noqa: BLE001, S110 - already broken, or closing anyway
        pass
