"""Latency and energy measured on the user's own hardware: ``remote:<device>``.

The loop process exports each candidate to ONNX and queues it for the device; an agent of
that device (``lightsearch device-agent``, ``service/device_agent``) leases the work, measures
it with ONNX Runtime and sends the figures back. Several agents of one name share the queue;
an agent that vanishes loses its lease and the work goes to another one (or waits).

``search/`` never imports ``service/``: the queue is reached through a ``DeviceLink`` that
the job's result sink hands over (``ResultSink.device_link``; the service's SQL sink gives one
backed by its database, fenced to the job's owner). A job run without the service
(``lightsearch search``) has no link, and a remote profiler then fails at the door.

The loop calls ``begin_batch`` with a batch's new architectures before evaluating them, so a
batch's measurements are all queued at once and agents of one device work on them in
parallel while the executor trains (the profiler is ``deferred``); after the evaluations
``profile`` waits for each result, at most ``timeout_s`` seconds (past it the trial fails
with the reason, the job goes on). A constraint on a device metric therefore ends a trial
after its evaluation, not before. Results are cached by the service per
device and model hash: a model is measured once per device name.
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from search.base import ProfileFailed, Profiler
from search.metrics import metric_prefix
from search.profilers.measured import LatencyStats
from spaces.base import Architecture, Space


@dataclass
class Ticket:
    """A queued measurement (``id``), or a result the cache already had."""

    id: int | None = None
    result: dict[str, Any] | None = None


class DeviceLink(ABC):
    """The way to a device's measurement queue (the service injects one per job)."""

    @abstractmethod
    def check(self, device: str) -> None:
        """Raise ``ValueError`` unless the device exists and the job's owner may use it."""

    @abstractmethod
    def submit(self, device: str, models: Sequence[bytes], options: dict[str, Any]) -> Ticket:
        """Queue ONNX models measured together (interleaved rounds), or answer from the
        cache."""

    @abstractmethod
    def wait(self, ticket: Ticket, timeout_s: float) -> dict[str, Any]:
        """The result of a submission; ``ProfileFailed`` when it failed or timed out (a
        timed-out measurement is withdrawn from the queue)."""

    @abstractmethod
    def load_table(self, device: str, key: str) -> dict[str, Any] | None:
        """A latency predictor's table stored under the device (None if there is none)."""

    @abstractmethod
    def save_table(self, device: str, key: str, table: dict[str, Any]) -> None:
        """Store a latency predictor's table under the device."""


def model_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def link_from(sink: Any, device: str) -> DeviceLink:
    """The sink's device link, checked for this device (a ``ValueError`` for the job)."""
    link = sink.device_link() if sink is not None else None
    if link is None:
        raise ValueError(f"device {device!r}: remote devices are reached through the service; "
                         "submit this job to a LightSearch server (lightsearch submit)")
    link.check(device)
    return link


def onnx_model(space: Space, arch: Architecture, input_shape: Sequence[int],
               num_classes: int, batch_size: int = 1) -> bytes:
    """The candidate's ONNX bytes (seeded weights: the same model hashes the same)."""
    import torch

    from search.profilers.measured import onnx_bytes
    from spaces.isolation import seeded

    build = getattr(space, "build_model", None)
    if build is None:
        raise TypeError(f"remote profilers measure built models; space {space.name!r} does "
                        "not build them")
    with seeded(0):  # the same weights every time, without touching other jobs' draws
        model = build(arch, tuple(input_shape), num_classes)
    x = torch.zeros(batch_size, *input_shape)
    return onnx_bytes(model, x)


class RemoteLatencyProfiler(Profiler):
    """``<device>_latency_ms`` (+ median, spread) and ``<device>_energy_mj`` from a device."""

    deferred = True  # the device measures while the executor trains

    def __init__(self, device: str, input_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10, batch_size: int = 1, warmup: int = 5, rounds: int = 5,
                 repeats: int = 10, statistic: str = "min_of_medians",
                 timeout_s: float = 600.0) -> None:
        self.device, self.name = device, f"remote:{device}"
        self.prefix = metric_prefix(device)
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes, self.batch_size = int(num_classes), int(batch_size)
        self.statistic, self.timeout_s = statistic, float(timeout_s)
        self.protocol = {"warmup": warmup, "rounds": rounds, "repeats": repeats,
                         "batch_size": self.batch_size, "input_shape": list(self.input_shape)}
        self.link: DeviceLink | None = None
        self._pending: dict[str, Ticket] = {}
        self._cache: dict[str, dict[str, float]] = {}
        self.last_device: dict[str, Any] = {}

    def metrics(self) -> list[str]:
        return [*LatencyStats(0, 0, 0, []).as_metrics(self.prefix), f"{self.prefix}_energy_mj"]

    def attach(self, sink: Any) -> None:
        self.link = link_from(sink, self.device)

    def _link(self) -> DeviceLink:
        if self.link is None:
            raise ValueError(f"profiler {self.name!r} is not attached to a job's sink")
        return self.link

    def _submit(self, arch: Architecture, space: Space) -> Ticket:
        data = onnx_model(space, arch, self.input_shape, self.num_classes, self.batch_size)
        return self._link().submit(self.device, [data], dict(self.protocol))

    def begin_batch(self, archs: list[Architecture], space: Space) -> None:
        for arch in archs:
            key = f"{space.name}:{space.key(arch)}"
            if key not in self._cache and key not in self._pending:
                self._pending[key] = self._submit(arch, space)

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        key = f"{space.name}:{space.key(arch)}"
        if key not in self._cache:
            ticket = self._pending.pop(key, None) or self._submit(arch, space)
            try:
                result = self._link().wait(ticket, self.timeout_s)
            except ProfileFailed as err:
                raise ProfileFailed(f"{self.name}: {err}") from None
            self._cache[key] = self.metrics_of(result)
        return dict(self._cache[key])

    def metrics_of(self, result: dict[str, Any]) -> dict[str, float]:
        """The job's metrics from an agent's result of one model."""
        one = result["models"][0]
        stats = LatencyStats(one["min_ms"], one["median_ms"], one["spread"], [],
                             one["fastest_ms"])
        out = stats.as_metrics(self.prefix, self.statistic)
        if one.get("energy_mj") is not None:
            out[f"{self.prefix}_energy_mj"] = float(one["energy_mj"])
        self.last_device = dict(result.get("device") or {})
        return out

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "metrics": self.metrics(), "device": self.last_device,
                "protocol": {**self.protocol, "statistic": self.statistic,
                             "timeout_s": self.timeout_s},
                "units": {f"{self.prefix}_latency_ms": "ms",
                          f"{self.prefix}_latency_median_ms": "ms",
                          f"{self.prefix}_latency_spread": "ratio",
                          f"{self.prefix}_energy_mj": "mJ per inference"}}
