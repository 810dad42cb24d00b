"""What several benchmark scripts share: a job in a fresh process, and the 95% t-interval."""

from __future__ import annotations

import math
import multiprocessing as mp
from collections.abc import Callable
from typing import Any

import numpy as np


def mean_ci(values: list[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% t-interval (nan with fewer than two values)."""
    from scipy import stats

    a = np.asarray(values, float)
    if len(a) < 2:
        return (float(a.mean()) if len(a) else math.nan), math.nan
    return float(a.mean()), float(stats.t.ppf(0.975, len(a) - 1) * a.std(ddof=1)
                                  / math.sqrt(len(a)))


def _child(queue: Any, fn: Callable[..., dict[str, Any]], args: tuple[Any, ...],
           failed: dict[str, Any]) -> None:
    try:
        queue.put(fn(*args))
    except Exception as err:  # noqa: BLE001 - reported in the table, the benchmark goes on
        queue.put({**failed, "error": repr(err)})


def in_fresh_process(fn: Callable[..., dict[str, Any]], *args: Any,
                     failed: dict[str, Any] | None = None) -> dict[str, Any]:
    """``fn(*args)`` in a forked process (its own peak memory); an exception comes back as
    ``{**failed, "error": ...}``."""
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(queue, fn, args, failed or {}))
    proc.start()
    out = queue.get()
    proc.join()
    return out
