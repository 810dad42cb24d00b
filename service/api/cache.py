"""Serialized answers of a job's read routes, reused while the job has not changed.

Every write that changes what these routes show (a stored trial, its front flags and
hypervolume point, a checkpoint, the end of the job, a cancel) also sets ``jobs.updated_at``
in the same transaction, so ``(route, job id, updated_at, query)`` names one answer exactly:
a new trial changes the key and the very next request builds a fresh answer (there is no
window in which a stale one is served). A request still reads the job row first
(``HotReads``: the access check and the current version), so one entry serves every user who
may see the job and never one who may not. Finished jobs, the ones dashboards and scripts
poll most, always hit.

Misses build on the event loop. In the thread pool they were measured slower on both
databases: the builds then contend with the loop for the GIL (SQLite: p99 up from 88 to 165
ms), and on PostgreSQL a burst of cold requests built in parallel all finish late together
(p99 of a 50-request cold burst up from 168 to 208 ms), although half of a build there waits
on the network.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from fastapi.responses import Response
from pydantic import BaseModel


class ResponseCache:
    """A small thread-safe LRU of JSON bodies; ``max_entries=0`` turns it off."""

    def __init__(self, max_entries: int = 256, max_bytes: int = 64_000_000) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self.size = 0
        self._items: OrderedDict[Hashable, bytes] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def respond(self, key: Hashable, build: Callable[[], BaseModel | bytes]) -> Response:
        """The cached body for ``key``, else ``build()``'s (a model, or JSON bytes), stored."""
        body = self._get(key)
        if body is None:
            answer = build()
            body = answer if isinstance(answer, bytes) else answer.model_dump_json().encode()
            self._put(key, body)
        return Response(content=body, media_type="application/json")

    def _get(self, key: Hashable) -> bytes | None:
        if self.max_entries <= 0:
            return None
        with self._lock:
            body = self._items.get(key)
            if body is None:
                self.misses += 1
                return None
            self._items.move_to_end(key)
            self.hits += 1
            return body

    def _put(self, key: Hashable, body: bytes) -> None:
        if self.max_entries <= 0 or len(body) > self.max_bytes // 8:
            return
        with self._lock:
            old = self._items.pop(key, None)
            self.size += len(body) - (len(old) if old is not None else 0)
            self._items[key] = body
            while len(self._items) > self.max_entries or self.size > self.max_bytes:
                _, dropped = self._items.popitem(last=False)
                self.size -= len(dropped)
