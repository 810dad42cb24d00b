"""``predictor:remote:<device>``: the latency predictor of ``search.profilers.predictor``,
its per-layer table and calibration measured by a device's agents and kept by the service
under the device name, so later jobs predict for that device without it being online.

Only what the table lacks is measured: layers and calibration networks are exported to ONNX
here and sent to the device in groups of up to 512 models (64 MB), each group timed there
in the same interleaved rounds (ONNX Runtime, the agent's threads and provider). A job whose
networks need layers the table does not hold queues them on the device like ``remote:``
does (and waits up to ``timeout_s``); ``lightsearch device predictor --prefetch N`` measures
the layers of N sampled networks ahead of time.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from search.profilers.measured import LatencyStats
from search.profilers.predictor import GROUP, TABLE_VERSION, LatencyPredictor, _digest
from search.profilers.remote import DeviceLink, link_from, metric_prefix

#: models sent to the device in one measurement (timed in the same rounds there), as many
#: as the local ONNX Runtime predictor times together
REMOTE_GROUP = GROUP["onnxruntime"]
#: ... and at most this many bytes of ONNX in one measurement (networks of the default
#: MnasNet skeleton are 0.3-2 MB; a measurement is one database row and one download)
REMOTE_BYTES = 64 * 2**20


class RemotePredictor(LatencyPredictor):
    """``<device>_latency_pred_ms`` from a table measured on a remote device."""

    def __init__(self, device: str, input_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10, batch_size: int = 1, calibration_archs: int = 30,
                 warmup: int = 3, rounds: int = 20, repeats: int = 5, seed: int = 0,
                 statistic: str = "min", timeout_s: float = 600.0) -> None:
        super().__init__("onnxruntime", input_shape, num_classes, batch_size, 1, None,
                         calibration_archs, warmup, rounds, repeats, seed, None, statistic)
        self.remote, self.timeout_s = device, float(timeout_s)
        self.name = f"predictor:remote:{device}"
        self.prefix = metric_prefix(device)
        self.link: DeviceLink | None = None
        self.agent: dict[str, Any] = {}

    def attach(self, sink: Any) -> None:
        self.use_link(link_from(sink, self.remote))

    def use_link(self, link: DeviceLink) -> None:
        self.link = link

    def _link(self) -> DeviceLink:
        if self.link is None:
            raise ValueError(f"profiler {self.name!r} is not attached to a job's sink")
        return self.link

    # ---- the table lives with the device, in the service ----------------------------------
    def device(self) -> dict[str, Any]:
        return {"remote": self.remote, "backend": "onnxruntime", "batch_size": self.batch_size,
                "statistic": self.statistic, "warmup": self.warmup, "rounds": self.rounds,
                "repeats": self.repeats}

    @property
    def table_key(self) -> str:
        return f"onnxruntime-{_digest(self.device())}"

    @property
    def table_path(self) -> Path:
        return Path("devices") / self.remote / self.table_key

    def table(self) -> dict[str, Any]:
        if self._table is None:
            data = self._link().load_table(self.remote, self.table_key)
            self._table = data or {"version": TABLE_VERSION, "backend": self.backend,
                                   "device": self.device(), "units": {}, "calibrations": {}}
        return self._table

    def save(self) -> None:
        table = self.table()
        if self.agent:
            table["agent"] = self.agent
        self._link().save_table(self.remote, self.table_key, table)

    # ---- measuring: ONNX bytes here, timings there -----------------------------------------
    # The base class's factories make runners; here they make the model's ONNX bytes.
    def _unit_factory(self, spec: Any, space: Any) -> Callable[[], Any]:
        def make() -> bytes:
            import torch

            from search.profilers.measured import onnx_bytes
            from spaces.isolation import seeded

            x = torch.zeros(self.batch_size, spec.cin, spec.height, spec.width)
            with seeded(0):  # fixed weights, other jobs' draws untouched
                module = self._unit_module(spec, space)
            return onnx_bytes(module, x)
        return make

    def _arch_factory(self, arch: Any, space: Any) -> Callable[[], Any]:
        def make() -> bytes:
            from search.profilers.remote import onnx_model

            return onnx_model(space, arch, self.input_shape, self.num_classes, self.batch_size)
        return make

    def _timed(self, factories: Sequence[Callable[[], Any]]) -> list[float]:
        out: list[float] = []
        group: list[bytes] = []
        for make in factories:
            group.append(make())
            if len(group) >= REMOTE_GROUP or sum(map(len, group)) >= REMOTE_BYTES:
                out.extend(self._measure_group(group))
                group = []
        if group:
            out.extend(self._measure_group(group))
        return out

    def _measure_group(self, models: list[bytes]) -> list[float]:
        """Time models together on the device (one measurement, interleaved rounds)."""
        from search.base import ProfileFailed

        link = self._link()
        # layers differ in input shape: the agent reads each from its (static) model
        options = {"warmup": self.warmup, "rounds": self.rounds, "repeats": self.repeats,
                   "batch_size": self.batch_size}
        ticket = link.submit(self.remote, models, options)
        try:
            result = link.wait(ticket, self.timeout_s)
        except ProfileFailed as err:
            raise ProfileFailed(f"{self.name}: {err}") from None
        self.agent = dict(result.get("device") or {})
        return [LatencyStats(m["min_ms"], m["median_ms"], m["spread"], [],
                             m["fastest_ms"]).value(self.statistic) for m in result["models"]]

    def describe(self) -> dict[str, Any]:
        if self.link is None:  # not attached to a job: no table to read
            return {"name": self.name, "metrics": self.metrics(), "device": self.device()}
        out = super().describe()
        out["device"] = {**self.device(), "agent": self.table().get("agent", {})}
        out["table"] = f"service database, device {self.remote!r}, key {self.table_key}"
        return out
