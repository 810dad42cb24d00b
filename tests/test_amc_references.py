"""benchmarks/amc_references.py: the reference, not the seed, is the unit of comparison."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import amc_references as refs

TARGET = "resnet_small:flops:0.05"


def _result(sha: str, acc: dict[str, list[float]]) -> dict:
    rows = [{"target": TARGET, "method": m, "seed": s, "test_acc_ft3": v,
             "test_acc_ft1": v - 2}
            for m, values in acc.items() for s, v in enumerate(values)]
    return {"references": {"resnet_small": {"weights_sha1": sha, "test_acc_full": 90.5}},
            "rows": rows}


def test_each_reference_counts_once_however_many_seeds_it_has() -> None:
    # reference x: AMC ahead by 1 on four seeds; reference y: behind by 1 on two seeds
    results = {"x": _result("aa", {"amc": [86, 87, 88, 89], "uni": [85, 86, 87, 88]}),
               "y": _result("bb", {"amc": [85, 85], "uni": [86, 86]})}
    summary = refs.compare(results, TARGET, [("amc", "uni")], ["test_acc_ft3"], [0, 1, 2, 3])
    c = summary["comparisons"][0]
    assert [r["mean"] for r in c["per_reference"]] == pytest.approx([1.0, -1.0])
    assert [r["short"] for r in c["per_reference"]] == [False, True]
    assert c["references"] == 2 and c["ahead"] == 1
    assert c["mean"] == pytest.approx(0.0)  # a seed-level pool would say +0.33
    assert c["low"] < 0 < c["high"]


def test_a_lead_on_every_reference_gives_an_interval_above_zero() -> None:
    results = {f"r{i}": _result(f"s{i}", {"amc": [86 + d, 87 + d], "uni": [86, 87]})
               for i, d in enumerate([0.9, 1.1, 1.0, 1.2])}
    c = refs.compare(results, TARGET, [("amc", "uni")], ["test_acc_ft3"], [0, 1])
    c = c["comparisons"][0]
    assert c["mean"] == pytest.approx(1.05) and c["low"] > 0 and c["ahead"] == 4


def test_a_reference_without_one_of_the_methods_is_left_out_of_that_pair() -> None:
    results = {"x": _result("aa", {"amc": [87], "uni": [86], "fill": [86.5]}),
               "y": _result("bb", {"amc": [87], "uni": [86.5]})}
    summary = refs.compare(results, TARGET, [("amc", "fill")], ["test_acc_ft3"], [0])
    assert [r["result"] for r in summary["comparisons"][0]["per_reference"]] == ["x"]


def test_the_same_reference_given_twice_is_refused(tmp_path: Path) -> None:
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for p in (a, b):
        p.write_text(json.dumps(_result("same", {"amc": [87], "uni": [86]})))
    with pytest.raises(SystemExit):
        refs.main(["--result", str(a), "--result", str(b), "--target", TARGET,
                   "--pair", "amc:uni"])


def test_main_writes_the_summary(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    paths = []
    for i, d in enumerate([0.5, 1.5]):
        p = tmp_path / f"r{i}.json"
        p.write_text(json.dumps(_result(f"s{i}", {"amc": [87 + d], "uni": [87]})))
        paths += ["--result", str(p)]
    out = tmp_path / "summary.json"
    assert refs.main([*paths, "--target", TARGET, "--pair", "amc:uni", "--seeds", "0",
                      "--out", str(out)]) == 0
    saved = json.loads(out.read_text())
    assert saved["comparisons"][0]["mean"] == pytest.approx(1.0)
    assert "amc − uni" in capsys.readouterr().out
    assert refs.parse_seeds("0-3") == [0, 1, 2, 3] and refs.parse_seeds("1,4") == [1, 4]
