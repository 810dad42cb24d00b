"""``lightsearch search``: runs a job file, writes results, rejects bad files clearly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def lightsearch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "search.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300,
                          env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})


@pytest.mark.parametrize("example", ["nb201_val_acc.json", "nb201_pixel3.json"])
def test_example_job_runs_and_writes_results(tmp_path, example):
    out = tmp_path / "r.json"
    proc = lightsearch("search", str(REPO / "examples" / example), "--budget", "30",
                       "--agent", "evolution", "--out", str(out), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out.read_text())
    assert results["status"] == "succeeded"
    assert results["evaluations"] == 30
    assert results["spec"]["budget"]["evaluations"] == 30
    assert results["pareto_front"] and results["best"]
    assert all("test_acc" in t["recorded"] for t in results["trials"] if t["state"] == "complete")
    assert "Pareto front" in proc.stdout
    if len(results["objectives"]) == 2:
        assert results["hypervolume"]["value"] > 0
        assert len(results["pareto_front"]) > 1


@pytest.mark.parametrize(
    ("spec", "field", "hint"),
    [
        ({"agent": {"name": "nope"}}, "agent.name",
         "valid agents: amc, deep_first, evolution, gp, mnas"),
        ({"profilers": [{"name": "lut:iphone"}]}, "profilers", "lut:pixel3"),
        ({"budget": {"evaluations": -5}}, "budget.evaluations", "greater than or equal to 1"),
        ({"agent": {"name": "evolution", "options": {"population": 3}}}, "agent",
         "population"),
        ({"evaluator": {"name": "tabular", "options": {"signal": "nope"}}},
         "evaluator.options.signal", "val_acc_12ep"),
        ({"objectives": [{"metric": "zzz"}]}, "objectives[0].metric",
         "valid metrics: val_acc"),
        ({"budget": {"evaluations": True}}, "budget.evaluations", "valid integer"),
        ({"budget": {"max_proposals": 1e20}}, "budget.max_proposals", "valid integer"),
    ],
)
def test_bad_job_file_gets_one_clear_message(tmp_path, spec, field, hint):
    job = tmp_path / "job.json"
    job.write_text(json.dumps(spec))
    proc = lightsearch("search", str(job), cwd=tmp_path)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert field in proc.stderr and hint in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_unreadable_job_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = lightsearch("search", str(bad), cwd=tmp_path)
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_job_short_of_its_budget_exits_3_and_says_exhausted(tmp_path):
    spec = json.loads((REPO / "examples" / "nb201_val_acc.json").read_text())
    spec["agent"] = {"name": "random"}
    spec["budget"] = {"evaluations": 30, "max_proposals": 5}
    job_file, out = tmp_path / "j.json", tmp_path / "r.json"
    job_file.write_text(json.dumps(spec))
    proc = lightsearch("search", str(job_file), "--out", str(out), "--quiet", cwd=tmp_path)
    assert proc.returncode == 3, proc.stderr
    results = json.loads(out.read_text())
    assert results["status"] == "exhausted"
    assert results["reason"].startswith("5 of 30 evaluations reached")
