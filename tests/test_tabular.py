"""The tabular evaluator: the signal reaches the agent, test accuracy only the record."""

from __future__ import annotations

import csv
import gzip
import math
import pickle

import pytest

from search import tables
from search.base import MetricNotMeasured
from search.evaluators.tabular import TabularEvaluator
from search.registry import EVALUATORS
from spaces.nb201 import NB201Space

SPACE = NB201Space()
BEST = SPACE.from_index(6111)  # the README's known optimum


def test_nb201_signal_and_record_are_separate() -> None:
    ev = EVALUATORS.create("tabular")
    assert ev.signal_metrics() == ["val_acc"]
    out = ev.evaluate(BEST, SPACE, seed=0)
    assert out.metrics == {"val_acc": pytest.approx(91.61, abs=0.005)}
    assert out.recorded["test_acc"] == pytest.approx(94.37, abs=0.005)
    assert out.recorded["arch_index"] == 6111
    assert "val_acc" not in out.recorded
    assert {"test_acc", "cifar10valid_test_acc", "train_acc", "flops_M"} <= set(out.recorded)


def test_low_fidelity_signal_and_chosen_record() -> None:
    ev = TabularEvaluator(signal="val_acc_12ep", record=["test_acc", "flops_M"])
    out = ev.evaluate(BEST, SPACE, seed=3)
    assert set(out.metrics) == {"val_acc_12ep"}
    assert set(out.recorded) == {"test_acc", "flops_M"}
    with gzip.open(tables.NB201_ACCURACY_FILE, "rt") as fh:
        raw = next(r for r in csv.DictReader(fh) if r["arch_index"] == "6111")
    assert out.metrics["val_acc_12ep"] == pytest.approx(float(raw["val_acc_12ep"]), rel=1e-12)
    assert out.recorded["test_acc"] == pytest.approx(float(raw["test_acc"]), rel=1e-12)


def test_keyed_by_arch_index_gives_the_same_answer() -> None:
    by_str = TabularEvaluator().evaluate(BEST, SPACE, seed=0)
    by_index = TabularEvaluator(key_column="arch_index").evaluate(BEST, SPACE, seed=0)
    assert by_index.metrics == by_str.metrics
    assert by_index.recorded["test_acc"] == by_str.recorded["test_acc"]


def test_bad_columns_are_named() -> None:
    with pytest.raises(ValueError, match="'val_accuracy'.*val_acc_12ep"):
        TabularEvaluator(signal="val_accuracy")
    with pytest.raises(ValueError, match="'test_accuracy'"):
        TabularEvaluator(record=["test_acc", "test_accuracy"])
    with pytest.raises(ValueError, match="key column 'id'"):
        TabularEvaluator(key_column="id")
    with pytest.raises(ValueError, match="missing.csv"):
        TabularEvaluator(table="/nonexistent/missing.csv")


def test_lazy_and_picklable() -> None:
    tables._read_table.cache_clear()
    ev = TabularEvaluator()
    assert tables._read_table.cache_info().currsize == 0  # construction read the header only
    blob = pickle.dumps(ev)
    assert len(blob) < 2000  # no table travels to Ray workers
    clone = pickle.loads(blob)
    assert clone.evaluate(BEST, SPACE, seed=0).metrics == ev.evaluate(BEST, SPACE, seed=0).metrics
    assert tables._read_table.cache_info().currsize == 1


def test_user_table_with_unmeasured_values(tmp_path) -> None:
    a, b, c = (SPACE.from_index(i) for i in (0, 1, 2))
    path = tmp_path / "proxy.csv"
    path.write_text(
        "arch_str,proxy_acc,test_acc,note\n"
        f"{SPACE.key(a)},71.5,,fast\n"
        f"{SPACE.key(b)},,88.0,slow\n"
        f"{SPACE.key(c)},-1,-1,\n"
    )
    ev = TabularEvaluator(table=str(path), signal="proxy_acc")
    out = ev.evaluate(a, SPACE, seed=0)
    assert out.metrics == {"proxy_acc": 71.5}
    assert out.recorded == {"test_acc": None, "note": "fast"}  # not measured is None, not 0
    for arch in (b, c):
        with pytest.raises(MetricNotMeasured, match="proxy_acc"):
            ev.evaluate(arch, SPACE, seed=0)
    with pytest.raises(MetricNotMeasured, match="no row"):
        ev.evaluate(SPACE.from_index(3), SPACE, seed=0)
    text_signal = TabularEvaluator(table=str(path), signal="note")
    with pytest.raises(ValueError, match="'note'.*not numeric"):
        text_signal.evaluate(a, SPACE, seed=0)
    assert not math.isnan(out.metrics["proxy_acc"])
