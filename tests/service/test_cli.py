"""The CLI: ``token create`` on the server's database, and the client commands (submit,
jobs, watch, cancel, download) against a live uvicorn server with a worker."""

from __future__ import annotations

import json
import subprocess
import threading
import time

import pytest

from service.cli import main
from tests.service.conftest import PYTHON, REPO, free_port, job_spec, subprocess_env


@pytest.fixture
def live(app, settings, tokens, start_worker):
    import uvicorn

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    start_worker()
    yield f"http://127.0.0.1:{port}", tokens["alice"]
    server.should_exit = True
    thread.join(10)


def test_client_commands(live, tmp_path, capsys):
    url, token = live
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job_spec(name="cli-job", budget={"evaluations": 30})))
    common = ["--server", url, "--token", token]

    assert main(["submit", str(job_file), *common]) == 0
    job_id = capsys.readouterr().out.strip()
    assert len(job_id) == 32

    assert main(["watch", job_id, "--interval", "0.2", *common]) == 0
    captured = capsys.readouterr()
    assert "succeeded" in captured.out
    assert "30/30" in captured.err  # tqdm's bar reached the budget

    # Watching a finished job: no rate from evaluations done before (was 3373434.85eval/s).
    assert main(["watch", job_id, *common]) == 0
    again = capsys.readouterr().err
    assert "30/30" in again and "?eval/s" in again, again

    assert main(["jobs", *common]) == 0
    listing = capsys.readouterr().out
    assert job_id in listing and "succeeded" in listing and "cli-job" in listing

    out = tmp_path / "dl"
    assert main(["download", job_id, "--out", str(out), *common]) == 0
    assert json.loads((out / "job.json").read_text())["status"] == "succeeded"
    trials = json.loads((out / "trials.json").read_text())
    results = json.loads((out / "results.json").read_text())
    assert len(trials) == len(results["trials"]) >= 30

    capsys.readouterr()
    assert main(["note", job_id, "baseline for the paper", *common]) == 0
    assert capsys.readouterr().out.strip() == "baseline for the paper"
    assert main(["note", job_id, *common]) == 0
    assert capsys.readouterr().out.strip() == "baseline for the paper"
    assert main(["note", job_id, "x" * 10_001, *common]) == 1  # too long: 422 names the field
    assert "note" in capsys.readouterr().err
    assert main(["note", job_id, "", *common]) == 0 and capsys.readouterr().out.strip() == ""

    assert main(["cancel", job_id, *common]) == 1  # already finished: the server says 409
    assert "409" in capsys.readouterr().err
    assert main(["watch", "nope", *common]) == 1
    assert main(["jobs", "--server", url, "--token", "ls_bad"]) == 1
    assert "401" in capsys.readouterr().err


def test_submit_reports_validation_errors(live, tmp_path, capsys):
    url, token = live
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(job_spec(agent={"name": "ppo"})))
    assert main(["submit", str(bad), "--server", url, "--token", token]) == 1
    err = capsys.readouterr().err
    assert "422" in err and "agent.name" in err and "mnas" in err


def test_token_create_command(tmp_path):
    env = subprocess_env(LIGHTSEARCH_DATA_DIR=str(tmp_path))
    out = subprocess.run([PYTHON, "-m", "service.cli", "token", "create", "--user", "dana",
                          "--admin"], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120, check=True)
    token = out.stdout.strip()
    assert token.startswith("ls_") and "admin" in out.stderr
    from service import crud
    from service.core.db import Database

    db = Database.from_url(f"sqlite:///{tmp_path / 'lightsearch.db'}")
    with db.reading() as session:
        principal = crud.principal_for_token(session, token)
    db.dispose()
    assert principal is not None and principal.name == "dana" and principal.is_admin


def test_upload_commands(live, tmp_path, capsys, tokens):
    from PIL import Image

    url, token = live
    common = ["--server", url, "--token", token]
    table = tmp_path / "lat.csv"
    table.write_text("arch_str,latency\na,1.5\n")
    assert main(["upload", "table", str(table), *common]) == 0
    table_id = capsys.readouterr().out.strip()
    folder = tmp_path / "pets"
    for cls in ("cat", "dog"):
        (folder / cls).mkdir(parents=True)
        Image.new("RGB", (4, 4)).save(folder / cls / "1.png")
    assert main(["upload", "dataset", str(folder), *common]) == 0  # zipped on the way
    data_id = capsys.readouterr().out.strip()
    assert main(["upload", "model", str(table), *common]) == 1  # a CSV is no weights file
    assert "422" in capsys.readouterr().err

    assert main(["uploads", *common]) == 0
    listing = capsys.readouterr().out
    assert table_id in listing and data_id in listing and "pets.zip" in listing
    job_file = tmp_path / "job.json"
    job_file.write_text(json.dumps(job_spec(
        profilers=[{"name": "lut:pixel3"},
                   {"name": "csv", "options": {"path": f"upload:{table_id}"}}])))
    assert main(["submit", str(job_file), *common]) == 0
    capsys.readouterr()
    bob = ["--server", url, "--token", tokens["bob"]]
    assert main(["uploads", "--delete", table_id, *bob]) == 1  # not bob's: 404
    assert "404" in capsys.readouterr().err
    assert main(["submit", str(job_file), *bob]) == 1
    assert "422" in capsys.readouterr().err
    assert main(["uploads", "--delete", table_id, *common]) == 0
    capsys.readouterr()
    assert main(["uploads", "--json", *common]) == 0
    assert [u["id"] for u in json.loads(capsys.readouterr().out)["data"]] == [data_id]


def test_help_lists_every_command_in_full(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for command in ("search", "export", "serve", "worker", "token", "submit", "jobs", "watch",
                    "cancel", "note", "download", "upload", "uploads", "device",
                    "device-agent"):
        assert f"    {command} " in out, command
    description = out.split("positional arguments")[0]
    assert "search, export" in description and description.strip().endswith("device-agent.")


def test_one_demo_job_definition():
    """README's job JSON, the OpenAPI example and ``serve --demo`` are the example file."""
    from service.cli import demo_job
    from service.schemas import JOB_EXAMPLES, example_job

    example = json.loads((REPO / "examples" / "nb201_pixel3.json").read_text())
    readme = (REPO / "README.md").read_text().split("## Jobs", 1)[1]
    assert json.loads(readme.split("```json\n", 1)[1].split("```", 1)[0]) == example
    assert JOB_EXAMPLES["mnas-pixel3"]["value"] == example == example_job("nb201_pixel3.json")
    assert {k: v for k, v in demo_job().items() if k != "name"} == \
        {k: v for k, v in example.items() if k != "name"}


def test_readme_states_the_default_proposal_cap_once_and_right():
    from search.spec import PROPOSALS_PER_EVALUATION, parse_spec

    readme = (REPO / "README.md").read_text()
    assert f"default {PROPOSALS_PER_EVALUATION}x the" in readme
    assert "stops after 4x its budget" not in readme
    spec = parse_spec({"budget": {"evaluations": 7}})
    assert spec.max_proposals == PROPOSALS_PER_EVALUATION * 7
    assert "/healthz" in readme and "/readyz" in readme


def test_the_worker_starts_without_importing_torch_or_ray(tmp_path):
    """Under ``serve`` the first jobs sat queued ~20 s while the worker imported torch and
    Ray: a worker must be up (built, its database migrated) with neither imported; jobs pull
    them in when they run."""
    code = f"""
import sys
from pathlib import Path
from service.core.config import Settings
from service.core.db import Database
from service.migrations import upgrade
from service.worker import Worker
d = Path({str(tmp_path)!r})
settings = Settings(data_dir=d, database_url=f"sqlite:///{{d / 'db.sqlite'}}")
db = Database.from_url(settings.url)
upgrade(db.engine)
Worker(settings, db, worker_id="w")
print(sorted(m for m in ("torch", "ray") if m in sys.modules))
"""
    out = subprocess.run([PYTHON, "-c", code], capture_output=True, text=True, cwd=REPO,
                         env=subprocess_env(), timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
