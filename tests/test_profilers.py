"""Device look-up profilers (shipped NB201 tables, user CSVs) and the analytical counter."""

from __future__ import annotations

import csv
import gzip
import os
import pickle
from collections.abc import Sequence

import numpy as np
import pytest

from search.base import MetricNotMeasured
from search.profilers.analytical import AnalyticalProfiler, nb201_cost
from search.profilers.lookup import CsvProfiler, NB201DeviceProfiler
from search.registry import NB201_DEVICES, PROFILERS
from search.tables import NB201_HELP_FILE, NB201_HWNAS_FILE, nb201_accuracy_table
from spaces.base import Categorical, Space
from spaces.nb201 import NB201Space

SPACE = NB201Space()


def raw_rows(path) -> list[dict[str, str]]:
    """The shipped file as strings, read without pandas or our table code."""
    with gzip.open(path, "rt") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def hw_rows() -> list[dict[str, str]]:
    return raw_rows(NB201_HWNAS_FILE)


@pytest.fixture(scope="module")
def help_rows() -> list[dict[str, str]]:
    return raw_rows(NB201_HELP_FILE)


class TinySpace(Space):
    name = "tiny"

    @property
    def decisions(self) -> Sequence[Categorical]:
        return (Categorical("width", (8, 16)),)


@pytest.mark.parametrize("device", sorted(NB201_DEVICES))
def test_lut_returns_the_table_values(device: str, hw_rows, help_rows) -> None:
    prof = PROFILERS.create(f"lut:{device}")
    assert isinstance(prof, NB201DeviceProfiler)
    assert prof.metrics() == list(NB201_DEVICES[device])
    rows = help_rows if device in ("gold_6226", "titanx_1", "titanx_32", "samsung_a50",
                                   "pixel2") else hw_rows
    for index in (1, 6111, 15624):
        arch = SPACE.from_index(index)
        assert rows[index]["arch_str"] == SPACE.key(arch)
        raw = {m: rows[index][m if m in rows[index] else device] for m in prof.metrics()}
        expected = {m: float(v) for m, v in raw.items() if v not in ("", "-1")}
        if not expected:
            with pytest.raises(MetricNotMeasured):
                prof.profile(arch, SPACE)
            continue
        got = prof.profile(arch, SPACE)
        assert got.keys() == expected.keys()
        for metric, value in expected.items():
            assert got[metric] == pytest.approx(value, rel=1e-12)
    info = prof.describe()
    assert info["device"] == device and info["device_description"]
    assert len(info["provenance"]["sha256"]) == 64


def test_lut_not_measured_is_left_out_never_zero(hw_rows) -> None:
    minus_one = next(i for i, r in enumerate(hw_rows) if r["edgetpu_latency"] == "-1")
    with pytest.raises(MetricNotMeasured, match="edgetpu"):
        NB201DeviceProfiler("edgetpu").profile(SPACE.from_index(minus_one), SPACE)

    blank = next(i for i, r in enumerate(hw_rows) if r["edgegpu_latency"] == "")
    with pytest.raises(MetricNotMeasured, match="edgegpu"):
        NB201DeviceProfiler("edgegpu").profile(SPACE.from_index(blank), SPACE)

    # Eyeriss latency is simulated for every row; its energy is blank on some: partial result.
    got = NB201DeviceProfiler("eyeriss").profile(SPACE.from_index(blank), SPACE)
    assert got == {"eyeriss_latency": float(hw_rows[blank]["eyeriss_latency"])}


def test_lut_rejects_unknown_device_and_other_spaces() -> None:
    with pytest.raises(ValueError, match="pixel3"):
        NB201DeviceProfiler("pixel9")
    with pytest.raises(ValueError, match="nb201"):
        NB201DeviceProfiler("pixel3").profile({"width": 8}, TinySpace())


@pytest.fixture
def user_csv(tmp_path):
    """A user's measurements: blanks and -1 where the device could not run."""
    arch = [SPACE.from_index(i) for i in range(4)]
    path = tmp_path / "phone.csv"
    path.write_text(
        "arch_index,arch_str,latency_ms,energy_mj,board\n"
        f"0,{SPACE.key(arch[0])},12.5,3.0,a\n"
        f"1,{SPACE.key(arch[1])},,2.0,a\n"
        f"2,{SPACE.key(arch[2])},-1,,b\n"
        f"3,{SPACE.key(arch[3])},0,-1,b\n"
    )
    return path, arch


def test_csv_profiler_blank_and_minus_one_are_not_measured(user_csv) -> None:
    path, arch = user_csv
    prof = PROFILERS.create("csv", options={"path": str(path), "prefix": "phone_"})
    assert prof.metrics() == ["phone_latency_ms", "phone_energy_mj"]  # ids, text left out
    assert prof.profile(arch[0], SPACE) == {"phone_latency_ms": 12.5, "phone_energy_mj": 3.0}
    assert prof.profile(arch[1], SPACE) == {"phone_energy_mj": 2.0}
    with pytest.raises(MetricNotMeasured, match="phone.csv"):
        prof.profile(arch[2], SPACE)
    assert prof.profile(arch[3], SPACE) == {"phone_latency_ms": 0.0}  # a real 0 stays 0
    with pytest.raises(MetricNotMeasured, match="no row"):
        prof.profile(SPACE.from_index(100), SPACE)


def test_csv_profiler_keyed_by_index(user_csv) -> None:
    path, arch = user_csv
    prof = CsvProfiler(str(path), key_column="arch_index", columns=["latency_ms"])
    assert prof.metrics() == ["latency_ms"]
    assert prof.profile(arch[0], SPACE) == {"latency_ms": 12.5}
    with pytest.raises(MetricNotMeasured):
        prof.profile(arch[1], SPACE)


def test_csv_profiler_errors_name_path_and_column(user_csv, tmp_path) -> None:
    path, arch = user_csv
    with pytest.raises(ValueError, match="nope.csv"):
        CsvProfiler(str(tmp_path / "nope.csv"))
    with pytest.raises(ValueError, match="'power'"):
        CsvProfiler(str(path), columns=["latency_ms", "power"])
    with pytest.raises(ValueError, match="key column 'arch_id'"):
        CsvProfiler(str(path), key_column="arch_id")
    prof = CsvProfiler(str(path), columns=["board"])  # header is fine; values are text
    with pytest.raises(ValueError, match="'board'.*not numeric"):
        prof.profile(arch[0], SPACE)


def test_csv_edits_reach_new_profilers_only(user_csv) -> None:
    path, arch = user_csv
    prof = CsvProfiler(str(path), columns=["latency_ms"])
    assert prof.profile(arch[0], SPACE) == {"latency_ms": 12.5}
    path.write_text(path.read_text().replace(",12.5,", ",13.25,"))
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert prof.profile(arch[0], SPACE) == {"latency_ms": 12.5}  # one job, one table version
    fresh = CsvProfiler(str(path), columns=["latency_ms"])  # the next job in this worker
    assert fresh.profile(arch[0], SPACE) == {"latency_ms": 13.25}


def test_csv_profiler_rejects_bad_keys(tmp_path) -> None:
    key = SPACE.key(SPACE.from_index(0))
    dup = tmp_path / "dup.csv"
    dup.write_text(f"arch_str,lat\n{key},1\n{key},2\n")
    with pytest.raises(ValueError, match="dup.csv.*repeats"):
        CsvProfiler(str(dup)).profile(SPACE.from_index(0), SPACE)
    blank = tmp_path / "blank.csv"
    blank.write_text(f"arch_str,lat\n{key},1\n,2\n")
    with pytest.raises(ValueError, match="blank.csv.*blank in data row 2"):
        CsvProfiler(str(blank)).profile(SPACE.from_index(0), SPACE)


def test_profilers_pickle_without_their_table(user_csv) -> None:
    path, arch = user_csv
    prof = CsvProfiler(str(path))
    prof.profile(arch[0], SPACE)
    clone = pickle.loads(pickle.dumps(prof))
    assert clone._loaded is None
    assert clone.profile(arch[0], SPACE) == prof.profile(arch[0], SPACE)


def test_analytical_matches_the_table_on_every_architecture() -> None:
    table = nb201_accuracy_table()
    keys = table.column("arch_index")  # rows in arch_index order
    flops, params = table.column("flops_M"), table.column("params_M")
    got = np.empty((len(keys), 2))
    for i in keys:
        cost = nb201_cost(SPACE.from_index(int(i)))
        got[i] = (cost.macs / 1e6, cost.params / 1e6)
    # The table prints 6 decimals of millions, i.e. whole MACs and parameters: exact.
    assert np.abs(got[:, 0] - flops).max() < 1e-9
    assert np.abs(got[:, 1] - params).max() < 1e-9


def test_analytical_profiler_interface() -> None:
    prof = PROFILERS.create("analytical")
    assert isinstance(prof, AnalyticalProfiler)
    arch = SPACE.from_index(6111)
    assert set(prof.profile(arch, SPACE)) == set(prof.metrics()) == {"flops_M", "params_M"}
    empty = SPACE.from_arch_str("|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    conv = SPACE.from_arch_str(
        "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|"
    )
    # One 3x3 conv edge per cell: 15 cells x 9 x C^2 x HW with C^2 x HW = 16^2 x 32^2.
    diff = prof.profile(conv, SPACE)["flops_M"] - prof.profile(empty, SPACE)["flops_M"]
    assert diff == pytest.approx(15 * 9 * 16**2 * 32**2 / 1e6)
    with pytest.raises(ValueError, match="cannot count space 'tiny'.*nb201"):
        prof.profile({"width": 8}, TinySpace())
