"""Device cost by table look-up: the shipped NAS-Bench-201 device tables, or any user CSV.

A profiler returns only what was measured: blank and -1 cells are left out (never 0), and
``MetricNotMeasured`` is raised only when nothing at all was measured for the architecture.
The loop marks a trial INVALID when an objective or constraint metric is absent.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from search.base import MetricNotMeasured, Profiler
from search.registry import NB201_DEVICE_NAMES, NB201_DEVICES
from search.tables import (
    ID_COLUMNS,
    NB201_HELP_DEVICES,
    NB201_HELP_FILE,
    NB201_HWNAS_FILE,
    Table,
    arch_key,
    measured,
    nb201_device_table,
    read_header,
    read_table,
)
from search.trials import KnownValues
from spaces.base import Architecture, Space

_UNITS = {"latency": "ms", "energy": "mJ", "arithmetic_intensity": "ops/byte"}


@lru_cache(maxsize=8)
def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _unit(metric: str) -> str:
    return next((u for suffix, u in _UNITS.items() if metric.endswith(suffix)), "")


class NB201DeviceProfiler(Profiler):
    """One device's columns of the HW-NAS-Bench / HELP tables for NAS-Bench-201 cells."""

    def __init__(self, device: str) -> None:
        if device not in NB201_DEVICES:
            raise ValueError(
                f"unknown NAS-Bench-201 device {device!r}; valid: {', '.join(NB201_DEVICES)}"
            )
        self.device = device
        self.name = f"lut:{device}"
        self._metrics = list(NB201_DEVICES[device])

    def metrics(self) -> list[str]:
        return list(self._metrics)

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        if space.name != "nb201":
            raise ValueError(
                f"profiler {self.name!r} has measurements for the 'nb201' space only, "
                f"got space {space.name!r}"
            )
        table = nb201_device_table()
        key = space.key(arch)
        values = measured(table.row(key, self._metrics))
        if not values:
            raise MetricNotMeasured(
                f"{self.device} has no measurement of {', '.join(self._metrics)} for {key}"
            )
        return values

    def known_values(self, space: Space) -> KnownValues | None:
        return nb201_device_table().known(self._metrics) if space.name == "nb201" else None

    def describe(self) -> dict[str, Any]:
        source = NB201_HELP_FILE if self.device in NB201_HELP_DEVICES else NB201_HWNAS_FILE
        return {
            "name": self.name,
            "device": self.device,
            "device_description": NB201_DEVICE_NAMES[self.device],
            "metrics": self.metrics(),
            "units": {m: _unit(m) for m in self._metrics},
            "provenance": {
                "table": source.name,
                "sha256": _sha256(str(source)),
                "source": "HELP (Lee et al., NeurIPS 2021)" if source == NB201_HELP_FILE
                else "HW-NAS-Bench (Li et al., ICLR 2021)",
            },
        }


class CsvProfiler(Profiler):
    """Per-architecture measurements from a user's CSV: one row per architecture.

    Construction reads only the header (checks the key and the named columns); the rows are
    read on first use. With ``columns=None`` every numeric column but the identifiers
    (``arch_index``, ``arch_str``) and the key is reported, as ``prefix + column``.
    """

    name = "csv"

    def __init__(
        self,
        path: str,
        key_column: str = "arch_str",
        columns: list[str] | None = None,
        prefix: str = "",
    ) -> None:
        self.path = str(Path(path).expanduser().resolve())
        header = read_header(self.path)  # ValueError naming the path when it is missing
        if key_column not in header:
            raise ValueError(f"key column {key_column!r} is not in {self.path}; "
                             f"columns: {header}")
        if columns is not None:
            if not columns:
                raise ValueError("columns must name at least one column (or be left out)")
            missing = [c for c in columns if c not in header]
            if missing:
                raise ValueError(f"column(s) {missing} not in {self.path}; columns: {header}")
            if key_column in columns:
                raise ValueError(f"columns must not include the key column {key_column!r}")
        self.key_column = key_column
        self.prefix = prefix
        self._columns = list(columns) if columns is not None else None
        self._loaded: Table | None = None  # per process; never pickled

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}

    def _table(self) -> Table:
        # Read once per instance: a job sees one version of the file even if it is edited.
        if self._loaded is None:
            table = read_table(self.path, self.key_column)
            if self._columns is None:
                self._columns = [
                    c for c in table.columns if c in table.numeric and c not in ID_COLUMNS
                ]
                if not self._columns:
                    raise ValueError(f"{self.path} has no numeric column besides the key")
            table.require_numeric(self._columns)
            self._loaded = table
        return self._loaded

    def metrics(self) -> list[str]:
        if self._columns is None:
            self._table()
        return [self.prefix + c for c in self._columns or ()]

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        table = self._table()
        key = arch_key(space, arch, self.key_column)
        row = table.row(key, self._columns or ())
        values = measured({self.prefix + c: v for c, v in row.items()})
        if not values:
            raise MetricNotMeasured(f"{self.path} has no measurement for {key!r}")
        return values

    def known_values(self, space: Space) -> KnownValues | None:
        known = self._table().known(self._columns or ())
        known.columns = {self.prefix + c: v for c, v in known.columns.items()}
        return known

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": "user CSV",
            "device_description": f"measurements read from {Path(self.path).name}",
            "metrics": self.metrics(),
            "provenance": {"table": self.path, "sha256": _sha256(self.path),
                           "key_column": self.key_column},
        }
