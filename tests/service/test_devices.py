"""Remote devices on SQLite and PostgreSQL: device tokens and their scope, registration,
leases (expiry, re-queue, heartbeats), the result cache, timeouts; the agent's measurement
and energy integration; the agent's light imports."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import PYTHON, REPO, auth, job_spec, subprocess_env

AGENT_A, AGENT_B = "agent-aaaa", "agent-bbbb"
#: the REST route's default protocol
PROTOCOL = {"input_shape": [1, 28, 28], "batch_size": 1, "warmup": 5, "rounds": 5,
            "repeats": 10}


@pytest.fixture
def settings(db_url: str, tmp_path: Path) -> Any:  # a short device lease
    from service.core.config import Settings

    return Settings(data_dir=tmp_path / "data", database_url=db_url, executor="spec",
                    lease_s=5.0, poll_s=0.05, cancel_poll_s=0.05, auth_cache_s=0.0,
                    plugins="tests.service.plugins", device_lease_s=0.5)


class FakeClock:
    """The devices' notion of now, moved by hand: lease expiry without sleeping, so a slow
    machine cannot let a lease run out between two requests of one step."""

    def __init__(self) -> None:
        from service.models import utcnow

        self.now = utcnow()

    def __call__(self) -> Any:
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now += timedelta(seconds=seconds)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    from service.devices import access, queue

    fake = FakeClock()
    monkeypatch.setattr(queue, "utcnow", fake)
    monkeypatch.setattr(access, "utcnow", fake)
    return fake


def device_token(client: Any, root: str, name: str = "rpi4", users: Any = None) -> str:
    body: dict[str, Any] = {"name": name}
    if users is not None:
        body["users"] = users
    r = client.post("/api/v1/device-tokens", json=body, headers=auth(root))
    assert r.status_code == 201, r.text
    assert r.json()["token"].startswith("lsd_")
    return r.json()["token"]


def register(client: Any, token: str, key: str) -> dict[str, Any]:
    r = client.post("/api/v1/devices/agent/register",
                    json={"agent_key": key, "description": {"cpu": "test cpu"}},
                    headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()


def lease(client: Any, token: str, key: str) -> Any:
    r = client.post("/api/v1/devices/agent/lease", json={"agent_key": key}, headers=auth(token))
    assert r.status_code == 200, r.text
    return r.json()["measurement"]


def report(client: Any, token: str, key: str, mid: int, ms: float = 1.0) -> Any:
    timing = {"min_ms": ms, "median_ms": ms, "spread": 0.0, "fastest_ms": ms}
    return client.post(f"/api/v1/devices/agent/measurements/{mid}/result",
                       json={"agent_key": key, "models": [timing], "device": {"cpu": "x"}},
                       headers=auth(token))


def queue_model(db: Any, data: bytes = b"onnx-bytes", name: str = "rpi4") -> tuple[Any, Any]:
    from service.core.security import Principal
    from service.devices.link import DbDeviceLink

    link = DbDeviceLink(db, Principal(0, "root", True))
    return link, link.submit(name, [data], dict(PROTOCOL))


def test_register_and_list(client: Any, tokens: dict[str, str], clock: FakeClock) -> None:
    dev = device_token(client, tokens["root"], users=["alice"])
    info = register(client, dev, AGENT_A)
    assert info["device"] == "rpi4" and info["heartbeat_s"] < info["lease_s"]
    mine = client.get("/api/v1/devices", headers=auth(tokens["alice"])).json()
    assert mine["count"] == 1
    row = mine["data"][0]
    assert row["status"] == "online" and row["agents_online"] == 1
    assert row["description"]["cpu"] == "test cpu" and row["last_heartbeat_at"]
    assert row["users"] is None  # only admins see who may use it
    assert client.get("/api/v1/devices", headers=auth(tokens["bob"])).json()["count"] == 0
    assert client.get("/api/v1/devices/rpi4", headers=auth(tokens["bob"])).status_code == 404
    assert client.get("/api/v1/devices/rpi4",
                      headers=auth(tokens["root"])).json()["users"] == ["alice"]
    clock.advance(1.1)  # two leases without a heartbeat: offline
    assert client.get("/api/v1/devices/rpi4",
                      headers=auth(tokens["alice"])).json()["status"] == "offline"
    # only admins create device tokens; names are checked
    r = client.post("/api/v1/device-tokens", json={"name": "x"}, headers=auth(tokens["alice"]))
    assert r.status_code == 403
    r = client.post("/api/v1/device-tokens", json={"name": "../x"},
                    headers=auth(tokens["root"]))
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"


def test_device_token_scope(client: Any, tokens: dict[str, str]) -> None:
    job = client.post("/api/v1/jobs", json=job_spec(), headers=auth(tokens["alice"])).json()
    dev = device_token(client, tokens["root"])
    for path in ("/api/v1/jobs", f"/api/v1/jobs/{job['id']}",
                 f"/api/v1/jobs/{job['id']}/trials", "/api/v1/devices", "/api/v1/users/me"):
        r = client.get(path, headers=auth(dev))
        assert r.status_code == 403, (path, r.status_code)
        assert "device token" in r.json()["detail"]
    r = client.post("/api/v1/devices/agent/lease", json={"agent_key": AGENT_A},
                    headers=auth(tokens["alice"]))
    assert r.status_code == 403
    r = client.post("/api/v1/devices/agent/lease", json={"agent_key": AGENT_A},
                    headers=auth("lsd_not-a-token"))
    assert r.status_code == 401


def test_lease_expiry_requeue_and_fence(client: Any, db: Any, tokens: dict[str, str],
                                        clock: FakeClock) -> None:
    dev = device_token(client, tokens["root"])
    register(client, dev, AGENT_A)
    register(client, dev, AGENT_B)
    _link, ticket = queue_model(db)
    work = lease(client, dev, AGENT_A)
    assert work["id"] == ticket.id and work["options"]["sizes"] == [10]
    r = client.get(f"/api/v1/devices/agent/measurements/{ticket.id}/models",
                   params={"agent_key": AGENT_A}, headers=auth(dev))
    assert r.content == b"onnx-bytes"
    assert lease(client, dev, AGENT_B) is None  # leased to A
    clock.advance(0.7)  # A vanished: its lease runs out
    again = lease(client, dev, AGENT_B)
    assert again["id"] == ticket.id
    assert report(client, dev, AGENT_A, ticket.id).status_code == 409  # fenced off
    r = client.get(f"/api/v1/devices/agent/measurements/{ticket.id}/models",
                   params={"agent_key": AGENT_A}, headers=auth(dev))
    assert r.status_code == 404
    assert report(client, dev, AGENT_B, ticket.id, 2.5).status_code == 200
    row = client.get("/api/v1/devices/rpi4", headers=auth(tokens["root"])).json()
    assert row["measurements_done"] == 1 and row["queue_length"] == 0


def test_lease_lost_three_times_fails(client: Any, db: Any, tokens: dict[str, str],
                                      clock: FakeClock) -> None:
    from service.devices import queue

    dev = device_token(client, tokens["root"])
    register(client, dev, AGENT_A)
    _link, ticket = queue_model(db)
    for _ in range(3):
        assert lease(client, dev, AGENT_A)["id"] == ticket.id
        clock.advance(0.6)
    assert lease(client, dev, AGENT_A) is None
    status, _result, error = queue.state(db, ticket.id)
    assert status == "failed" and "lost the lease 3 times" in error


def test_heartbeat_keeps_the_lease(client: Any, db: Any, tokens: dict[str, str],
                                   clock: FakeClock) -> None:
    dev = device_token(client, tokens["root"])
    register(client, dev, AGENT_A)
    register(client, dev, AGENT_B)
    _link, ticket = queue_model(db)
    lease(client, dev, AGENT_A)
    for _ in range(6):  # 1.2 s, over twice the lease
        clock.advance(0.2)
        r = client.post("/api/v1/devices/agent/heartbeat",
                        json={"agent_key": AGENT_A, "measurement_id": ticket.id},
                        headers=auth(dev))
        assert r.json() == {"held": True}
        assert lease(client, dev, AGENT_B) is None
    r = client.post("/api/v1/devices/agent/heartbeat",
                    json={"agent_key": AGENT_B, "measurement_id": ticket.id}, headers=auth(dev))
    assert r.json() == {"held": False}
    assert report(client, dev, AGENT_A, ticket.id).status_code == 200


def test_cache_hit_and_shared_queue(client: Any, db: Any, tokens: dict[str, str]) -> None:
    dev = device_token(client, tokens["root"])
    register(client, dev, AGENT_A)
    link, first = queue_model(db)
    _, joined = queue_model(db)
    assert joined.id == first.id  # the same model queued twice: one measurement
    _, other = queue_model(db, b"another model")
    assert other.id != first.id
    lease(client, dev, AGENT_A)
    assert report(client, dev, AGENT_A, first.id, 3.0).status_code == 200
    assert link.wait(first, 5)["models"][0]["min_ms"] == 3.0
    _, hit = queue_model(db)
    assert hit.id is None and hit.result["models"][0]["min_ms"] == 3.0
    # the REST route answers from the same cache, for a user who may use the device
    r = client.post("/api/v1/devices/rpi4/measurements", content=b"onnx-bytes",
                    headers={**auth(tokens["alice"]),
                             "Content-Type": "application/octet-stream"})
    assert r.status_code == 202 and r.json()["status"] == "done"
    assert r.json()["result"]["models"][0]["min_ms"] == 3.0
    # a different protocol is a different measurement
    assert link.submit("rpi4", [b"onnx-bytes"], {**PROTOCOL, "rounds": 7}).id is not None


def test_timeout_withdraws_and_fails(client: Any, db: Any, tokens: dict[str, str]) -> None:
    from search.base import ProfileFailed
    from service.devices import queue

    dev = device_token(client, tokens["root"])
    register(client, dev, AGENT_A)
    link, ticket = queue_model(db)
    t0 = time.monotonic()
    with pytest.raises(ProfileFailed, match="no result within 0.3 s.*no agent took it"):
        link.wait(ticket, 0.3)
    assert time.monotonic() - t0 < 3
    assert queue.state(db, ticket.id)[0] == "failed"
    assert lease(client, dev, AGENT_A) is None


def test_job_naming_a_device_is_checked_at_submit(client: Any, tokens: dict[str, str]) -> None:
    device_token(client, tokens["root"], users=["alice"])
    for name in ("remote:rpi4", "predictor:remote:rpi4"):
        spec = job_spec(profilers=[{"name": "lut:pixel3"}, {"name": name}])
        r = client.post("/api/v1/jobs", json=spec, headers=auth(tokens["alice"]))
        assert r.status_code == 201, r.text
        r = client.post("/api/v1/jobs", json=spec, headers=auth(tokens["bob"]))
        assert r.status_code == 422, r.text  # bob may not use it; told like a missing one
        bob_error = r.json()["errors"][0]
        assert bob_error["field"] == "profilers[1].name"
        spec["profilers"][1]["name"] = name.replace("rpi4", "rpi5")
        r = client.post("/api/v1/jobs", json=spec, headers=auth(tokens["alice"]))
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == "profilers[1].name"
        assert "not registered" in r.json()["errors"][0]["message"]
        assert bob_error["message"] == r.json()["errors"][0]["message"].replace("rpi5", "rpi4")


def test_unknown_or_forbidden_device(db: Any, tokens: dict[str, str], client: Any) -> None:
    from service.core.security import Principal
    from service.devices.link import DbDeviceLink

    device_token(client, tokens["root"], users=["alice"])
    with pytest.raises(ValueError, match="not registered or user 'bob' may not use it"):
        DbDeviceLink(db, Principal(2, "bob")).check("rpi4")
    with pytest.raises(ValueError, match="not registered"):
        DbDeviceLink(db, Principal(1, "alice")).check("jetson")
    DbDeviceLink(db, Principal(1, "alice")).check("rpi4")


# ---- the agent's side (no database) ----------------------------------------------------------
def _tiny_onnx(width: int) -> bytes:
    import torch
    from torch import nn

    from search.profilers.measured import onnx_bytes

    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, width, 3, padding=1), nn.ReLU(), nn.Flatten(),
                          nn.Linear(width * 8 * 8, 10))
    return onnx_bytes(model, torch.zeros(1, 1, 8, 8))


def test_agent_measures_and_integrates_power(tmp_path: Path) -> None:
    from service.device_agent.measure import (
        MeasureConfig,
        PowerReading,
        energy_per_call,
        measure_models,
    )

    small, big = _tiny_onnx(2), _tiny_onnx(64)
    rows = measure_models([small, big], {"rounds": 5, "repeats": 5, "warmup": 2},
                          MeasureConfig(threads=1))
    assert len(rows) == 2 and all(r["fastest_ms"] <= r["median_ms"] for r in rows)
    assert rows[1]["median_ms"] > rows[0]["median_ms"]  # a wider layer costs more
    power_file = tmp_path / "power_now"
    power_file.write_text("2500000\n")  # 2.5 W in microwatts, as sysfs writes it
    power = PowerReading(file=str(power_file), scale=1e-6, interval_s=0.01, energy_s=0.3)

    calls, first, last = 0, 0.0, 0.0

    def run() -> None:  # about 2 ms per call: 2.5 W * 2 ms = 5 mJ
        nonlocal calls, first, last
        first = first or time.perf_counter()
        calls += 1
        time.sleep(0.002)
        last = time.perf_counter()

    mj, n = energy_per_call(run, power)
    assert n == calls and n > 20
    # 2.5 W over the calls' span (a loaded machine stretches the sleeps), plus at most 50 ms
    # of sampling window around them
    span_mj = 2.5 * (last - first) * 1e3 / n
    assert 0.95 * span_mj < mj < span_mj + 2.5 * 50 / n, (mj, span_mj)
    assert 4.0 < span_mj, span_mj
    with pytest.raises(ValueError, match="exactly one"):
        PowerReading()


def test_agent_imports_no_torch_or_ray() -> None:
    code = ("import sys; from service.cli import main\n"
            "try: main(['device-agent', '--help'])\nexcept SystemExit: pass\n"
            "heavy = {m.split('.')[0] for m in sys.modules} & "
            "{'torch', 'ray', 'sqlalchemy', 'fastapi', 'pandas', 'pydantic'}\n"
            "print('HEAVY', sorted(heavy))")
    out = subprocess.run([PYTHON, "-c", code], cwd=REPO, env=subprocess_env(),
                         capture_output=True, text=True, timeout=60)
    assert "HEAVY []" in out.stdout, out.stdout + out.stderr


def test_one_file_agent_holds_every_module_it_imports(client: Any, tokens: dict[str, str],
                                                      tmp_path: Path) -> None:
    """``agent.pyz`` (served to device tokens only) runs from itself: every project module the
    agent imports comes from inside the file, none from this checkout."""
    dev = device_token(client, tokens["root"])
    assert client.get("/api/v1/devices/agent/agent.pyz",
                      headers=auth(tokens["alice"])).status_code == 403
    r = client.get("/api/v1/devices/agent/agent.pyz", headers=auth(dev))
    assert r.status_code == 200 and r.headers["etag"].strip('"')
    pyz = tmp_path / "agent.pyz"
    pyz.write_bytes(r.content)
    code = ("import runpy, sys\n"
            f"sys.argv = ['agent.pyz', '--help']\n"
            f"try: runpy.run_path({str(pyz)!r}, run_name='__main__')\n"
            "except SystemExit: pass\n"
            "mine = [m for m in sys.modules if m.split('.')[0] in "
            "('search', 'service', 'spaces', 'agents')]\n"
            f"print('OUTSIDE', sorted(m for m in mine if not "
            f"(getattr(sys.modules[m], '__file__', '') or '').startswith({str(pyz)!r})))\n"
            "print('LOADED', len(mine))")
    out = subprocess.run([PYTHON, "-c", code], cwd=tmp_path, env=subprocess_env(),
                         capture_output=True, text=True, timeout=60)
    assert "OUTSIDE []" in out.stdout and "--server" in out.stdout, out.stdout + out.stderr
    assert "LOADED 12" in out.stdout, out.stdout


def test_cli_device_token_and_list(tmp_path: Path, capsys: Any, db_url: str,
                                   monkeypatch: Any) -> None:
    from service.cli import main

    # the commands export their flags to the environment: restored after the test
    monkeypatch.setenv("LIGHTSEARCH_DATA_DIR", str(tmp_path / "cli"))
    monkeypatch.setenv("LIGHTSEARCH_DATABASE_URL", db_url)
    server = ["--data-dir", str(tmp_path / "cli"), "--database-url", db_url]
    assert main(["device", "token", "create", "--name", "jetson", "--users", "alice",
                 *server]) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("lsd_")
    assert main(["device", "token", "create", "--name", "Bad/Name", *server]) == 2
    assert main(["device", "list", "--json", *server]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["status"], r["users"]) for r in rows] == [
        ("jetson", "offline", ["alice"])]
    assert main(["device", "token", "revoke", "--name", "jetson", *server]) == 0
    assert "1 token(s)" in capsys.readouterr().out


def agent_on(app: Any, token: str, **kw: Any) -> Any:
    """A real ``DeviceAgent`` whose HTTP client is the app's test client (no socket)."""
    from fastapi.testclient import TestClient

    from service.device_agent.agent import DeviceAgent
    from service.device_agent.measure import MeasureConfig

    agent = DeviceAgent("http://testserver", token, MeasureConfig(threads=1), **kw)
    agent.http.close()
    agent.http = TestClient(app, headers={"Authorization": f"Bearer {token}"})
    return agent


def test_agent_loop_measures_a_queued_model(app: Any, client: Any, db: Any,
                                           tokens: dict[str, str]) -> None:
    dev = device_token(client, tokens["root"])
    link, ticket = queue_model(db, _tiny_onnx(4), name="rpi4")
    agent = agent_on(app, dev, poll_s=0.01)
    agent.run(max_measurements=1)
    result = link.wait(ticket, 5)
    timing = result["models"][0]
    assert 0 < timing["fastest_ms"] <= timing["min_ms"] <= timing["median_ms"]
    assert result["device"]["onnxruntime"] and result["device"]["threads"] == 1
    row = client.get("/api/v1/devices/rpi4", headers=auth(tokens["root"])).json()
    assert row["measurements_done"] == 1 and row["description"]["cpu"]


def test_agent_with_a_user_token_stops(app: Any, tokens: dict[str, str]) -> None:
    import httpx

    agent = agent_on(app, tokens["alice"])
    with pytest.raises(httpx.HTTPStatusError, match="403"):
        agent.run()


def test_agent_reads_power_and_the_profiler_reports_energy(app: Any, client: Any, db: Any,
                                                           tokens: dict[str, str],
                                                           tmp_path: Path) -> None:
    from search.profilers.remote import RemoteLatencyProfiler
    from service.device_agent.measure import PowerReading

    dev = device_token(client, tokens["root"])
    power_file = tmp_path / "power_now"
    power_file.write_text("3000000\n")  # 3 W, in microwatts
    link, ticket = queue_model(db, _tiny_onnx(4), name="rpi4")
    agent = agent_on(app, dev, poll_s=0.01)
    agent.config.power = PowerReading(file=str(power_file), scale=1e-6, interval_s=0.01,
                                      energy_s=0.3)
    agent.run(max_measurements=1)
    metrics = RemoteLatencyProfiler("rpi4").metrics_of(link.wait(ticket, 5))
    # 3 W for a whole call: at least the call's fastest time, at most its wall time + slack
    assert metrics["rpi4_energy_mj"] >= 3 * metrics["rpi4_latency_ms"] * 0.5
    assert metrics["rpi4_energy_mj"] < 3 * 50.0
    assert set(metrics) == {"rpi4_latency_ms", "rpi4_latency_median_ms",
                            "rpi4_latency_spread", "rpi4_energy_mj"}
