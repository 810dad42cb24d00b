"""A job measured on remote devices, end to end: a real server (uvicorn + worker
subprocess), real device agents in their own processes on loopback, one of them killed
(SIGKILL) while it holds a measurement. SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.service.conftest import free_port, wait_for
from tests.service.proc import DeviceAgents, Server

pytestmark = pytest.mark.slow

PLUGINS = "tests.service.plugins,tests.service.device_plugins"


def remote_job(budget: int = 6, **options: Any) -> dict[str, Any]:
    return {
        "name": "remote-e2e", "space": {"name": "mnasnet"}, "agent": {"name": "random"},
        "evaluator": {"name": "svc-params"},
        "profilers": [{"name": "remote:loop", "options": {"rounds": 100, "repeats": 20,
                                                          **options}}],
        "objectives": [{"metric": "params_k", "direction": "min"},
                       {"metric": "loop_latency_ms", "direction": "min"}],
        "budget": {"evaluations": budget}, "executor": {"name": "local", "batch_size": 3},
        "seed": 1,
    }


def test_remote_job_survives_a_killed_agent(db_url: str, tmp_path: Path) -> None:
    server = Server(tmp_path / "data", free_port(),
                    extra_args=("--executor", "spec", "--database-url", db_url),
                    LIGHTSEARCH_DEVICE_LEASE_S="2", LIGHTSEARCH_PLUGINS=PLUGINS,
                    LIGHTSEARCH_POLL_S="0.1")
    server.start()
    agents: DeviceAgents | None = None
    engine = create_engine(db_url)
    try:
        api = server.client()
        r = api.post("/device-tokens", json={"name": "loop"})
        assert r.status_code == 201, r.text
        token = r.json()["token"]
        agents = DeviceAgents(server.url, token, tmp_path)
        agents.start("agent-one")
        pyz = tmp_path / "device" / "agent.pyz"  # the one-file agent, as a device fetches it
        pyz.parent.mkdir()
        pyz.write_bytes(httpx.get(f"{server.url}/api/v1/devices/agent/agent.pyz",
                                  headers={"Authorization": f"Bearer {token}"}).content)
        agents.start("agent-two", pyz)
        wait_for(lambda: api.get("/devices/loop").json()["agents_online"] == 2, 60)
        job = api.post("/jobs", json=remote_job()).json()

        def leased() -> Any:
            with engine.connect() as conn:
                return conn.execute(text(
                    "SELECT m.id, a.agent_key FROM device_measurements m JOIN device_agents a "
                    "ON a.id = m.agent_id WHERE m.status = 'leased'")).first()
        victim_measurement, victim = wait_for(leased, 120, 0.02)
        agents.kill(victim)  # mid-measurement: its lease runs out, the other agent takes it
        done = wait_for(lambda: (j := api.get(f"/jobs/{job['id']}").json())["status"]
                        in ("succeeded", "failed", "cancelled", "exhausted") and j, 300, 0.2)
        assert done["status"] == "succeeded", done["reason"]
        trials = api.get(f"/jobs/{job['id']}/trials", params={"limit": 100}).json()["data"]
        assert len(trials) >= 6 and all(t["state"] == "complete" for t in trials), \
            [(t["state"], t["error"]) for t in trials]
        assert all(t["metrics"]["loop_latency_ms"] > 0 for t in trials)
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT m.status, m.attempts, a.agent_key FROM device_measurements m "
                "JOIN device_agents a ON a.id = m.agent_id WHERE m.id = :id"),
                {"id": victim_measurement}).first()
            # the killed agent's measurement was leased again and done by the survivor
            assert row.status == "done" and row.attempts == 2 and row.agent_key != victim
            done_by = dict(conn.execute(text(
                "SELECT agent_key, measurements_done FROM device_agents")).all())
        survivor = next(k for k in done_by if k != victim)
        assert done_by[survivor] >= 1
        device = api.get("/devices/loop").json()
        assert device["measurements_done"] == sum(done_by.values())
        assert device["description"]["onnxruntime"]

        # the same candidates again: answered from the device's result cache
        before = device["measurements_done"]
        again = api.post("/jobs", json=remote_job()).json()
        final = wait_for(lambda: (j := api.get(f"/jobs/{again['id']}").json())["status"]
                         in ("succeeded", "failed") and j, 120, 0.2)
        assert final["status"] == "succeeded", final["reason"]
        assert api.get("/devices/loop").json()["measurements_done"] == before
    finally:
        if agents is not None:
            agents.stop()
        server.stop()
        engine.dispose()


def test_remote_trial_times_out_not_the_job(db_url: str, tmp_path: Path) -> None:
    """No agent online: each trial fails after its timeout with the reason; the job ends
    with the failures recorded instead of waiting forever or crashing."""
    server = Server(tmp_path / "data", free_port(),
                    extra_args=("--executor", "spec", "--database-url", db_url),
                    LIGHTSEARCH_PLUGINS=PLUGINS, LIGHTSEARCH_POLL_S="0.1")
    server.start()
    try:
        api = server.client()
        assert api.post("/device-tokens", json={"name": "loop"}).status_code == 201
        spec = remote_job(budget=2, timeout_s=1.0)
        spec["budget"]["max_failures"] = 2
        job = api.post("/jobs", json=spec).json()
        final = wait_for(lambda: (j := api.get(f"/jobs/{job['id']}").json())["status"]
                         in ("succeeded", "failed") and j, 120, 0.2)
        trials = api.get(f"/jobs/{job['id']}/trials").json()["data"]
        assert trials and all(t["state"] == "failed" for t in trials)
        assert "remote:loop: no result within 1 s" in trials[0]["error"]
        assert "no agent took it" in trials[0]["error"]
        assert final["status"] == "failed" and "no result within" in final["reason"]
        # an unknown device is refused at submit, naming the field
        bad = api.post("/jobs", json={**remote_job(), "profilers": [
            {"name": "remote:nosuch"}]})
        assert bad.status_code == 422
        assert bad.json()["errors"][0]["field"] == "profilers[0].name"
    finally:
        server.stop()
