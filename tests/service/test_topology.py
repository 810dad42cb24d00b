"""The docker-compose topology started by hand: a Ray head and a second Ray node
(``ray start`` on free ports), PostgreSQL, and the API + worker pointed at them. A job's
trials must run on both nodes."""

from __future__ import annotations

import pytest

from tests.service.conftest import free_port, job_spec, wait_for
from tests.service.proc import LocalRayCluster, Server


@pytest.mark.slow
@pytest.mark.ray
def test_trials_spread_over_a_two_node_cluster(tmp_path, pg_url):
    server = None
    with LocalRayCluster(tmp_path / "ray-token", workers=1) as cluster:
        try:
            server = Server(tmp_path / "data", free_port(), RAY_ADDRESS=cluster.address,
                            LIGHTSEARCH_DATABASE_URL=pg_url, LIGHTSEARCH_EXECUTOR="ray",
                            **cluster.ray_env).start()
            spec = job_spec(name="two-nodes", profilers=[], objectives=[{"metric": "val_acc"}],
                            evaluator={"name": "svc-slow", "options": {"delay_s": 0.3}},
                            budget={"evaluations": 16},
                            executor={"name": "ray", "batch_size": 4, "chunk_size": 1})
            with server.client() as http:
                job_id = http.post("/jobs", json=spec).json()["id"]
                job = wait_for(lambda: (j := http.get(f"/jobs/{job_id}").json())["status"]
                               in ("succeeded", "failed", "cancelled", "exhausted") and j,
                               300, 0.5)
                trials = http.get(f"/jobs/{job_id}/trials",
                                  params={"limit": 100}).json()["data"]
            assert job["status"] == "succeeded", job["reason"]
            nodes = {t["node"] for t in trials if not t["cached"]}
            assert len(nodes) == 2, nodes
        finally:
            if server is not None:
                server.stop()
