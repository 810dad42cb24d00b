"""What each evaluator and profiler measures: names, labels, units, devices, directions.

Plugins declare, the edge checks: every registry entry names a declaration function
(``Entry.metrics``, ``"module:function"``) that returns the ``MetricInfo`` of each metric the
component produces for given options. ``metrics_for_spec`` collects them for a job, so the API
can refuse an objective, constraint or reward on a metric nothing measures, and the dashboard
can label its axes. A CSV evaluator or profiler reads only its file's header to declare its
columns. Torch-free and Ray-free: the API process validates jobs with this module.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import importlib
import io
import lzma
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel

from search.registry import EVALUATORS, NB201_DEVICES, PROFILERS
from spaces.nb201 import DATA_DIR
from spaces.registry import Entry

if TYPE_CHECKING:
    from search.spec import JobSpec

Direction = Literal["max", "min"] | None


@dataclass(frozen=True)
class MetricInfo:
    """One metric a component produces. ``device`` names the hardware it was measured on
    (None: not a device measurement); ``direction`` is which way is better (None: neither)."""

    name: str
    label: str
    unit: str | None = None
    device: str | None = None
    direction: Direction = None
    description: str = ""

    def public(self) -> dict[str, Any]:
        """The fields the API shows per metric (``label, unit, device, direction``)."""
        return {k: v for k, v in asdict(self).items() if k in PUBLIC_FIELDS}


PUBLIC_FIELDS = ("label", "unit", "device", "direction")


class OptionError(ValueError):
    """A declaration found an option at fault; ``option`` is its name in the options."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


# ---- known metrics ---------------------------------------------------------------------------
_KNOWN: dict[str, tuple[str, str | None, Direction]] = {
    "val_acc": ("Validation accuracy", "%", "max"),
    "test_acc": ("Test accuracy", "%", "max"),
    "train_acc": ("Training accuracy", "%", "max"),
    "val_acc_12ep": ("Validation accuracy after 12 epochs", "%", "max"),
    "test_acc_12ep": ("Test accuracy after 12 epochs", "%", "max"),
    "cifar10valid_test_acc": ("Test accuracy (CIFAR-10-valid training)", "%", "max"),
    "flops_M": ("FLOPs (multiply-adds)", "MFLOPs", "min"),
    "params_M": ("Parameters", "M", "min"),
    "peak_act_kB": ("Peak activation memory", "KiB", "min"),
    "energy_mJ_est": ("Energy (estimate)", "mJ", "min"),
    "error": ("Validation error", "fraction", "min"),
    "flops": ("FLOPs (multiply-adds)", "MACs", "min"),
    "params": ("Parameters", None, "min"),
    "size_bytes": ("Exported model size", "B", "min"),
    "weight_bytes": ("Stored weights", "B", "min"),
    "flops_ratio": ("FLOPs ratio (compressed / original)", None, "min"),
    "params_ratio": ("Parameter ratio (compressed / original)", None, "min"),
    "size_ratio": ("Size ratio (compressed / original)", None, "min"),
    "amc_reward": ("AMC reward (-error)", None, "max"),
    "amc_reward_flops": ("AMC reward (-error * log FLOPs)", None, "max"),
}

#: Short names of the NAS-Bench-201 devices, for labels ("Latency on Pixel 3").
DEVICE_LABELS: dict[str, str] = {
    "edgegpu": "Jetson TX2", "raspi4": "Raspberry Pi 4", "edgetpu": "Edge TPU",
    "pixel3": "Pixel 3", "eyeriss": "Eyeriss", "fpga": "ZC706 FPGA",
    "gold_6226": "Xeon Gold 6226", "titanx_1": "Titan X (batch 1)",
    "titanx_32": "Titan X (batch 32)", "samsung_a50": "Samsung A50", "pixel2": "Pixel 2",
}
_KINDS: dict[str, tuple[str, str, Direction]] = {  # column suffix -> label, unit, direction
    "latency": ("Latency", "ms", "min"),
    "energy": ("Energy", "mJ", "min"),
    "arithmetic_intensity": ("Arithmetic intensity", "ops/byte", None),
}
_BACKENDS = {"torch": ("torch", "PyTorch"), "onnxruntime": ("ort", "ONNX Runtime")}


def metric_info(name: str, device: str | None = None) -> MetricInfo:
    """What is known of a metric by its name alone (a user's CSV column, say): the catalogue,
    else a guess from its suffix (``*_latency``/``*_ms``: ms, ``*_energy``: mJ, ``*acc``: %)."""
    if name in _KNOWN:
        label, unit, direction = _KNOWN[name]
        return MetricInfo(name, label, unit, device, direction)
    for suffix, (label, unit, direction) in _KINDS.items():
        if name.endswith(f"_{suffix}"):
            return MetricInfo(name, f"{label} ({name.removesuffix('_' + suffix)})", unit,
                              device, direction)
    if name.endswith("_ms"):
        return MetricInfo(name, name, "ms", device, "min")
    if name.endswith("acc"):
        return MetricInfo(name, name, "%", device, "max")
    return MetricInfo(name, name, None, device, None)


def _nb201_device_metric(device: str, column: str) -> MetricInfo:
    kind = column.removeprefix(f"{device}_")
    label, unit, direction = _KINDS[kind]
    return MetricInfo(column, f"{label} on {DEVICE_LABELS.get(device, device)}", unit, device,
                      direction, f"NAS-Bench-201 table look-up ({device})")


# ---- CSV headers -----------------------------------------------------------------------------
_OPENERS: dict[str, Callable[..., Any]] = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}


def read_csv_header(path: str | Path) -> list[str]:
    """Column names of a CSV (plain, .gz, .bz2 or .xz) from its first line only. Errors name
    the file by its name, never by its place on the server."""
    p = Path(path)
    try:
        st = p.stat()
    except OSError:
        raise ValueError(f"table file {p.name!r} not found") from None
    if not p.is_file():
        raise ValueError(f"table file {p.name!r} not found")
    return list(_header(str(p), st.st_mtime_ns, st.st_size))


@lru_cache(maxsize=256)
def _header(path: str, _mtime_ns: int, _size: int) -> tuple[str, ...]:
    opener = _OPENERS.get(Path(path).suffix.lower(), open)
    name = Path(path).name
    try:
        with opener(path, "rt", encoding="utf-8-sig", newline="") as fh:
            line = next(csv.reader(io.StringIO(fh.readline())), None)
    except (OSError, UnicodeDecodeError, EOFError, lzma.LZMAError, csv.Error) as err:
        raise ValueError(f"cannot read the header of {name!r}: "
                         f"{type(err).__name__}") from None
    if not line or not any(c.strip() for c in line):
        raise ValueError(f"{name!r} has no header line")
    return tuple(c.strip() for c in line)


NB201_TABLE = DATA_DIR / "nb201_cifar10.csv.gz"


def _columns(path: str | Path, key_column: str, option: str) -> list[str]:
    """The header's columns but the key; ``OptionError`` naming ``option`` when unreadable,
    ``key_column`` when the key is absent."""
    try:
        header = read_csv_header(path)
    except ValueError as err:
        raise OptionError(option, str(err)) from None
    if key_column not in header:
        raise OptionError("key_column", f"key column {key_column!r} is not in "
                          f"{Path(path).name!r}; columns: {', '.join(header)}")
    return [c for c in header if c != key_column]


# ---- declarations (named by registry entries) -------------------------------------------------
def tabular_metrics(options: Any) -> list[MetricInfo]:
    """The tabular evaluator gives the agent one column, ``signal``; the others are recorded."""
    path = NB201_TABLE if options.table == "nb201" else options.table
    columns = _columns(path, options.key_column, "table")
    if options.signal not in columns:
        raise OptionError("signal", f"signal column {options.signal!r} is not in the table; "
                          f"columns: {', '.join(columns)}")
    if options.record != "all":
        missing = [c for c in options.record if c not in columns]
        if missing:
            raise OptionError("record", f"record column(s) {missing} not in the table; "
                              f"columns: {', '.join(columns)}")
    return [replace(metric_info(options.signal), description="table look-up")]


def train_metrics(options: Any) -> list[MetricInfo]:
    """Proxy training reports validation accuracy to the agent (test accuracy is recorded)."""
    return [replace(metric_info("val_acc"), description="after proxy training")]


def compress_metrics(options: Any) -> list[MetricInfo]:
    """Accuracy, costs and ratios of the compressed, exported model."""
    names = ["val_acc", "error", "flops", "params", "size_bytes", "weight_bytes",
             "flops_ratio", "params_ratio", "size_ratio", "amc_reward", "amc_reward_flops"]
    out = [metric_info(n) for n in names]
    if options.measure_latency:
        out.append(MetricInfo("latency_ms", "Latency of the exported model (this CPU)", "ms",
                              "cpu", "min"))
    return out


def nb201_device_metrics(options: Any, device: str) -> list[MetricInfo]:
    return [_nb201_device_metric(device, c) for c in NB201_DEVICES[device]]


def csv_profiler_metrics(options: Any) -> list[MetricInfo]:
    """The CSV's named columns, or every column but the key and identifiers (numeric ones are
    known only once the rows are read: a text column then gives no value)."""
    columns = _columns(options.path, options.key_column, "path")
    if options.columns is not None:
        if not options.columns:
            raise OptionError("columns", "columns must name at least one column "
                              "(or be left out)")
        missing = [c for c in options.columns if c not in columns]
        if missing:
            raise OptionError("columns", f"column(s) {missing} not in the table; columns: "
                              f"{', '.join(columns)}")
        chosen = list(options.columns)
    else:
        chosen = [c for c in columns if c not in ("arch_index", "arch_str")]
    return [replace(metric_info(options.prefix + c), description="user CSV") for c in chosen]


def analytical_metrics(options: Any) -> list[MetricInfo]:
    return [metric_info("flops_M"), metric_info("params_M")]


def torch_analytical_metrics(options: Any) -> list[MetricInfo]:
    return [metric_info(n) for n in ("flops_M", "params_M", "peak_act_kB", "energy_mJ_est")]


def measured_metrics(options: Any, backend: str) -> list[MetricInfo]:
    prefix, label = _BACKENDS[backend]
    where = f"{label}, this CPU"
    return [MetricInfo(f"{prefix}_latency_ms", f"Latency ({where})", "ms", "cpu", "min"),
            MetricInfo(f"{prefix}_latency_median_ms", f"Median latency ({where})", "ms",
                       "cpu", "min"),
            MetricInfo(f"{prefix}_latency_spread", f"Latency spread ({where})",
                       "IQR / median", "cpu", "min")]


def predictor_metrics(options: Any, backend: str) -> list[MetricInfo]:
    prefix, label = _BACKENDS[backend]
    return [MetricInfo(f"{prefix}_latency_pred_ms", f"Predicted latency ({label}, this CPU)",
                       "ms", "cpu", "min")]


def metric_prefix(device: str) -> str:
    """Metric names of a remote device: ``rpi4_latency_ms`` (dashes become underscores)."""
    return device.replace("-", "_")


def remote_metrics(options: Any, device: str) -> list[MetricInfo]:
    p, where = metric_prefix(device), f"ONNX Runtime on {device}"
    return [MetricInfo(f"{p}_latency_ms", f"Latency ({where})", "ms", device, "min"),
            MetricInfo(f"{p}_latency_median_ms", f"Median latency ({where})", "ms", device,
                       "min"),
            MetricInfo(f"{p}_latency_spread", f"Latency spread ({where})", "IQR / median",
                       device, "min"),
            MetricInfo(f"{p}_energy_mj", f"Energy per inference ({where})", "mJ", device,
                       "min")]


def remote_predictor_metrics(options: Any, device: str) -> list[MetricInfo]:
    return [MetricInfo(f"{metric_prefix(device)}_latency_pred_ms",
                       f"Predicted latency (ONNX Runtime on {device})", "ms", device, "min")]


# ---- collecting ------------------------------------------------------------------------------
def declared(entry: Entry, options: BaseModel | dict[str, Any] | None) -> list[MetricInfo]:
    """The metrics ``entry`` produces with these options; None-safe for undeclared plugins
    (an empty list; see ``undeclared``)."""
    if not entry.metrics:
        return []
    module, _, attr = entry.metrics.partition(":")
    fn = getattr(importlib.import_module(module), attr)
    parsed = options if isinstance(options, BaseModel) else entry.parse_options(options)
    return list(fn(parsed, **entry.fixed))


def describe_entry(entry: Entry) -> list[dict[str, Any]] | None:
    """Metrics of an entry with its default options, for ``/registries``; None when they
    depend on the options (a CSV's columns) or on a family's member (a device's name), or the
    plugin declares none."""
    if not entry.metrics or entry.suffix:
        return None
    try:
        return [{"name": m.name, **m.public()} for m in declared(entry, {})]
    except ValueError:  # required options (a CSV path): known per job only
        return None


@dataclass(frozen=True)
class JobMetrics:
    """Every metric a job's evaluator and profilers produce; ``complete`` is False when a
    component declares nothing (a plugin without a declaration), so absence proves nothing."""

    metrics: dict[str, MetricInfo]
    complete: bool

    def public(self) -> dict[str, dict[str, Any]]:
        return {name: m.public() for name, m in self.metrics.items()}


def _components(spec: JobSpec) -> Iterable[tuple[str, Entry, dict[str, Any]]]:
    yield "evaluator", EVALUATORS.get(spec.evaluator.name), spec.evaluator.options
    for i, p in enumerate(spec.profilers):
        yield f"profilers[{i}]", PROFILERS.get(p.name), p.options


def job_metrics(spec: JobSpec) -> JobMetrics:
    """The metrics of a (validated) job; ``SpecError`` naming the option at fault when a
    declaration refuses its options (a signal the table lacks, an unreadable CSV)."""
    from search.spec import SpecError

    out: dict[str, MetricInfo] = {}
    complete = True
    for where, entry, options in _components(spec):
        if not entry.metrics:
            complete = False
            continue
        try:
            infos = declared(entry, options)
        except OptionError as err:
            raise SpecError(f"{where}.options.{err.option}", str(err)) from None
        for m in infos:
            out.setdefault(m.name, m)
    return JobMetrics(out, complete)


def metrics_for_spec(spec: JobSpec) -> dict[str, MetricInfo]:
    """``{name: MetricInfo}`` of every metric the job's evaluator and profilers produce."""
    return job_metrics(spec).metrics


def named_metrics(spec: JobSpec) -> list[tuple[str, str]]:
    """``(field, metric)`` for every metric the job's objectives, constraints and reward name."""
    out = [(f"objectives[{i}].metric", o.metric) for i, o in enumerate(spec.objectives)]
    out += [(f"constraints[{i}].metric", c.metric) for i, c in enumerate(spec.constraints)]
    r = spec.reward
    if r.kind == "mnas":
        out += [("reward.accuracy", r.accuracy or ""), ("reward.latency", r.latency or "")]
    elif r.kind == "weighted":
        out += [(f"reward.weights.{k}", k) for k in r.weights]
    return out


def check_metrics(spec: JobSpec) -> JobMetrics:
    """Refuse (``SpecError`` naming the field and listing the valid names) a job whose
    objectives, constraints or reward name a metric its components do not produce."""
    from search.spec import SpecError

    found = job_metrics(spec)
    if not found.complete:
        return found
    for field, name in named_metrics(spec):
        if name not in found.metrics:
            valid = sorted(found.metrics)
            raise SpecError(field, f"metric {name!r} is not produced by this job's evaluator "
                            f"or profilers; valid metrics: {', '.join(valid) or 'none'}",
                            valid)
    return found
