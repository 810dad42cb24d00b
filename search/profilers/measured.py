"""Latency measured on this machine, with PyTorch (eager) or ONNX Runtime, on the CPU.

Protocol (one thread, batch 1 by default): a warm-up, then ``rounds`` rounds of ``repeats``
timed calls each. On a shared machine a model's median moves 1.3-1.9x between processes while
the minimum over rounds moves ~1.1x, so ``<prefix>_latency_ms`` is the minimum over rounds of
each round's median; the median of every timed call and the spread (interquartile range over
median) are reported beside it. ``measure_interleaved`` times several models round-robin, so
slow drifts of the machine hit them all alike (the latency predictor's tables use it).

The clock: with one thread (the default) a call is timed by the thread's CPU time
(``time.thread_time``), which on an idle core equals the wall time of a single-threaded
inference, but does not count the time the scheduler gives other processes, so on a shared
machine it stays within ~10-20% where wall-clock figures triple. With several threads the
work runs on other threads too, so the wall clock is used. ``clock`` overrides the choice.

Results are cached by architecture key: a profiler measures an architecture once.

Concurrent jobs: every measurement holds the host's measurement slot (``hostlock``), and the
thread count and model weights are set in per-job scopes (``spaces.isolation``).
"""

from __future__ import annotations

import io
import os
import platform
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from search.base import Profiler
from search.profilers import hostlock
from spaces.base import Architecture, Space
from spaces.isolation import seeded, torch_threads

if TYPE_CHECKING:
    import torch
    from torch import nn

BACKENDS = {"torch": "torch", "onnxruntime": "ort"}  # backend -> metric prefix


@dataclass
class LatencyStats:
    """One model's timings in milliseconds."""

    min_ms: float  # minimum over rounds of the round medians: the reported latency
    median_ms: float  # median of every timed call
    spread: float  # interquartile range / median of every timed call
    round_medians: list[float]
    fastest_ms: float = float("nan")  # the fastest single call

    def value(self, statistic: str = "min_of_medians") -> float:
        """The figure a profiler reports: ``min_of_medians`` (default), ``median`` or
        ``min`` (the fastest call)."""
        if statistic not in STATISTICS:
            raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
        return {"min_of_medians": self.min_ms, "median": self.median_ms,
                "min": self.fastest_ms}[statistic]

    def as_metrics(self, prefix: str, statistic: str = "min_of_medians") -> dict[str, float]:
        return {f"{prefix}_latency_ms": self.value(statistic),
                f"{prefix}_latency_median_ms": self.median_ms,
                f"{prefix}_latency_spread": self.spread}


STATISTICS = ("min_of_medians", "median", "min")


CLOCKS: dict[str, Callable[[], float]] = {"cpu": time.thread_time, "wall": time.perf_counter}


def default_clock(threads: int) -> str:
    return "cpu" if threads == 1 else "wall"


def measure_interleaved(fns: Sequence[Callable[[], Any]], *, warmup: int = 5, rounds: int = 5,
                        repeats: int = 10, clock: str = "cpu") -> list[LatencyStats]:
    """Time each callable ``rounds x repeats`` times, round-robin across callables."""
    if rounds < 1 or repeats < 1 or warmup < 0:
        raise ValueError(f"need rounds >= 1, repeats >= 1, warmup >= 0; got rounds={rounds}, "
                         f"repeats={repeats}, warmup={warmup}")
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {list(CLOCKS)}, got {clock!r}")
    samples = [[[0.0] * repeats for _ in range(rounds)] for _ in fns]
    timer = CLOCKS[clock]
    with hostlock.measurement_slot():  # never at the same time as another measurement
        for fn in fns:
            for _ in range(warmup):
                fn()
        for r in range(rounds):
            for i, fn in enumerate(fns):
                row = samples[i][r]
                for k in range(repeats):
                    t0 = timer()
                    fn()
                    row[k] = (timer() - t0) * 1e3
    out = []
    for per_fn in samples:
        arr = np.asarray(per_fn)
        medians = np.median(arr, axis=1)
        q1, med, q3 = np.percentile(arr, [25, 50, 75])
        out.append(LatencyStats(float(medians.min()), float(med), float((q3 - q1) / med),
                                [float(m) for m in medians], float(arr.min())))
    return out


def measure(fn: Callable[[], Any], **kwargs: Any) -> LatencyStats:
    return measure_interleaved([fn], **kwargs)[0]


# ---- runners: a zero-argument callable that runs one inference ---------------------------
def torch_runner(model: nn.Module, x: torch.Tensor) -> Callable[[], Any]:
    import torch

    model.eval()

    def run() -> Any:
        with torch.inference_mode():
            return model(x)

    return run


def onnx_bytes(model: nn.Module, x: torch.Tensor, opset: int = 17,
               dynamic_batch: bool = False) -> bytes:
    """The model as ONNX (TorchScript-based exporter: ~50 ms for a small model, where the
    dynamo exporter takes seconds)."""
    import torch

    model.eval()
    buf = io.BytesIO()
    axes = {"input": {0: "batch"}, "logits": {0: "batch"}} if dynamic_batch else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), buf, dynamo=False, opset_version=opset,
                          input_names=["input"], output_names=["logits"], dynamic_axes=axes)
    return buf.getvalue()


def ort_session(model: bytes | str, threads: int = 1,
                providers: Sequence[str] = ("CPUExecutionProvider",)) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    return ort.InferenceSession(model, opts, providers=list(providers))


def ort_runner(session: Any, x: np.ndarray) -> Callable[[], Any]:
    name = session.get_inputs()[0].name
    feed = {name: np.ascontiguousarray(x, dtype=np.float32)}

    def run() -> Any:
        return session.run(None, feed)

    return run


#: Torch's intra-op threads for a block, scoped to the job (``spaces.isolation``).
threads_set = torch_threads


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def device_info(backend: str, threads: int) -> dict[str, Any]:
    import torch

    info = {"cpu": cpu_name(), "cpus": os.cpu_count(), "platform": platform.platform(),
            "python": platform.python_version(), "torch": torch.__version__,
            "backend": backend, "threads": threads}
    if backend == "onnxruntime":
        import onnxruntime

        info["onnxruntime"] = onnxruntime.__version__
    return info


def model_runner(backend: str, model: nn.Module, input_shape: Sequence[int], batch_size: int,
                 threads: int) -> Callable[[], Any]:
    """A runner for ``model`` on a fixed random input of ``(batch_size, *input_shape)``."""
    import torch

    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0))
    if backend == "torch":
        return torch_runner(model, x)
    if backend == "onnxruntime":
        return ort_runner(ort_session(onnx_bytes(model, x), threads), x.numpy())
    raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")


def check_measurement(backend: str, input_shape: Sequence[int], threads: int, rounds: int,
                      clock: str | None, statistic: str) -> str:
    """Validate the options every latency measurement shares; returns the clock to use."""
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {list(STATISTICS)}, got {statistic!r}")
    clock = clock or default_clock(threads)
    if clock not in CLOCKS:
        raise ValueError(f"clock must be one of {list(CLOCKS)}, got {clock!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {list(BACKENDS)}, got {backend!r}")
    if len(input_shape) != 3 or min(input_shape) < 1:
        raise ValueError(f"input_shape must be (channels, height, width), got "
                         f"{list(input_shape)}")
    if rounds < 5:
        raise ValueError(f"rounds must be >= 5 (the minimum over rounds is the figure), "
                         f"got {rounds}")
    return clock


class MeasuredLatencyProfiler(Profiler):
    """``<prefix>_latency_ms`` (+ median, spread) of the built model on this machine's CPU."""

    def __init__(self, backend: str = "torch", input_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10, batch_size: int = 1, threads: int = 1, warmup: int = 5,
                 rounds: int = 5, repeats: int = 10, clock: str | None = None,
                 statistic: str = "min_of_medians") -> None:
        clock = check_measurement(backend, input_shape, threads, rounds, clock, statistic)
        for name, v in (("num_classes", num_classes - 1), ("batch_size", batch_size),
                        ("threads", threads), ("repeats", repeats), ("warmup", warmup + 1)):
            if v < 1:
                raise ValueError(f"{name} is too small: {v}")
        self.backend, self.prefix = backend, BACKENDS[backend]
        self.name = "torch-cpu" if backend == "torch" else "onnxruntime"
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes, self.batch_size, self.threads = num_classes, batch_size, threads
        self.warmup, self.rounds, self.repeats = warmup, rounds, repeats
        self.clock, self.statistic = clock, statistic
        self._cache: dict[str, dict[str, float]] = {}

    def metrics(self) -> list[str]:
        return list(LatencyStats(0, 0, 0, []).as_metrics(self.prefix))

    def measure_model(self, model: nn.Module) -> LatencyStats:
        with threads_set(self.threads):
            run = model_runner(self.backend, model, self.input_shape, self.batch_size,
                               self.threads)
            return measure(run, warmup=self.warmup, rounds=self.rounds, repeats=self.repeats,
                           clock=self.clock)

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        key = f"{space.name}:{space.key(arch)}"
        if key not in self._cache:
            build = getattr(space, "build_model", None)
            if build is None:
                raise TypeError(f"profiler {self.name!r} measures PyTorch models; space "
                                f"{space.name!r} does not build them")
            with seeded(0):  # the same weights in any job, other jobs' draws untouched
                model = build(arch, self.input_shape, self.num_classes)
            self._cache[key] = self.measure_model(model).as_metrics(self.prefix, self.statistic)
        return dict(self._cache[key])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "metrics": self.metrics(),
            "device": device_info(self.backend, self.threads),
            "input_shape": list(self.input_shape), "batch_size": self.batch_size,
            "protocol": {"warmup": self.warmup, "rounds": self.rounds,
                         "repeats": self.repeats, "clock": self.clock,
                         "statistic": self.statistic,
                         "latency_ms": {"min_of_medians": "minimum over rounds of each round's "
                                                          "median", "median": "median of every "
                                        "call", "min": "the fastest call"}[self.statistic],
                         "spread": "interquartile range / median over every timed call"},
            "units": {f"{self.prefix}_latency_ms": "ms",
                      f"{self.prefix}_latency_median_ms": "ms",
                      f"{self.prefix}_latency_spread": "ratio"},
        }
