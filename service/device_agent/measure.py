"""What an agent does with a leased measurement: load the ONNX models, time them in
interleaved rounds (the protocol of ``search.profilers.measured``), read power while each
model runs for energy, describe the device.

Energy, where the device names a power reading (a sysfs file such as
``/sys/class/power_supply/*/power_now`` or a command printing watts): after the latency
rounds each model runs back to back for ``energy_s`` seconds while a thread samples the
power every ``interval_s``; the trapezoid integral of power over the window divided by the
calls made is the energy per inference (the whole board's, idle draw included).
"""

from __future__ import annotations

import os
import platform
import shlex
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from search.profilers.measured import (
    cpu_name,
    default_clock,
    measure_interleaved,
    ort_runner,
    ort_session,
)


@dataclass
class PowerReading:
    """Where the device reads its power draw: a file or a command, times ``scale`` = W."""

    file: str | None = None
    command: str | None = None
    scale: float = 1.0
    interval_s: float = 0.02
    energy_s: float = 1.0

    def __post_init__(self) -> None:
        if (self.file is None) == (self.command is None):
            raise ValueError("a power reading needs exactly one of file or command")
        if self.interval_s <= 0 or self.energy_s <= 0 or self.scale <= 0:
            raise ValueError("power interval, energy window and scale must be > 0")
        self.watts()  # fail at start, not mid-measurement

    def watts(self) -> float:
        if self.file is not None:
            with open(self.file) as fh:
                text = fh.read()
        else:
            text = subprocess.run(shlex.split(self.command or ""), capture_output=True,
                                  text=True, timeout=5, check=True).stdout
        return float(text.strip().split()[0]) * self.scale


def energy_per_call(run: Callable[[], Any], power: PowerReading) -> tuple[float, int]:
    """Run ``run`` back to back for ``power.energy_s`` seconds while sampling power; returns
    (mJ per call, calls)."""
    samples: list[tuple[float, float]] = []
    stop = threading.Event()

    def sample() -> None:
        while True:
            samples.append((time.perf_counter(), power.watts()))
            if stop.wait(power.interval_s):
                samples.append((time.perf_counter(), power.watts()))
                return

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    calls, start = 0, time.perf_counter()
    while calls == 0 or time.perf_counter() - start < power.energy_s:
        run()
        calls += 1
    stop.set()
    thread.join()
    t = np.asarray([s[0] for s in samples])
    w = np.asarray([s[1] for s in samples])
    joules = float(np.sum((w[1:] + w[:-1]) / 2 * np.diff(t))) if len(t) > 1 else 0.0
    return joules * 1e3 / calls, calls


@dataclass
class MeasureConfig:
    """The device's side of the protocol: its threads and execution provider."""

    threads: int = 1
    provider: str = "CPUExecutionProvider"
    power: PowerReading | None = None


def split_models(blob: bytes, sizes: Sequence[int]) -> list[bytes]:
    if sum(sizes) != len(blob) or min(sizes, default=1) < 1:
        raise ValueError(f"model sizes {list(sizes)[:5]}... do not add up to {len(blob)} bytes")
    out, at = [], 0
    for n in sizes:
        out.append(blob[at:at + n])
        at += n
    return out


def model_input(session: Any, options: dict[str, Any]) -> np.ndarray:
    """A fixed random input: the model's own static shape, else ``(batch, *input_shape)``
    from the options."""
    shape = session.get_inputs()[0].shape
    if not all(isinstance(v, int) and v > 0 for v in shape):
        shape = [int(options.get("batch_size", 1)),
                 *(int(v) for v in options.get("input_shape", [1, 28, 28]))]
    return np.random.default_rng(0).standard_normal(shape).astype(np.float32)


def measure_models(models: Sequence[bytes], options: dict[str, Any],
                   config: MeasureConfig) -> list[dict[str, Any]]:
    """Time every model in the same interleaved rounds; energy per model where configured."""
    sessions = [ort_session(m, config.threads, (config.provider,)) for m in models]
    runners = [ort_runner(s, model_input(s, options)) for s in sessions]
    stats = measure_interleaved(runners, warmup=int(options.get("warmup", 5)),
                                rounds=int(options.get("rounds", 5)),
                                repeats=int(options.get("repeats", 10)),
                                clock=default_clock(config.threads))
    out = [{"min_ms": s.min_ms, "median_ms": s.median_ms, "spread": s.spread,
            "fastest_ms": s.fastest_ms} for s in stats]
    if config.power is not None:
        for row, run in zip(out, runners, strict=True):
            row["energy_mj"], row["energy_calls"] = energy_per_call(run, config.power)
    return out


def describe_device(config: MeasureConfig) -> dict[str, Any]:
    """CPU, OS and runtime versions, sent with registration and every result."""
    import onnxruntime

    return {"cpu": cpu_name(), "cpus": os.cpu_count(), "machine": platform.machine(),
            "os": platform.platform(), "python": platform.python_version(),
            "onnxruntime": onnxruntime.__version__, "numpy": np.__version__,
            "providers": onnxruntime.get_available_providers(),
            "threads": config.threads, "provider": config.provider,
            "clock": default_clock(config.threads),
            "power": None if config.power is None else {
                "source": config.power.file or config.power.command,
                "interval_s": config.power.interval_s, "energy_s": config.power.energy_s}}
