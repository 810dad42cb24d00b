"""One latency measurement at a time on this machine, whatever process or job makes it.

Two jobs that time models on the same cores at the same moment slow each other down and
record it as the models' latency. Every measurement (``measured.measure_interleaved``: the
measured profilers, the latency predictor's tables, compression and export measurements)
holds this slot: an exclusive ``flock`` on one file per host (``LIGHTSEARCH_MEASURE_LOCK``,
default ``<tmp>/lightsearch-measure.lock``), which serializes threads of one worker (each
open of the file is its own lock holder) and separate processes (other workers, Ray workers)
alike. The kernel drops the lock when a holder dies, so a killed job never blocks the host.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def lock_path() -> Path:
    return Path(os.environ.get("LIGHTSEARCH_MEASURE_LOCK")
                or Path(tempfile.gettempdir()) / "lightsearch-measure.lock")


@contextmanager
def measurement_slot() -> Iterator[float]:
    """Hold the host's measurement slot for the block; yields the seconds spent waiting."""
    start = time.perf_counter()
    path = lock_path()
    with open(path, "a+b") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield time.perf_counter() - start
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)
