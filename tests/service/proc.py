"""Real server processes and local Ray clusters for the crash, CLI and topology tests (and
the benchmarks)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tests.service.conftest import PYTHON, REPO, free_port, subprocess_env


class Server:
    """``lightsearch serve`` in its own process group (so SIGKILL takes its Ray too)."""

    def __init__(self, data_dir: Path, port: int, *, extra_args: tuple[str, ...] = (),
                 **env: str) -> None:
        self.data_dir = data_dir
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.args = extra_args
        self.env = subprocess_env(LIGHTSEARCH_DATA_DIR=str(data_dir), **env)
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = data_dir.parent / f"server-{port}.log"

    def start(self, timeout: float = 120.0) -> Server:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [PYTHON, "-m", "service.cli", "serve", "--port", str(self.port),
                 "--log-level", os.environ.get("LIGHTSEARCH_TEST_LOG_LEVEL", "warning"),
                 *self.args],
                cwd=REPO, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log.read_text()[-3000:]}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"server not ready in {timeout} s: {self.log.read_text()[-3000:]}")

    @property
    def token(self) -> str:
        return (self.data_dir / "admin-token").read_text().strip()

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url + "/api/v1", timeout=30,
                            headers={"Authorization": f"Bearer {self.token}"})

    def kill(self) -> None:
        """SIGKILL the whole process group: API, worker and the worker's local Ray."""
        assert self.proc is not None
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(30)
        _wait_group_gone(self.proc.pid)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        _wait_group_gone(self.proc.pid)


def _wait_group_gone(pgid: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return
        try:
            os.killpg(pgid, signal.SIGKILL)
        except ProcessLookupError:
            return
        time.sleep(0.1)


def committed_trials(db_file: Path, job_id: str) -> dict[int, tuple[str, Any]]:
    """Trials committed in the SQLite file, read without the service (after a kill)."""
    with sqlite3.connect(db_file) as conn:
        rows = conn.execute("SELECT trial_id, arch_key, reward FROM trials WHERE job_id = ?",
                            (job_id,)).fetchall()
    return {t: (k, r) for t, k, r in rows}


class LocalRayCluster:
    """A hand-made multi-node Ray cluster on this machine: a head and ``workers`` nodes
    (``ray start``), each with its own CPU count, on free ports and their own token.

    Its own temp dir keeps the 'current cluster' pointer out of /tmp/ray, where a plain
    ``ray.init()`` by anyone else on the machine would otherwise find (and try) it; every
    node runs in its own process group, so ``stop`` kills only ours."""

    def __init__(self, token_file: Path, *, workers: int = 1, head_cpus: int = 1,
                 worker_cpus: int = 1) -> None:
        self.head_cpus, self.worker_cpus, self.workers = head_cpus, worker_cpus, workers
        token_file.write_text(secrets.token_hex(32))
        self.ray_env = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token_file)}
        self.env = subprocess_env(**self.ray_env)
        self.gcs_port = free_port()
        self.address = f"127.0.0.1:{self.gcs_port}"
        self.groups: list[int] = []
        self.temp_dir = ""
        # Worker port ranges below Linux's ephemeral range (32768+), where free_port() draws.
        self._ports = 20000 + secrets.randbelow(40) * 200

    def _start_node(self, args: list[str], cpus: int) -> None:
        ports = [free_port() for _ in range(6)]
        worker_ports = self._ports + 200 * len(self.groups)
        cmd = [shutil.which("ray") or "ray", "start", *args, f"--num-cpus={cpus}",
               "--node-ip-address=127.0.0.1", f"--temp-dir={self.temp_dir}",
               f"--node-manager-port={ports[0]}", f"--object-manager-port={ports[1]}",
               f"--metrics-export-port={ports[2]}", f"--dashboard-agent-listen-port={ports[3]}",
               f"--dashboard-agent-grpc-port={ports[4]}", f"--runtime-env-agent-port={ports[5]}",
               f"--min-worker-port={worker_ports}", f"--max-worker-port={worker_ports + 199}",
               "--disable-usage-stats"]
        proc = subprocess.Popen(cmd, env=self.env, start_new_session=True,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = proc.communicate(timeout=180)
        self.groups.append(proc.pid)
        if proc.returncode != 0:
            raise RuntimeError(f"ray start failed: {out[-3000:]}")

    def start(self) -> LocalRayCluster:
        self.temp_dir = tempfile.mkdtemp(prefix="lsray", dir="/tmp")  # socket paths < 108
        try:
            self._start_node(["--head", f"--port={self.gcs_port}", "--include-dashboard=false",
                              f"--ray-client-server-port={free_port()}"], self.head_cpus)
            for _ in range(self.workers):
                self._start_node([f"--address={self.address}"], self.worker_cpus)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for group in self.groups:
            try:
                os.killpg(group, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.groups = []
        time.sleep(0.5)
        shutil.rmtree(self.temp_dir, ignore_errors=True)

    def __enter__(self) -> LocalRayCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def peak_rss_mib(pid: int) -> float | None:
    """A live process's peak resident memory (VmHWM), MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


class DeviceAgents:
    """Device agent processes of one device, one thread each: ``lightsearch device-agent``,
    or the one-file agent ``pyz`` the server serves, run from its own folder."""

    def __init__(self, url: str, token: str, log_dir: Path) -> None:
        self.url, self.token, self.log_dir = url, token, log_dir
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, key: str, pyz: Path | None = None, *, own_host: bool = False) -> None:
        """``own_host``: the agent stands for a separate device, so it gets its own
        measurement lock file (agents of one host take turns measuring, by design)."""
        log = open(self.log_dir / f"{key}.log", "ab")  # noqa: SIM115 - closed with the process
        command = [PYTHON, str(pyz)] if pyz else [PYTHON, "-m", "service.cli", "device-agent"]
        env = {"OMP_NUM_THREADS": "1"}
        if own_host:
            env["LIGHTSEARCH_MEASURE_LOCK"] = str(self.log_dir / f"{key}.measure.lock")
        self.procs[key] = subprocess.Popen(
            [*command, "--server", self.url, "--token", self.token, "--agent-key", key,
             "--threads", "1", "--poll-s", "0.05", "--log-level", "warning"],
            cwd=pyz.parent if pyz else REPO, env=subprocess_env(**env),
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def peaks(self) -> dict[str, float | None]:
        return {k: peak_rss_mib(p.pid) for k, p in self.procs.items() if p.poll() is None}

    def kill(self, key: str) -> None:
        os.kill(self.procs[key].pid, signal.SIGKILL)
        self.procs[key].wait(10)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                p.terminate()
        for p in self.procs.values():
            try:
                p.wait(20)
            except subprocess.TimeoutExpired:
                p.kill()
        self.procs.clear()
