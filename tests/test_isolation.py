"""Jobs in one process keep to themselves: seeded scopes give the same weights as alone while
other threads build too, training with dropout is the same alone and side by side, thread
counts are held per scope, and latency measurements never overlap (threads or processes)."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from search.datasets import Dataset
from search.evaluators.train import TrainConfig, train_model
from search.profilers import hostlock
from search.profilers.measured import measure_interleaved
from spaces.isolation import seeded, seeded_globals, torch_threads

REPO = Path(__file__).resolve().parents[1]


def _net(seed: int) -> nn.Module:
    with seeded(seed):
        return nn.Sequential(nn.Linear(32, 64), nn.ReLU(), nn.Linear(64, 10))


def _flat(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def _side_by_side(fns: list[Any]) -> list[Any]:
    """Run each callable in its own thread, started together; their results in order."""
    out: list[Any] = [None] * len(fns)
    barrier = threading.Barrier(len(fns))

    def run(i: int) -> None:
        barrier.wait()
        out[i] = fns[i]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(fns))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    return out


def test_seeded_builds_match_alone_while_other_threads_build() -> None:
    alone = {s: _flat(_net(s)) for s in (1, 2, 3)}
    torch.manual_seed(777)
    state = torch.get_rng_state()
    results = _side_by_side([lambda s=s: [_flat(_net(s)) for _ in range(30)] for s in (1, 2, 3)])
    for s, runs in zip((1, 2, 3), results, strict=True):
        assert all(torch.equal(r, alone[s]) for r in runs)
    assert torch.equal(torch.get_rng_state(), state)  # the process generator is untouched


def _tiny_data() -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 1, 4, 4)).astype(np.float32)
    y = (x.reshape(240, -1).sum(1) > 0).astype(np.int64)
    return Dataset("tiny", x[:160], y[:160], x[160:200], y[160:200], x[200:], y[200:],
                   ["neg", "pos"])


def _train(seed: int, data: Dataset) -> tuple[float, list[float], torch.Tensor]:
    with seeded(seed):
        model = nn.Sequential(nn.Flatten(), nn.Linear(16, 32), nn.ReLU(), nn.Dropout(0.5),
                              nn.Linear(32, 2))
    result = train_model(model, data, TrainConfig(epochs=3, batch_size=16, lr=0.05,
                                                  bn_batches=0), seed=seed)
    assert any(type(m) is nn.Dropout for m in model.modules())  # swapped back after training
    return result.train_loss, result.val_curve, _flat(result.model)


def test_seeded_globals_draws_are_reproducible_restored_and_exclusive() -> None:
    """RLlib draws from numpy's, Python's and torch's globals: its blocks repeat their draws,
    leave the globals as they were, and exclude every other job's seeded block."""
    import random

    def draws() -> tuple[float, float, float]:
        return float(np.random.rand()), random.random(), float(torch.rand(1))

    np.random.seed(7)
    random.seed(7)
    before = (np.random.get_state()[1][:4].tolist(), random.getstate()[1][:4])
    with seeded_globals(3):
        first = draws()
    with seeded_globals(3):
        assert draws() == first
    assert (np.random.get_state()[1][:4].tolist(), random.getstate()[1][:4]) == before

    inside, order = threading.Event(), []

    def other_job() -> None:
        inside.wait(5)
        with seeded(0):
            order.append("other")

    t = threading.Thread(target=other_job)
    t.start()
    with seeded_globals(3):
        inside.set()
        time.sleep(0.2)  # the other job's seeded block must wait for this one
        order.append("rllib")
    t.join(5)
    assert order == ["rllib", "other"]


def test_training_with_dropout_is_the_same_alone_and_side_by_side() -> None:
    data = _tiny_data()
    alone = [_train(s, data) for s in (5, 6)]
    assert not torch.equal(alone[0][2], alone[1][2])
    for _ in range(2):
        together = _side_by_side([lambda s=s: _train(s, data) for s in (5, 6)])
        for a, b in zip(alone, together, strict=True):
            assert a[0] == b[0] and a[1] == b[1] and torch.equal(a[2], b[2])


def test_thread_counts_are_held_per_scope() -> None:
    before = torch.get_num_threads()
    held, release, seen = threading.Event(), threading.Event(), {}

    def holder() -> None:
        with torch_threads(1):
            held.set()
            release.wait(10)
            seen["holder"] = torch.get_num_threads()

    def other() -> None:
        t0 = time.monotonic()
        with torch_threads(2):
            seen["waited"] = time.monotonic() - t0
            seen["other"] = torch.get_num_threads()

    a = threading.Thread(target=holder)
    a.start()
    assert held.wait(10)
    b = threading.Thread(target=other)
    b.start()
    time.sleep(0.3)  # b asks for 2 threads while a holds 1: it must wait
    assert "other" not in seen and torch.get_num_threads() == 1
    release.set()
    a.join(10)
    b.join(10)
    assert seen["holder"] == 1 and seen["other"] == 2 and seen["waited"] >= 0.25
    assert torch.get_num_threads() == before
    with torch_threads(1), torch_threads(1):  # nesting with the same count is fine
        assert torch.get_num_threads() == 1


def test_measurements_never_overlap_between_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    spans: list[tuple[str, float, float]] = []
    real = hostlock.measurement_slot

    from contextlib import contextmanager

    @contextmanager
    def recording() -> Any:
        with real() as waited:
            start = time.perf_counter()
            yield waited
            spans.append((threading.current_thread().name, start, time.perf_counter()))

    monkeypatch.setattr(hostlock, "measurement_slot", recording)
    x = torch.randn(1, 64)
    layer = nn.Linear(64, 64)

    def job() -> None:
        for _ in range(5):
            measure_interleaved([lambda: layer(x)], warmup=1, rounds=2, repeats=20)

    _side_by_side([job, job])
    assert len(spans) == 10 and len({s[0] for s in spans}) == 2
    spans.sort(key=lambda s: s[1])
    assert all(a[2] <= b[1] for a, b in zip(spans, spans[1:], strict=False))


def test_the_slot_is_exclusive_across_processes(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    lock = tmp_path / "measure.lock"
    monkeypatch.setenv("LIGHTSEARCH_MEASURE_LOCK", str(lock))
    code = ("import sys, time; from search.profilers import hostlock\n"
            "with hostlock.measurement_slot():\n"
            "    print('held', flush=True); time.sleep(1.0)\n")
    child = subprocess.Popen([sys.executable, "-c", code], cwd=REPO, stdout=subprocess.PIPE,
                             text=True, env={**_env(), "LIGHTSEARCH_MEASURE_LOCK": str(lock)})
    assert child.stdout is not None and child.stdout.readline().strip() == "held"
    with hostlock.measurement_slot() as waited:
        assert waited >= 0.5  # the other process held it
    assert child.wait(10) == 0


def _env() -> dict[str, str]:
    import os

    return {**os.environ, "PYTHONPATH": str(REPO)}
