"""Fault runs: SIGKILL the server (API, worker and its local Ray) at random moments of a job,
restart it each time, and count what survived.

Reports the kills survived, trials lost (committed before a kill but missing or changed
afterwards; goal 0), trials stored twice (goal 0), evaluations re-run (handed to Ray more
than once because they were in flight at a kill), and whether the final trials equal those
of the same job run without interruption (the loop is deterministic for a seed).

    python benchmarks/fault_runs.py --kills 5 --evaluations 300
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.service.conftest import free_port  # noqa: E402
from tests.service.proc import Server, committed_trials  # noqa: E402

FINISHED = ("succeeded", "failed", "cancelled")


def spec(evaluations: int, delay: float, seed: int) -> dict[str, Any]:
    return {"name": "faults", "agent": {"name": "evolution", "options": {"population_size": 16}},
            "evaluator": {"name": "svc-slow", "options": {"delay_s": delay}},
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": evaluations}, "seed": seed,
            "executor": {"name": "ray", "batch_size": 8}}


def wait_done(http: Any, job_id: str, timeout: float = 1800) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in FINISHED:
            return job
        time.sleep(0.2)
    raise TimeoutError(job_id)


def trials_of(http: Any, job_id: str) -> list[dict[str, Any]]:
    return http.get(f"/jobs/{job_id}/trials", params={"limit": 1000}).json()["data"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=5)
    ap.add_argument("--evaluations", type=int, default=300)
    ap.add_argument("--delay", type=float, default=0.03, help="seconds per evaluation")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    job_spec = spec(args.evaluations, args.delay, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        server = Server(data, free_port(), LIGHTSEARCH_LEASE_S="5",
                        LIGHTSEARCH_PLUGINS="tests.service.plugins")
        log: list[dict[str, Any]] = []
        seen: dict[int, tuple[str, Any]] = {}
        try:
            server.start()
            with server.client() as http:
                ref_id = http.post("/jobs", json={**job_spec, "name": "reference"}).json()["id"]
                reference = wait_done(http, ref_id)
                ref_trials = {t["trial_id"]: (t["arch_key"], t["reward"])
                              for t in trials_of(http, ref_id)}
                job_id = http.post("/jobs", json=job_spec).json()["id"]
            for k in range(args.kills):
                with server.client() as http:
                    start_trials = http.get(f"/jobs/{job_id}").json()["progress"]["trials"]
                    time.sleep(rng.uniform(1.0, 4.0))
                    job = http.get(f"/jobs/{job_id}").json()
                    while job["status"] not in FINISHED and \
                            job["progress"]["trials"] <= start_trials:
                        time.sleep(0.2)  # let the resumed job make progress first
                        job = http.get(f"/jobs/{job_id}").json()
                if job["status"] in FINISHED:
                    break
                server.kill()
                committed = committed_trials(data / "lightsearch.db", job_id)
                seen.update(committed)
                log.append({"kill": k + 1, "trials_committed": len(committed)})
                print(json.dumps(log[-1]), flush=True)
                server.start()
            with server.client() as http:
                job = wait_done(http, job_id)
                final = {t["trial_id"]: (t["arch_key"], t["reward"]) for t in
                         trials_of(http, job_id)}
                count = http.get(f"/jobs/{job_id}/trials", params={"limit": 1}).json()["count"]
        finally:
            server.stop()
    lost = [t for t, v in seen.items() if final.get(t) != v]
    result = {
        "kills_survived": len(log), "status": job["status"], "reason": job["reason"],
        "attempts": job["attempts"], "resumed": job["resumed"],
        "trials": len(final), "trials_lost": len(lost), "stored_twice": count - len(final),
        "evaluations": job["progress"]["evaluations"],
        "tasks_started": job["progress"]["tasks_started"],
        "evaluations_rerun": job["progress"]["tasks_started"] - (
            reference["progress"]["tasks_started"]),
        "identical_to_uninterrupted_run": final == ref_trials,
        "kills": log,
    }
    print(json.dumps(result, indent=1))
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
