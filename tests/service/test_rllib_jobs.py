"""The ``rllib`` agent through the service: submit-time validation (no ray import), a job run
by a worker (SQLite and PostgreSQL), and SIGKILL + restart mid-job (slow)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.service.conftest import REPO, auth, free_port, job_spec, wait_for
from tests.service.proc import Server, committed_trials

API = "/api/v1"
FINISHED = ("succeeded", "failed", "cancelled", "exhausted")
LSTM_PPO = {"name": "rllib", "options": {
    "algorithm": "PPO", "config": {"lr": 0.005}, "episodes_per_update": 4,
    "model": {"use_lstm": True, "lstm_cell_size": 32}}}


@pytest.mark.parametrize(("options", "words"), [
    ({"algorithm": "DDPG"}, ["algorithm", "PPO"]),
    ({"algorithm": "SAC", "config": {"clip_param": 0.3}}, ["config", "clip_param"]),
    ({"model": {"use_lstm": "maybe"}}, ["model", "use_lstm"]),
    ({"algorithm": "SAC", "lbound": 1.5}, ["lbound"]),
    ({"environment": "architecture", "lbound": 0.5}, ["lbound", "architecture"]),
])
def test_bad_options_are_422_naming_the_field(client, tokens, options, words):
    r = client.post(f"{API}/jobs", json=job_spec(agent={"name": "rllib", "options": options}),
                    headers=auth(tokens["alice"]))
    assert r.status_code == 422, r.text
    err = r.json()["errors"][0]
    assert err["field"] == "agent"
    for word in words:
        assert word in err["message"], err["message"]


def test_validating_an_rllib_job_imports_neither_ray_nor_torch():
    code = ("import sys, json\n"
            "from search.spec import JobSpec\n"
            f"JobSpec.model_validate({{'agent': {LSTM_PPO!r}}})\n"
            "print(json.dumps(['ray' in sys.modules, 'torch' in sys.modules]))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, timeout=120, check=True)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == [False, False]


def test_rllib_job_runs_in_the_worker(client, tokens, start_worker):
    h = auth(tokens["alice"])
    spec = job_spec(agent=LSTM_PPO, budget={"evaluations": 24},
                    evaluator={"name": "svc-slow", "options": {
                        "delay_s": 0.0, "fail_ops": ["avg_pool_3x3"]}},
                    executor={"name": "local", "batch_size": 4})
    job_id = client.post(f"{API}/jobs", json=spec, headers=h).json()["id"]
    start_worker()
    job = wait_for(lambda: (j := client.get(f"{API}/jobs/{job_id}", headers=h).json())[
        "status"] in FINISHED and j, 180, 0.2)
    assert job["status"] == "succeeded", job["reason"]
    trials = client.get(f"{API}/jobs/{job_id}/trials", params={"limit": 1000},
                        headers=h).json()["data"]
    assert job["progress"]["evaluations"] == 24
    assert {t["info"]["origin"] for t in trials} == {"rllib:PPO"}
    assert any(t["state"] == "failed" for t in trials)  # failures told, the job went on
    assert max(t["info"]["update"] for t in trials) >= 3  # the Learner was updated


@pytest.mark.slow
def test_sigkill_mid_job_then_resume_loses_and_repeats_nothing(tmp_path):
    """As tests/service/test_resume.py, with the RLlib agent's state in the checkpoints."""
    data = tmp_path / "data"
    server = Server(data, free_port(), LIGHTSEARCH_LEASE_S="5")
    spec = job_spec(name="rllib-crash", agent=LSTM_PPO,
                    evaluator={"name": "svc-slow", "options": {"delay_s": 0.05}},
                    budget={"evaluations": 60}, executor={"name": "local", "batch_size": 4})
    seen_before: dict[int, tuple] = {}
    try:
        server.start()
        with server.client() as http:
            job_id = http.post("/jobs", json=spec).json()["id"]
        with server.client() as http:
            wait_for(lambda: http.get(f"/jobs/{job_id}").json()["progress"]["trials"] >= 20,
                     240, 0.1)
        server.kill()
        seen_before.update(committed_trials(data / "lightsearch.db", job_id))
        assert len(seen_before) >= 20
        server.start()
        with server.client() as http:
            job = wait_for(lambda: (j := http.get(f"/jobs/{job_id}").json())["status"]
                           in FINISHED and j, 300, 0.2)
            trials = http.get(f"/jobs/{job_id}/trials", params={"limit": 1000}).json()
    finally:
        server.stop()
    assert job["status"] == "succeeded", job["reason"]
    assert job["resumed"] == 1
    final = {t["trial_id"]: (t["arch_key"], t["reward"]) for t in trials["data"]}
    assert trials["count"] == len(final) == job["progress"]["trials"]
    for trial_id, value in seen_before.items():
        assert final[trial_id] == value
    assert sorted(final) == list(range(len(final)))
    assert job["progress"]["evaluations"] == 60
    assert len({k for k, _ in final.values()}) == 60  # distinct evaluations, none lost
