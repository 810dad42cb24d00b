"""Evaluate by table look-up: the agent sees one ``signal`` column, everything else is recorded.

On NAS-Bench-201 the signal is ``val_acc`` (or the cheap ``val_acc_12ep``); ``test_acc`` is
what papers report for the returned architecture and must never steer the search, so it only
goes to ``Evaluation.recorded``. The evaluator is shipped to Ray workers: it holds only its
options and loads the table (once per process, see ``search.tables``) on first use.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from search.base import Evaluation, Evaluator, MetricNotMeasured, is_measured
from search.tables import (
    ID_COLUMNS,
    NB201_ACCURACY_FILE,
    Table,
    arch_key,
    read_header,
    read_table,
)
from search.trials import KnownValues
from spaces.base import Architecture, Space


class TabularEvaluator(Evaluator):
    """Look up ``signal`` (and the ``record`` columns) for an architecture in a table.

    ``table`` is ``"nb201"`` (the shipped CIFAR-10 table) or a CSV path. The table's rows
    hold averages over training seeds, so ``seed`` does not change the answer.
    """

    name = "tabular"

    def __init__(
        self,
        table: str = "nb201",
        key_column: str = "arch_str",
        signal: str = "val_acc",
        record: list[str] | Literal["all"] = "all",
    ) -> None:
        path = NB201_ACCURACY_FILE if table == "nb201" else Path(table).expanduser().resolve()
        header = read_header(path)  # ValueError naming the path when it is missing
        if key_column not in header:
            raise ValueError(f"key column {key_column!r} is not in {path}; columns: {header}")
        data_columns = [c for c in header if c != key_column]
        if signal not in data_columns:
            raise ValueError(
                f"signal column {signal!r} is not in {path}; columns: {data_columns}"
            )
        if record == "all":
            recorded = [c for c in data_columns if c != signal]
        elif isinstance(record, str):
            raise ValueError(f"record must be 'all' or a list of columns, got {record!r}")
        else:
            missing = [c for c in record if c not in data_columns]
            if missing:
                raise ValueError(
                    f"record column(s) {missing} not in {path}; columns: {data_columns}"
                )
            recorded = [c for c in record if c != signal]
        self.table = table
        self.path = str(path)
        self.key_column = key_column
        self.signal = signal
        self.record = recorded
        self._loaded: Table | None = None  # per process; never pickled

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_loaded": None}

    def _table(self) -> Table:
        # Read once per instance: a job sees one version of the table even if it is edited.
        if self._loaded is None:
            table = read_table(self.path, self.key_column)
            table.require_numeric([self.signal])
            self._loaded = table
        return self._loaded

    def signal_metrics(self) -> list[str]:
        return [self.signal]

    def evaluate(self, arch: Architecture, space: Space, *, seed: int) -> Evaluation:
        table = self._table()
        key = arch_key(space, arch, self.key_column)
        row = table.row(key, [self.signal, *self.record])
        value = row.pop(self.signal)
        if not is_measured(value):
            raise MetricNotMeasured(f"{self.signal} is not measured for {key!r} in {self.path}")
        recorded = {
            c: (v if c in ID_COLUMNS or c not in table.numeric or is_measured(v) else None)
            for c, v in row.items()
        }
        return Evaluation(metrics={self.signal: float(value)}, recorded=recorded)

    def known_values(self, space: Space) -> KnownValues | None:
        return self._table().known([self.signal])

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "table": self.table, "path": self.path,
                "key_column": self.key_column, "signal": self.signal, "record": self.record}
