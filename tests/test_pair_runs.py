"""Pairing stored search_quality results by seed across files (benchmarks/pair_runs.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.pair_runs import load_values, main, pair_agents


def _report(path: Path, agent: str, seeds: list[int], values: dict[str, list[float]],
            explicit: bool = True) -> Path:
    """A result file shaped as search_quality writes it (one suite, one agent)."""
    row = {b: {"values": v, **({"seeds": seeds} if explicit else {})} for b, v in values.items()}
    row["proposals_per_evaluation"] = 1.0  # not a budget cell: ignored
    path.write_text(json.dumps({
        "config": {"seeds": [min(seeds), max(seeds), len(seeds)]},
        "suites": {"val_acc": {"agents": {agent: row}}},
    }))
    return path


def test_chunks_merge_and_pairs_use_only_the_seeds_both_have(tmp_path: Path) -> None:
    ours = _report(tmp_path / "ours.json", "mnas", [0, 1, 2, 3], {"50": [1.0, 2.0, 3.0, 5.0]},
                   explicit=False)
    a = _report(tmp_path / "a.json", "gp", [0, 1], {"50": [0.5, 1.0], "100": [9.0, 9.0]})
    b = _report(tmp_path / "b.json", "gp", [2, 7], {"50": [2.0, 0.0]})
    theirs = load_values("gp", [a, b], "val_acc")
    assert theirs["50"] == {0: 0.5, 1: 1.0, 2: 2.0, 7: 0.0}
    pairs = pair_agents(load_values("mnas", [ours], "val_acc"), theirs)
    assert list(pairs) == ["50"]  # 100 only on one side
    cell = pairs["50"]
    assert cell["n"] == 3 and cell["seeds"] == [0, 1, 2]  # seeds 3 and 7 are on one side
    assert cell["mean"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)


def test_a_seed_with_two_values_or_an_unknown_seed_order_is_refused(tmp_path: Path) -> None:
    a = _report(tmp_path / "a.json", "gp", [0, 1], {"50": [0.5, 1.0]})
    b = _report(tmp_path / "b.json", "gp", [1], {"50": [2.0]})
    with pytest.raises(ValueError, match="seed 1"):
        load_values("gp", [a, b], "val_acc")
    # an older file whose values do not cover its seed range: which seed is which is unknown
    short = _report(tmp_path / "s.json", "gp", [0, 1, 2], {"50": [1.0, 2.0]}, explicit=False)
    with pytest.raises(ValueError, match="which seed"):
        load_values("gp", [short], "val_acc")
    with pytest.raises(ValueError, match="no agent 'tpe'"):
        load_values("tpe", [a], "val_acc")


def test_command_line_prints_and_writes_the_pairs(tmp_path: Path, capsys) -> None:
    ours = _report(tmp_path / "o.json", "mnas", [0, 1, 2], {"50": [3.0, 3.0, 4.0]})
    theirs = _report(tmp_path / "t.json", "tpe", [0, 1, 2], {"50": [1.0, 2.0, 2.0]})
    out = tmp_path / "pairs.json"
    main(["--ours", f"mnas={ours}", "--theirs", f"tpe={theirs}", "--out", str(out)])
    assert "tpe: 50: +1.6667" in capsys.readouterr().out
    assert json.loads(out.read_text())["pairs"]["tpe"]["50"]["n"] == 3
    with pytest.raises(SystemExit):
        main(["--ours", "mnas", "--theirs", f"tpe={theirs}"])
    with pytest.raises(SystemExit):  # one agent named twice would hide the first pairing
        main(["--ours", f"mnas={ours}", "--theirs", f"tpe={theirs}", "--theirs", f"tpe={theirs}"])
