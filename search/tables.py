"""Per-architecture tables (the shipped NAS-Bench-201 files and users' CSVs), loaded once.

Profilers and evaluators look rows up by an architecture's key thousands of times per job, so
a table is read with pandas once per process (``functools.lru_cache``; the key includes the
file's mtime and size so an edited file is re-read by a long-lived worker) and turned into
plain numpy columns plus a ``key -> row`` dict: a look-up is a dict hit and a few array reads.

Blank cells and ``-1`` mean "not measured" (HW-NAS-Bench marks edge-TPU failures with -1):
both are kept as NaN, never 0, in every numeric column but the identifiers. Tables are shared
between callers and must not be modified.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from search.base import MetricNotMeasured, is_measured
from search.registry import NB201_DEVICES
from spaces.base import Architecture, Space
from spaces.nb201 import DATA_DIR

if TYPE_CHECKING:
    from search.trials import KnownValues

#: Identifier columns: never metrics, never rewritten from -1 to NaN.
ID_COLUMNS: tuple[str, ...] = ("arch_index", "arch_str")

NB201_ACCURACY_FILE = DATA_DIR / "nb201_cifar10.csv.gz"
NB201_HWNAS_FILE = DATA_DIR / "hwnasbench_nb201_cifar10.csv.gz"
NB201_HELP_FILE = DATA_DIR / "nb201_device_latency_ms.csv.gz"
#: HELP names its columns by device only (``pixel2``); we expose them as ``pixel2_latency``.
NB201_HELP_DEVICES: tuple[str, ...] = ("gold_6226", "titanx_1", "titanx_32", "samsung_a50",
                                       "pixel2")


class Table:
    """Columns of one table, indexed by its key column (``arch_str`` or ``arch_index``)."""

    def __init__(self, frame: pd.DataFrame, key_column: str, source: str) -> None:
        if key_column not in frame.columns:
            raise ValueError(
                f"key column {key_column!r} is not in {source}; columns: {list(frame.columns)}"
            )
        self.source = source
        self.key_column = key_column
        keys = frame[key_column]
        if keys.isna().any():
            row = int(np.flatnonzero(keys.isna().to_numpy())[0])
            raise ValueError(f"{source}: key column {key_column!r} is blank in data row {row + 1}")
        self.integer_keys = bool(pd.api.types.is_integer_dtype(keys))
        key_list = (
            [int(k) for k in keys] if self.integer_keys else [str(k).strip() for k in keys]
        )
        self._pos: dict[Any, int] = {k: i for i, k in enumerate(key_list)}
        if len(self._pos) != len(key_list):
            dup = keys[keys.duplicated()].head(5).tolist()
            raise ValueError(f"{source}: key column {key_column!r} repeats keys, e.g. {dup}")

        self._data: dict[str, np.ndarray] = {}
        numeric: set[str] = set()
        for col in frame.columns:
            if col == key_column:
                continue
            series = frame[col]
            if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series):
                if col in ID_COLUMNS and pd.api.types.is_integer_dtype(series):
                    self._data[col] = series.to_numpy(dtype=np.int64)
                else:
                    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
                    if col not in ID_COLUMNS:
                        values = np.where(values == -1.0, np.nan, values)
                    self._data[col] = values
                numeric.add(col)
            else:
                self._data[col] = series.astype(object).where(series.notna(), None).to_numpy()
        self.numeric: frozenset[str] = frozenset(numeric)
        self.columns: tuple[str, ...] = tuple(self._data)

    def __len__(self) -> int:
        return len(self._pos)

    def __contains__(self, key: object) -> bool:
        return key in self._pos

    def require_numeric(self, columns: Iterable[str]) -> None:
        """Raise ``ValueError`` naming the first column that is absent or holds non-numbers."""
        for col in columns:
            if col not in self._data:
                raise ValueError(
                    f"column {col!r} is not in {self.source}; columns: {list(self.columns)}"
                )
            if col not in self.numeric:
                values = self._data[col]
                bad = next(
                    (i for i, v in enumerate(values) if v is not None and not _is_number(v)), 0
                )
                raise ValueError(
                    f"column {col!r} of {self.source} is not numeric "
                    f"(data row {bad + 1}: {values[bad]!r})"
                )

    def position(self, key: Any) -> int:
        """Row of ``key``; ``MetricNotMeasured`` when the table has no row for it."""
        if self.integer_keys:
            try:
                key = int(key)
            except (TypeError, ValueError):
                raise ValueError(
                    f"{self.source}: key column {self.key_column!r} holds integers, "
                    f"got key {key!r}"
                ) from None
        else:
            key = str(key).strip()
        try:
            return self._pos[key]
        except KeyError:
            raise MetricNotMeasured(f"{self.source} has no row for {key!r}") from None

    def row(self, key: Any, columns: Iterable[str]) -> dict[str, Any]:
        """Values of ``columns`` for ``key`` as Python scalars; not measured stays NaN."""
        pos = self.position(key)
        return {col: _scalar(self._data[col][pos]) for col in columns}

    def keys(self, column: str | None = None) -> list[Any]:
        """Each row's architecture name: the key column, or ``column`` (e.g. ``arch_str``
        in a table keyed by ``arch_index``) so tables can be matched row by row."""
        if column is None or column == self.key_column or column not in self._data:
            return list(self._pos)
        return [str(v).strip() if v is not None else None for v in self._data[column]]

    def known(self, columns: Iterable[str]) -> KnownValues:
        """Whole numeric columns with their rows' architecture names (``arch_str`` when the
        table has it), for ``known_values`` of the plugins that read tables."""
        from search.trials import KnownValues

        return KnownValues(self.keys("arch_str"),
                           {c: np.asarray(self._data[c], dtype=float) for c in columns
                            if c in self.numeric})

    def column(self, name: str) -> np.ndarray:
        """A whole column (read-only view), e.g. to rank every architecture in a benchmark."""
        view = self._data[name].view()
        view.flags.writeable = False
        return view


def _is_number(value: Any) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _scalar(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _resolve(path: str | Path) -> Path:
    p = Path(path).expanduser().resolve()
    if not p.is_file():
        raise ValueError(f"table file not found: {p}")
    return p


def read_header(path: str | Path) -> list[str]:
    """Column names of a CSV (plain or compressed) without reading its rows."""
    p = _resolve(path)
    try:
        return [str(c) for c in pd.read_csv(p, nrows=0).columns]
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"cannot read the header of {p}: {err}") from None


def read_table(path: str | Path, key_column: str = "arch_str") -> Table:
    """The table in ``path`` keyed by ``key_column``, read once per process per file version."""
    p = _resolve(path)
    st = p.stat()
    return _read_table(str(p), st.st_mtime_ns, st.st_size, key_column)


@lru_cache(maxsize=32)
def _read_table(path: str, _mtime_ns: int, _size: int, key_column: str) -> Table:
    try:
        frame = pd.read_csv(path)
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError, OSError) as err:
        raise ValueError(f"cannot read table {path}: {err}") from None
    return Table(frame, key_column, path)


def nb201_accuracy_table(key_column: str = "arch_str") -> Table:
    """NAS-Bench-201 CIFAR-10 accuracies, FLOPs and parameters (see the data README)."""
    return read_table(NB201_ACCURACY_FILE, key_column)


@lru_cache(maxsize=2)
def nb201_device_table(key_column: str = "arch_str") -> Table:
    """HW-NAS-Bench and HELP device columns in one table, named as in ``NB201_DEVICES``."""
    hw = pd.read_csv(NB201_HWNAS_FILE)
    help_ = pd.read_csv(NB201_HELP_FILE)
    if not hw["arch_str"].equals(help_["arch_str"]):
        raise ValueError(f"{NB201_HWNAS_FILE.name} and {NB201_HELP_FILE.name} differ in row order")
    renamed = help_[list(NB201_HELP_DEVICES)].rename(
        columns={d: f"{d}_latency" for d in NB201_HELP_DEVICES}
    )
    frame = pd.concat([hw, renamed], axis=1)
    table = Table(frame, key_column, f"{NB201_HWNAS_FILE.name}+{NB201_HELP_FILE.name}")
    table.require_numeric(c for cols in NB201_DEVICES.values() for c in cols)
    return table


def arch_key(space: Space, arch: Architecture, key_column: str) -> Any:
    """How a table names ``arch``: the space's index for ``arch_index``, else ``space.key``."""
    if key_column == "arch_index":
        to_index = getattr(space, "to_index", None)
        if callable(to_index):
            return to_index(arch)
    return space.key(arch)


def measured(values: Mapping[str, Any]) -> dict[str, float]:
    """Only the measured entries (NaN, None and -1 dropped), as floats."""
    return {k: float(v) for k, v in values.items() if is_measured(v)}
