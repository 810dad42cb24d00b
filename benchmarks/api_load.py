"""API under load: p50/p99 latency of the job, Pareto and trials routes for a job with
10,000 trials, under 50 concurrent clients.

The job is a real one: 10,000 NAS-Bench-201 evaluations (two objectives, so the front and
the hypervolume history are real too) run through ``lightsearch serve`` on SQLite (or on
PostgreSQL, in a scratch schema dropped afterwards). Then 50 asyncio clients in this process
call the routes over HTTP in a loop for ``--seconds``; each client waits ``--think`` seconds
between requests (0: back-to-back, a saturation test). All clients send their first request
at once, on a cold response cache; ``first_burst`` reports those 50 apart, and they count in
every percentile too.

    python benchmarks/api_load.py                        # SQLite, then PostgreSQL
    python benchmarks/api_load.py --db sqlite --think 0 --api-workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.service.conftest import PG_URL, free_port, pg_schema_url  # noqa: E402
from tests.service.proc import Server  # noqa: E402


def make_job(server: Server, trials: int) -> str:
    spec = {"name": "load", "agent": {"name": "random"},
            "evaluator": {"name": "tabular", "options": {"signal": "val_acc"}},
            "profilers": [{"name": "lut:pixel3"}],
            "objectives": [{"metric": "val_acc", "direction": "max"},
                           {"metric": "pixel3_latency", "direction": "min"}],
            "budget": {"evaluations": trials, "max_proposals": trials},
            "executor": {"name": "local", "batch_size": 200}, "seed": 1}
    with server.client() as http:
        job_id = http.post("/jobs", json=spec).json()["id"]
        while (job := http.get(f"/jobs/{job_id}").json())["status"] not in (
                "succeeded", "failed", "cancelled"):
            time.sleep(0.5)
    assert job["status"] == "succeeded", job["reason"]
    return job_id


ROUTES = {
    "job": lambda j, n: f"/jobs/{j}",
    "pareto": lambda j, n: f"/jobs/{j}/pareto",
    "trials": lambda j, n: f"/jobs/{j}/trials?limit=50&offset={random.randrange(0, n, 50)}",
    "trials-by-metric": lambda j, n: f"/jobs/{j}/trials?limit=50&sort=pixel3_latency"
                                     f"&order=desc&offset={random.randrange(0, 500, 50)}",
    "hypervolume": lambda j, n: f"/jobs/{j}/hypervolume",
}


async def client_loop(http: aiohttp.ClientSession, base: str, job_id: str, n: int,
                      until: float, think: float, lat: dict[str, list[float]],
                      errors: list[str]) -> None:
    names = list(ROUTES)
    first = True
    while time.perf_counter() < until:
        name = random.choice(names)
        start = time.perf_counter()
        async with http.get(base + ROUTES[name](job_id, n)) as r:
            await r.read()
            status = r.status
        lat[name].append(time.perf_counter() - start)
        if first:
            lat["_first"].append(lat[name][-1])
            first = False
        if status != 200:
            errors.append(f"{name}: {status}")
        if think:
            await asyncio.sleep(random.uniform(0.5 * think, 1.5 * think))


async def load(server: Server, job_id: str, n: int, clients: int, seconds: float,
               think: float) -> dict[str, Any]:
    lat: dict[str, list[float]] = {k: [] for k in [*ROUTES, "_first"]}
    errors: list[str] = []
    base = server.url + "/api/v1"
    # aiohttp: about 4x less client CPU per request than httpx, which matters when the load
    # generator shares the machine with the server.
    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(
            connector=connector, timeout=aiohttp.ClientTimeout(total=60),
            headers={"Authorization": f"Bearer {server.token}"}) as http:
        async with http.get(f"{base}/jobs/{job_id}") as r:
            await r.read()
        # The load generator's own full garbage collections (tens of ms here) would be
        # counted as API latency: its start-up objects are frozen, as the server's are.
        gc.collect()
        gc.freeze()
        cpu = time.process_time()
        until = time.perf_counter() + seconds
        await asyncio.gather(*(client_loop(http, base, job_id, n, until, think, lat, errors)
                               for _ in range(clients)))
        client_cpu = time.process_time() - cpu
    out: dict[str, Any] = {"errors": len(errors), "error_examples": errors[:5]}
    burst = lat.pop("_first")
    every = [x for v in lat.values() for x in v]
    for name, values in [*lat.items(), ("all", every), ("first_burst", burst)]:
        ms = np.array(values) * 1000
        out[name] = {"requests": len(values), "p50_ms": float(np.percentile(ms, 50)),
                     "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max())}
    out["requests_per_s"] = len(every) / seconds
    out["client_cpu_ms_per_request"] = client_cpu / max(1, len(every)) * 1000
    return out


def scratch_schema() -> tuple[str, Any]:
    """A fresh PostgreSQL schema (like the service tests use) and a function dropping it."""
    import uuid

    from sqlalchemy import create_engine, text

    schema = f"ls_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))

    def drop() -> None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
    return pg_schema_url(schema), drop


def run_one(db: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    env = {"LIGHTSEARCH_EXECUTOR": "spec",
           "LIGHTSEARCH_RESPONSE_CACHE_ENTRIES": "0" if args.no_cache else "256",
           "LIGHTSEARCH_AUTH_CACHE_S": str(args.auth_cache_s)}
    drop = None
    if db == "postgresql":
        env["LIGHTSEARCH_DATABASE_URL"], drop = scratch_schema()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp) / "data", free_port(), **env,
                        extra_args=("--api-workers", str(args.api_workers))).start()
        try:
            t = time.perf_counter()
            job_id = make_job(server, args.trials)
            print(f"{db}: job with {args.trials} evaluations stored in "
                  f"{time.perf_counter() - t:.1f} s", flush=True)
            time.sleep(args.settle)
            with server.client() as http:
                n = http.get(f"/jobs/{job_id}").json()["progress"]["trials"]
                front = http.get(f"/jobs/{job_id}/pareto").json()["count"]
            for think in args.think:
                res = asyncio.run(load(server, job_id, n, args.clients, args.seconds, think))
                res.update(database=db, think_s=think, clients=args.clients, job_trials=n,
                           front=front, api_workers=args.api_workers,
                           response_cache=not args.no_cache, auth_cache_s=args.auth_cache_s,
                           settle_s=args.settle)
                runs.append(res)
                print(json.dumps(res), flush=True)
        finally:
            server.stop()
            if drop is not None:
                drop()
    return runs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", nargs="+", choices=["sqlite", "postgresql"],
                    default=["sqlite", "postgresql"],
                    help="PostgreSQL: LIGHTSEARCH_TEST_PG_URL, default the tests' server")
    ap.add_argument("--trials", type=int, default=10_000)
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--think", type=float, nargs="+", default=[1.0, 0.0],
                    help="seconds each client waits between requests (one run per value)")
    ap.add_argument("--settle", type=float, default=0.0,
                    help="seconds to wait after the job reads succeeded before the load (the "
                    "worker's housekeeping, PostgreSQL's VACUUM, runs just after)")
    ap.add_argument("--api-workers", type=int, default=1)
    ap.add_argument("--no-cache", action="store_true",
                    help="turn the API's response cache off (every request reads trials)")
    ap.add_argument("--auth-cache-s", type=float, default=0.0,
                    help="LIGHTSEARCH_AUTH_CACHE_S for the server (default 0: every request "
                    "reads its token)")
    ap.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "api_load.json"))
    args = ap.parse_args()
    runs = [r for db in args.db for r in run_one(db, args)]
    for res in runs:
        print(f"\n{res['database']}: {res['clients']} clients, think {res['think_s']} s, "
              f"{res['job_trials']} trials, {res['api_workers']} API worker(s), "
              f"response cache {'on' if res['response_cache'] else 'off'}, "
              f"{res['requests_per_s']:.0f} req/s, errors {res['errors']}")
        for name in [*ROUTES, "all", "first_burst"]:
            r = res[name]
            print(f"  {name:17} n={r['requests']:6}  p50 {r['p50_ms']:7.1f} ms  "
                  f"p99 {r['p99_ms']:7.1f} ms  max {r['max_ms']:7.1f} ms")
    if args.out:
        Path(args.out).write_text(json.dumps(runs, indent=1) + "\n")


if __name__ == "__main__":
    main()
