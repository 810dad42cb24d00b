"""Least exposure: the database, the admin token and the artifacts are the service user's only;
the local Ray listens on loopback; no path, however odd, makes a route answer 5xx."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from tests.service.conftest import REPO, auth, job_spec

API = "/api/v1"


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_data_dir_database_and_artifacts_are_private(app, client, tokens, settings):
    client.post(f"{API}/jobs", json=job_spec(), headers=auth(tokens["alice"]))
    assert _mode(settings.data_dir) == 0o700
    assert _mode(settings.artifact_dir) == 0o700
    if settings.url.startswith("sqlite"):
        db_file = settings.data_dir.parent / "lightsearch.db"  # the fixture's file
        assert _mode(db_file) == 0o600
        assert _mode(f"{db_file}-wal") == 0o600  # written by the POST above


def test_a_world_readable_install_is_tightened_on_start(tmp_path):
    from service.core.config import Settings
    from service.main import create_app

    data = tmp_path / "data"
    (data / "artifacts").mkdir(parents=True)
    db_file = data / "lightsearch.db"
    db_file.touch()
    for p, m in ((data, 0o755), (data / "artifacts", 0o755), (db_file, 0o644)):
        os.chmod(p, m)
    app = create_app(Settings(data_dir=data))
    try:
        assert (_mode(data), _mode(data / "artifacts"), _mode(db_file)) == (0o700, 0o700,
                                                                           0o600)
    finally:
        app.state.lightsearch.db.dispose()


def test_admin_token_file_is_private(db, tmp_path):
    from service.admin import bootstrap_admin

    token_file = tmp_path / "admin-token"
    assert bootstrap_admin(db, token_file) is not None
    assert _mode(token_file) == 0o600


@pytest.mark.parametrize("path", [
    "/static/" + "a" * 256,  # OSError: File name too long (a 500 before)
    "/static/" + "a/" * 2000,
    "/static/" + "%ff%fe" * 50,
    "/static/..%2f..%2f..%2fetc%2fpasswd",
    "/" + "b" * 5000,
    f"{API}/jobs/" + "c" * 300,
    f"{API}/jobs/x/artifacts/" + "d" * 300,
    f"{API}/jobs/x/artifacts/%00",
])
def test_odd_paths_answer_4xx(client, tokens, path):
    r = client.get(path, headers=auth(tokens["alice"]))
    assert 400 <= r.status_code < 500, (path[:60], r.status_code, r.text[:200])


@pytest.mark.slow
@pytest.mark.ray
def test_local_ray_listens_on_loopback_only(tmp_path):
    """The Ray a worker starts (no RAY_ADDRESS): every listening socket of it, and of this
    process, is bound to 127.0.0.1."""
    script = textwrap.dedent("""
        import ipaddress, os, psutil
        from search.executors import ensure_ray
        ensure_ray(None, num_cpus=1)
        import ray
        ray.get(ray.remote(lambda: 1).remote())
        me = psutil.Process()
        pids = {me.pid} | {p.pid for p in me.children(recursive=True)}
        bound = {c.laddr.ip for c in psutil.net_connections("tcp")
                 if c.status == psutil.CONN_LISTEN and c.pid in pids}
        ray.shutdown()
        print(sorted(bound))
        assert bound and all(ipaddress.ip_address(ip.removeprefix("::ffff:")).is_loopback
                             for ip in bound), bound
    """)
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["PYTHONPATH"] = str(REPO)
    proc = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
