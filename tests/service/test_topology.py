"""The docker-compose topology started by hand: a Ray head and a second Ray node
(``ray start`` on free ports), PostgreSQL, and the API + worker pointed at them. A job's
trials must run on both nodes."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time

import pytest

from tests.service.conftest import free_port, job_spec, subprocess_env, wait_for
from tests.service.proc import Server

RAY = shutil.which("ray") or "ray"


def _ray_start(args: list[str], env: dict[str, str], temp_dir: str, worker_ports: int) -> int:
    """``ray start`` in a new process group; returns the group id (to kill only ours).

    Its own temp dir keeps the 'current cluster' pointer out of /tmp/ray, where a plain
    ``ray.init()`` by anyone else on the machine would otherwise find (and try) it."""
    ports = [free_port() for _ in range(6)]
    cmd = [RAY, "start", *args, "--num-cpus=1", "--node-ip-address=127.0.0.1",
           f"--temp-dir={temp_dir}",
           f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
           f"--metrics-export-port={ports[2]}", f"--dashboard-agent-listen-port={ports[3]}",
           f"--dashboard-agent-grpc-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
           f"--min-worker-port={worker_ports}", f"--max-worker-port={worker_ports + 199}",
           "--disable-usage-stats"]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out, _ = proc.communicate(timeout=180)
    assert proc.returncode == 0, out[-3000:]
    return proc.pid


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.mark.slow
@pytest.mark.ray
def test_trials_spread_over_a_two_node_cluster(tmp_path, pg_url):
    gcs_port = free_port()
    token_file = tmp_path / "ray-token"  # the cluster's own token, shared by every process
    token_file.write_text(secrets.token_hex(32))
    ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
    env = subprocess_env(**ray_env)
    groups = []
    server = None
    temp_dir = tempfile.mkdtemp(prefix="lsray", dir="/tmp")  # short: socket paths < 108
    # Worker port ranges below Linux's ephemeral range (32768+), where free_port() draws.
    base = 20000 + secrets.randbelow(45) * 200
    try:
        groups.append(_ray_start(["--head", f"--port={gcs_port}", "--include-dashboard=false",
                                  f"--ray-client-server-port={free_port()}"], env, temp_dir,
                                 base))
        groups.append(_ray_start([f"--address=127.0.0.1:{gcs_port}"], env, temp_dir,
                                 base + 200))
        server = Server(tmp_path / "data", free_port(),
                        RAY_ADDRESS=f"127.0.0.1:{gcs_port}", LIGHTSEARCH_DATABASE_URL=pg_url,
                        LIGHTSEARCH_EXECUTOR="ray", **ray_env).start()
        spec = job_spec(name="two-nodes", profilers=[], objectives=[{"metric": "val_acc"}],
                        evaluator={"name": "svc-slow", "options": {"delay_s": 0.3}},
                        budget={"evaluations": 16},
                        executor={"name": "ray", "batch_size": 4, "chunk_size": 1})
        with server.client() as http:
            job_id = http.post("/jobs", json=spec).json()["id"]
            job = wait_for(lambda: (j := http.get(f"/jobs/{job_id}").json())["status"]
                           in ("succeeded", "failed", "cancelled", "exhausted") and j, 300, 0.5)
            trials = http.get(f"/jobs/{job_id}/trials", params={"limit": 100}).json()["data"]
        assert job["status"] == "succeeded", job["reason"]
        nodes = {t["node"] for t in trials if not t["cached"]}
        assert len(nodes) == 2, nodes
    finally:
        if server is not None:
            server.stop()
        for g in groups:
            _kill_group(g)
        time.sleep(0.5)
        shutil.rmtree(temp_dir, ignore_errors=True)
