"""Torch's process-wide state, held per job: concurrent jobs in one worker must not see each
other's random draws or thread settings.

Torch keeps one default random generator and one intra-op thread count per process (setting
the count in one thread changes it for all: checked on torch 2.13). A worker runs several jobs
in threads, so:

- ``seeded(seed)``: code that draws from the default generator (building a model: layer
  initializers take no generator) runs under one process-wide lock, inside
  ``torch.random.fork_rng`` seeded with ``seed``; the draws are the same as alone and the
  generator is left as it was. Everything else passes its own ``torch.Generator``.
- ``torch_threads(n)``: a scope in which the process runs ``n`` intra-op threads. Scopes
  asking for the same count run together; one asking for another count waits until they end
  (and new ones with the old count wait behind it), so no job computes with another's count.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

_RNG_LOCK = threading.RLock()
_THREADS = threading.Condition()
_held: dict[str, int | None] = {"n": None, "holders": 0, "saved": None}
_waiting: Counter[int] = Counter()
_local = threading.local()


@contextmanager
def seeded(seed: int) -> Iterator[None]:
    """Draws from torch's default generator as if it had just been seeded with ``seed``,
    unseen by (and unseeing) other threads; the generator is restored afterwards."""
    import torch

    with _RNG_LOCK, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


@contextmanager
def seeded_globals(seed: int) -> Iterator[None]:
    """``seeded`` for code that also draws from numpy's and Python's global generators
    (RLlib): all three seeded for the block and restored after, under the same lock."""
    import random

    import numpy as np

    with seeded(seed):
        np_state, py_state = np.random.get_state(), random.getstate()
        np.random.seed(seed % 2**32)
        random.seed(seed)
        try:
            yield
        finally:
            np.random.set_state(np_state)
            random.setstate(py_state)


@contextmanager
def torch_threads(n: int) -> Iterator[None]:
    """Run the block with ``n`` intra-op threads (see the module docstring)."""
    import torch

    if n < 1:
        raise ValueError(f"threads must be >= 1, got {n}")
    stack: list[int] = _local.__dict__.setdefault("stack", [])
    with _THREADS:
        if stack:  # nested in this thread's own scope
            if n != stack[-1]:
                if _held["holders"] != 1:
                    raise RuntimeError(f"cannot switch to {n} threads inside a {stack[-1]}-"
                                       "thread scope while other jobs hold one")
                torch.set_num_threads(n)
                _held["n"] = n
        else:
            _waiting[n] += 1
            while _held["holders"] and (_held["n"] != n or any(
                    c for k, c in _waiting.items() if k != n)):
                _THREADS.wait()
            _waiting[n] -= 1
            if not _held["holders"]:
                _held["saved"] = torch.get_num_threads()
                torch.set_num_threads(n)
                _held["n"] = n
            _held["holders"] = int(_held["holders"] or 0) + 1
        stack.append(n)
    try:
        yield
    finally:
        with _THREADS:
            stack.pop()
            if stack:
                if stack[-1] != n:
                    torch.set_num_threads(stack[-1])
                    _held["n"] = stack[-1]
            else:
                _held["holders"] = int(_held["holders"] or 0) - 1
                if not _held["holders"]:
                    torch.set_num_threads(int(_held["saved"] or 1))
                    _held["n"] = None
                _THREADS.notify_all()
