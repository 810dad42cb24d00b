"""What several benchmark scripts share: a job in a fresh process, the 95% t-interval, and
the agent's own time per ask and tell."""

from __future__ import annotations

import math
import multiprocessing as mp
import time
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


def time_agent(agent: Any) -> list[float]:
    """Wrap ``agent.ask`` and ``agent.tell`` so their time adds up in the returned one-item
    list (seconds), read after the run: the agent's overhead without the evaluations."""
    spent = [0.0]
    for method in ("ask", "tell"):
        inner = getattr(agent, method)

        def timed(*args: Any, _inner: Any = inner) -> Any:
            t = time.perf_counter()
            try:
                return _inner(*args)
            finally:
                spent[0] += time.perf_counter() - t

        setattr(agent, method, timed)
    return spent
