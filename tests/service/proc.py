"""Real server processes for the crash, CLI and topology tests (and the benchmarks)."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from tests.service.conftest import PYTHON, REPO, subprocess_env


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
