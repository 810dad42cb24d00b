"""Latency predicted from per-layer look-up tables measured on the target, as MnasNet, FBNet
and ProxylessNAS do: profile a device once, search many times.

A network of a space that has ``layer_plan`` (``mnasnet``) is a chain of layers, each fully
described by a ``LayerSpec`` (op, channels, stride, kernel, SE, shortcut, input size). Each
distinct layer is measured once on the target, as a stand-alone module with the same protocol
as ``search.profilers.measured`` (1 thread, warm-up, minimum over interleaved rounds), and
stored in a JSON table. A raw sum of isolated layer times misses what the whole network does
differently (framework dispatch, cache reuse, ONNX Runtime fusing across layers, the fixed
cost of each stand-alone call: 20-95% off here), so a linear calibration ``latency = a * sum +
c * layers + b`` is fitted on a few architectures measured end to end (relative least
squares). The table and its calibrations are saved after every change, keyed by device (CPU,
library versions, threads, clock, batch size), so the next job on the same device measures
nothing.

Accuracy and its limits (``benchmarks/latency_predictor.py``, 200 held-out networks, 50 for
calibration; ``benchmarks/results/latency_predictor.json``):

- Interleaving is what makes a table add up. This machine's speed drifts by a few percent
  over tens of seconds, for every model alike (PyTorch: passes a minute apart differ by up to
  ~10%). Models timed in different rounds see different speeds, so a layer sum drawn from
  several groups missed its network by that much: in groups of 64, ONNX Runtime networks were
  14-45% within +/-10%; in groups of 512 PyTorch was 89-95% (three layer groups, the networks
  in one of them). Now ``measure_joint`` times the layers and the networks of a profile in the
  same rounds (``GROUP``: all of them for PyTorch, 512 sessions for ONNX Runtime), 20 rounds
  of 5 calls, the fastest call kept: PyTorch 95.0-99.5% within +/-10% in five quiet runs,
  ONNX Runtime 99.0-99.5%.
- The drift is one factor for all models: a second pass minutes later agreed with the first
  within +/-10% for only 51.5% of PyTorch networks, and for 99.5% once divided by its median
  ratio. On a loaded machine (load 5-7) other processes also evict a network's weights from
  the shared caches and the per-network noise grows (71.5-93% within +/-10%).
- Per-op-type coefficients, FLOPs or activation-traffic terms did not help on held-out
  networks (fitted on 50 they overfit); the three-term calibration stays.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from search.base import Profiler
from search.profilers.measured import (
    BACKENDS,
    check_measurement,
    device_info,
    measure_interleaved,
    model_runner,
    threads_set,
)
from spaces.base import Architecture, Space
from spaces.isolation import seeded

TABLE_VERSION = 1
#: what the calibration weighs: the table's sum, the per-layer overhead a stand-alone layer
#: pays and a whole network does not (one framework call, one ONNX session run), a constant
FEATURES = ("table_sum", "layers", "intercept")
#: models timed in the same interleaved rounds: every round visits all of them, so machine
#: load hits them alike. ONNX Runtime: bounds the sessions held at once; PyTorch modules are
#: small, so a whole pass (a device profile: ~1,300 layers and networks) shares its rounds
GROUP = {"torch": 4096, "onnxruntime": 512}


def default_table_dir() -> Path:
    return Path(os.environ.get("LIGHTSEARCH_CACHE", Path.home() / ".cache" / "lightsearch")
                ) / "latency"


def _digest(data: Any) -> str:
    return hashlib.blake2b(json.dumps(data, sort_keys=True).encode(), digest_size=6).hexdigest()


class LatencyPredictor(Profiler):
    """``<prefix>_latency_pred_ms``: calibrated sum of per-layer latencies from a table."""

    def __init__(self, backend: str = "torch", input_shape: Sequence[int] = (1, 28, 28),
                 num_classes: int = 10, batch_size: int = 1, threads: int = 1,
                 table: str | None = None, calibration_archs: int = 30, warmup: int = 3,
                 rounds: int = 20, repeats: int = 5, seed: int = 0,
                 clock: str | None = None, statistic: str = "min") -> None:
        clock = check_measurement(backend, input_shape, threads, rounds, clock, statistic)
        if calibration_archs != 0 and calibration_archs < 3:
            raise ValueError(f"calibration_archs must be 0 (no calibration) or >= 3, got "
                             f"{calibration_archs}")
        self.backend, self.prefix = backend, BACKENDS[backend]
        self.name = f"predictor:{'torch-cpu' if backend == 'torch' else 'onnxruntime'}"
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes, self.batch_size, self.threads = int(num_classes), batch_size, threads
        self.calibration_archs, self.seed = calibration_archs, seed
        self.warmup, self.rounds, self.repeats = warmup, rounds, repeats
        self.clock, self.statistic = clock, statistic
        self._table_path = table
        self._table: dict[str, Any] | None = None
        self._cache: dict[str, dict[str, float]] = {}
        self.measured_units = 0  # layers measured by this instance (0: all from the table)

    @property
    def metric(self) -> str:
        return f"{self.prefix}_latency_pred_ms"

    def metrics(self) -> list[str]:
        return [self.metric]

    # ---- the table ----------------------------------------------------------------------
    def device(self) -> dict[str, Any]:
        info = device_info(self.backend, self.threads)
        info["batch_size"] = self.batch_size
        info["clock"] = self.clock
        info["statistic"] = self.statistic
        return info

    @property
    def table_path(self) -> Path:
        if self._table_path:
            return Path(self._table_path).expanduser()
        return default_table_dir() / f"{self.backend}-{_digest(self.device())}.json"

    def table(self) -> dict[str, Any]:
        if self._table is None:
            path = self.table_path
            if path.exists():
                try:
                    data = json.loads(path.read_text())
                except (OSError, json.JSONDecodeError) as err:
                    raise ValueError(f"table: cannot read latency table {path}: {err}") from None
                if data.get("version") != TABLE_VERSION or data.get("backend") != self.backend:
                    raise ValueError(f"table: {path} is not a version-{TABLE_VERSION} "
                                     f"{self.backend} latency table")
                self._table = data
            else:
                self._table = {"version": TABLE_VERSION, "backend": self.backend,
                               "device": self.device(), "units": {}, "calibrations": {}}
        return self._table

    def save(self) -> None:
        path = self.table_path
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.table(), indent=1, sort_keys=True))
        tmp.replace(path)

    # ---- layers ---------------------------------------------------------------------------
    def _plan(self, arch: Architecture, space: Space) -> list[Any]:
        plan = getattr(space, "layer_plan", None)
        if plan is None:
            raise TypeError(f"profiler {self.name!r} predicts chains of layers; space "
                            f"{space.name!r} has no layer_plan")
        return plan(arch, self.input_shape)

    def _unit_key(self, spec: Any, space: Space) -> str:
        key = spec.key()
        if spec.op == "head":
            key += f"|classes{self.num_classes}"
        if spec.op == "shuffle":
            key += f"|g{getattr(space, 'shuffle_groups', 2)}"
        return key

    def _unit_module(self, spec: Any, space: Space) -> Any:
        from torch import nn

        from spaces.mnasnet import build_layer

        layer = build_layer(spec, getattr(space, "shuffle_groups", 2))
        if spec.op != "head":
            return layer
        return nn.Sequential(layer, nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(spec.cout, self.num_classes))

    def _timed(self, factories: Sequence[Callable[[], Callable[[], Any]]]) -> list[float]:
        """Time the runners that ``factories`` build, in interleaved groups of ``GROUP``."""
        out: list[float] = []
        group = GROUP[self.backend]
        with threads_set(self.threads):
            for start in range(0, len(factories), group):
                runners = [make() for make in factories[start:start + group]]
                out.extend(st.value(self.statistic) for st in measure_interleaved(
                    runners, warmup=self.warmup, rounds=self.rounds, repeats=self.repeats,
                    clock=self.clock))
                del runners
        return out

    def _unit_factory(self, spec: Any, space: Space) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            with seeded(0):
                module = self._unit_module(spec, space)
            return model_runner(self.backend, module, (spec.cin, spec.height, spec.width),
                                self.batch_size, self.threads)
        return make

    def _arch_factory(self, arch: Architecture, space: Space) -> Callable[[], Callable[[], Any]]:
        def make() -> Callable[[], Any]:
            with seeded(0):
                model = space.build_model(arch, self.input_shape,  # type: ignore[attr-defined]
                                          self.num_classes)
            return model_runner(self.backend, model, self.input_shape, self.batch_size,
                                self.threads)
        return make

    def _missing(self, specs: Iterable[Any], space: Space) -> dict[str, Any]:
        units = self.table()["units"]
        todo: dict[str, Any] = {}
        for spec in specs:
            key = self._unit_key(spec, space)
            if key not in units and key not in todo:
                todo[key] = spec
        return todo

    def _store_units(self, keys: Sequence[str], values: Sequence[float]) -> None:
        self.table()["units"].update(zip(keys, values, strict=True))
        if keys:
            self.measured_units += len(keys)
            self.save()

    def measure_units(self, specs: Iterable[Any], space: Space) -> int:
        """Measure the layers not yet in the table (interleaved); returns how many."""
        todo = self._missing(specs, space)
        values = self._timed([self._unit_factory(s, space) for s in todo.values()])
        self._store_units(list(todo), values)
        return len(todo)

    def prefetch(self, archs: Iterable[Architecture], space: Space) -> int:
        """Measure every layer these architectures need in one interleaved pass (profiling a
        device ahead of a search); returns how many layers were new."""
        return self.measure_units([s for a in archs for s in self._plan(a, space)], space)

    def raw_sum(self, arch: Architecture, space: Space) -> float:
        """Sum of the table's layer latencies (measuring missing layers first)."""
        return float(self.features(arch, space)[0])

    def features(self, arch: Architecture, space: Space) -> np.ndarray:
        """``[table sum, number of layers, 1]``: what the calibration weighs."""
        plan = self._plan(arch, space)
        self.measure_units(plan, space)
        units = self.table()["units"]
        total = sum(units[self._unit_key(s, space)] for s in plan)
        return np.asarray([total, len(plan), 1.0])

    # ---- calibration ------------------------------------------------------------------------
    def calibration_key(self, space: Space) -> str:
        return _digest({"space": space.name, "config": space.to_config(),
                        "input_shape": self.input_shape, "classes": self.num_classes,
                        "archs": self.calibration_archs, "seed": self.seed})

    def measure_archs(self, archs: Sequence[Architecture], space: Space) -> list[float]:
        """End-to-end latency of whole networks (interleaved rounds), in ms."""
        return self._timed([self._arch_factory(a, space) for a in archs])

    def measure_joint(self, archs: Sequence[Architecture], space: Space) -> list[float]:
        """Measure the layers ``archs`` need and the whole networks in the same interleaved
        rounds (layers and networks evenly mixed in each group), so the table and the
        end-to-end figures see the same machine load; returns the networks' latencies."""
        todo = self._missing([s for a in archs for s in self._plan(a, space)], space)
        items: list[tuple[float, int, Callable[[], Callable[[], Any]]]] = [
            ((i + 0.5) / len(todo), -1, self._unit_factory(spec, space))
            for i, spec in enumerate(todo.values())]
        items += [((j + 0.5) / len(archs), j, self._arch_factory(a, space))
                  for j, a in enumerate(archs)]
        items.sort(key=lambda t: t[0])
        values = self._timed([make for _, _, make in items])
        units = [v for (_, j, _), v in zip(items, values, strict=True) if j < 0]
        self._store_units(list(todo), units)
        out = [0.0] * len(archs)
        for (_, j, _), v in zip(items, values, strict=True):
            if j >= 0:
                out[j] = v
        return out

    def calibrate(self, space: Space, archs: Sequence[Architecture] | None = None,
                  measured: Sequence[float] | None = None) -> list[float]:
        """Fit ``measured = a * table_sum + c * layers + b`` (relative least squares) on
        architectures measured end to end (here, with their missing layers in the same
        rounds, unless ``measured`` gives their figures), and store it."""
        if archs is None:
            rng = np.random.default_rng(self.seed)
            archs = [space.sample(rng) for _ in range(self.calibration_archs)]
        if measured is None:
            # layers and calibration networks in the same rounds: both see the same machine
            measured = self.measure_joint(archs, space)
        x = np.stack([self.features(a, space) for a in archs])
        measured = np.asarray(measured, float)
        if len(measured) != len(archs):
            raise ValueError(f"got {len(measured)} measurements for {len(archs)} architectures")
        coef = fit_relative(x, measured)
        self.table()["calibrations"][self.calibration_key(space)] = {
            "coef": coef, "features": list(FEATURES), "archs": len(archs),
            "space": space.name, "input_shape": list(self.input_shape),
            "fit_median_abs_rel_error": float(np.median(np.abs(x @ coef / measured - 1))),
        }
        self.save()
        return coef

    def coefficients(self, space: Space) -> list[float]:
        """Calibration coefficients of ``FEATURES`` (fitted on first use)."""
        if self.calibration_archs == 0:
            return [1.0, 0.0, 0.0]
        cal = self.table()["calibrations"].get(self.calibration_key(space))
        if cal is None:
            return self.calibrate(space)
        return [float(c) for c in cal["coef"]]

    # ---- the profiler ---------------------------------------------------------------------
    def predict(self, arch: Architecture, space: Space) -> float:
        coef = self.coefficients(space)
        return float(self.features(arch, space) @ np.asarray(coef))

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        key = f"{space.name}:{space.key(arch)}"
        if key not in self._cache:
            self._cache[key] = {self.metric: self.predict(arch, space)}
        return dict(self._cache[key])

    def describe(self) -> dict[str, Any]:
        table = self.table()
        return {
            "name": self.name, "metrics": self.metrics(), "device": self.device(),
            "table": str(self.table_path), "table_units": len(table["units"]),
            "calibrations": table["calibrations"],
            "input_shape": list(self.input_shape), "batch_size": self.batch_size,
            "units": {self.metric: "ms (predicted)"},
            "protocol": {"warmup": self.warmup, "rounds": self.rounds, "repeats": self.repeats,
                         "clock": self.clock, "statistic": self.statistic,
                         "calibration_archs": self.calibration_archs},
        }


def fit_relative(x: np.ndarray, measured: np.ndarray) -> list[float]:
    """Coefficients ``w`` minimizing the squared relative errors ``x @ w / measured - 1``."""
    x, measured = np.atleast_2d(np.asarray(x, float)), np.asarray(measured, float)
    if len(measured) < x.shape[1]:
        raise ValueError(f"calibration needs at least {x.shape[1]} architectures, "
                         f"got {len(measured)}")
    w, *_ = np.linalg.lstsq(x / measured[:, None], np.ones_like(measured), rcond=None)
    return [float(v) for v in w]


def fit_linear(raw: np.ndarray, measured: np.ndarray) -> tuple[float, float]:
    """``a, b`` minimizing the squared relative errors ``(a*raw + b)/measured - 1``."""
    raw = np.asarray(raw, float)
    a, b = fit_relative(np.stack([raw, np.ones_like(raw)], axis=1), measured)
    return a, b


def kendall_tau(x: Sequence[float], y: Sequence[float]) -> float:
    """Kendall's tau-b rank agreement (ties counted as neither concordant nor discordant)."""
    a, b = np.asarray(x, float), np.asarray(y, float)
    if len(a) != len(b) or len(a) < 2:
        raise ValueError(f"need two sequences of equal length >= 2, got {len(a)} and {len(b)}")
    iu = np.triu_indices(len(a), 1)
    da = np.sign(a[:, None] - a[None, :])[iu]
    db = np.sign(b[:, None] - b[None, :])[iu]
    denom = np.sqrt(float((da != 0).sum()) * float((db != 0).sum()))
    return float((da * db).sum() / denom) if denom else float("nan")
