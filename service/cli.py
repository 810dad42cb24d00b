"""Service commands: ``serve``, ``worker``, ``token create|list|revoke``, ``submit``,
``jobs``, ``watch``, ``cancel``, ``note``, ``download``, ``upload`` and ``uploads``.
``add_service_commands`` plugs them into ``lightsearch``'s parser; ``python -m service.cli``
runs them alone.

The client commands talk to ``--server`` (or ``LIGHTSEARCH_SERVER``, default
http://127.0.0.1:8000) with ``--token`` (or ``LIGHTSEARCH_TOKEN``, else the admin token that
a local ``lightsearch serve`` wrote to its data folder).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.status import EXIT_CODES

FINISHED = ("succeeded", "failed", "cancelled", "exhausted")


def add_service_commands(sub: argparse._SubParsersAction) -> None:
    """Add the service's subcommands to ``lightsearch``'s subparsers."""
    _add_serve(sub)
    _add_worker(sub)
    _add_token(sub)
    _add_client(sub)
    from service.devices.cli import add_device_commands

    add_device_commands(sub, _server_options)


# ---- server side -----------------------------------------------------------------------------
def _server_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", help="data folder (LIGHTSEARCH_DATA_DIR, default .lightsearch)")
    p.add_argument("--database-url", help="SQLAlchemy URL (LIGHTSEARCH_DATABASE_URL; default "
                   "SQLite in the data folder)")


def _apply_server_env(args: argparse.Namespace) -> None:
    """Flags become environment variables, so a worker subprocess sees the same settings.
    Server commands write private files only (``service.core.private``)."""
    from service.core.private import PRIVATE_UMASK

    os.umask(PRIVATE_UMASK)
    if getattr(args, "data_dir", None):
        os.environ["LIGHTSEARCH_DATA_DIR"] = str(Path(args.data_dir).resolve())
    if getattr(args, "database_url", None):
        os.environ["LIGHTSEARCH_DATABASE_URL"] = args.database_url
    if getattr(args, "max_jobs", None):
        os.environ["LIGHTSEARCH_MAX_CONCURRENT_JOBS"] = str(args.max_jobs)
    if getattr(args, "executor", None):
        os.environ["LIGHTSEARCH_EXECUTOR"] = args.executor


def _add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the REST API (and a worker) with uvicorn",
                       description="Start the API on HOST:PORT. Unless --no-worker, a worker "
                       "subprocess claims queued jobs and runs them on Ray (RAY_ADDRESS, or a "
                       "local Ray). On first start an admin token is written to "
                       "<data-dir>/admin-token.")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--no-worker", action="store_true", help="API only (workers run elsewhere)")
    p.add_argument("--max-jobs", type=int, help="jobs the worker runs at once "
                   "(LIGHTSEARCH_MAX_CONCURRENT_JOBS, default 2)")
    p.add_argument("--executor", choices=["ray", "spec"],
                   help="'ray' (default): evaluations on Ray; 'spec': as the job says")
    p.add_argument("--demo", action="store_true",
                   help="once up, submit a demo job (MnasNet controller on NAS-Bench-201, "
                   "accuracy vs Pixel 3 latency) as the admin user")
    p.add_argument("--api-workers", type=int, default=1,
                   help="uvicorn worker processes for the API (default 1)")
    p.add_argument("--log-level", default="info")
    _server_options(p)
    p.set_defaults(func=cmd_serve)


def _add_worker(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("worker", help="run a worker: claim queued jobs and run them")
    p.add_argument("--max-jobs", type=int, help="jobs run at once")
    p.add_argument("--executor", choices=["ray", "spec"])
    p.add_argument("--parent-pid", type=int, help=argparse.SUPPRESS)
    p.add_argument("--log-level", default="info")
    _server_options(p)
    p.set_defaults(func=cmd_worker)


def _add_token(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("token", help="manage API tokens (on the server's database)")
    tsub = p.add_subparsers(dest="token_command", required=True)
    c = tsub.add_parser("create", help="create a token (and the user if new); printed once")
    c.add_argument("--user", required=True, help="user name")
    c.add_argument("--admin", action="store_true", help="give the user the admin role")
    c.add_argument("--label", default="", help="a note stored with the token")
    _server_options(c)
    c.set_defaults(func=cmd_token_create)
    ls = tsub.add_parser("list", help="list tokens (ids, users, labels, dates; never the token)")
    ls.add_argument("--user", help="only this user's tokens")
    ls.add_argument("--json", action="store_true", help="print JSON")
    _server_options(ls)
    ls.set_defaults(func=cmd_token_list)
    r = tsub.add_parser("revoke", help="revoke tokens: they get 401 from now on",
                        description="Revoke by id (see 'token list') or by the token itself. "
                        "The API process that serves the token re-reads it on every request, "
                        "so it fails at once (with LIGHTSEARCH_AUTH_CACHE_S set, within that "
                        "many seconds).")
    r.add_argument("tokens", nargs="+", metavar="TOKEN", help="a token id, or a token (ls_...)")
    _server_options(r)
    r.set_defaults(func=cmd_token_revoke)


def _open_db() -> Any:
    from service.core.config import Settings
    from service.core.db import Database
    from service.migrations import upgrade

    settings = Settings()
    db = Database.from_url(settings.url, pool_size=2)
    upgrade(db.engine)
    return settings, db


def cmd_token_create(args: argparse.Namespace) -> int:
    from service import crud
    from service.core.errors import ServiceError

    _apply_server_env(args)
    _settings, db = _open_db()
    try:
        with db.write_session() as session:
            user, token = crud.create_token(session, args.user, admin=args.admin,
                                            label=args.label)
    except ServiceError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(token)
    print(f"token for user {user.name!r}{' (admin)' if user.is_admin else ''}; it is shown "
          "only now", file=sys.stderr)
    return 0


def cmd_token_list(args: argparse.Namespace) -> int:
    from service import crud

    _apply_server_env(args)
    _settings, db = _open_db()
    try:
        with db.reading() as session:
            rows = crud.token_rows(session)
    finally:
        db.dispose()
    if args.user:
        rows = [r for r in rows if r.user == args.user]
    records = [{"id": r.id, "user": r.user, "label": r.label,
                "created_at": r.created_at.isoformat(),
                "revoked_at": r.revoked_at.isoformat() if r.revoked_at else None}
               for r in rows]
    if args.json:
        print(json.dumps(records, indent=1))
        return 0
    print(f"{'id':>5}  {'user':16}  {'created':19}  {'revoked':19}  label")
    for r in records:
        print(f"{r['id']:>5}  {r['user']:16}  {r['created_at'][:19]:19}  "
              f"{(r['revoked_at'] or '')[:19]:19}  {r['label']}")
    return 0


def cmd_token_revoke(args: argparse.Namespace) -> int:
    from service import crud
    from service.core.errors import ServiceError
    from service.core.security import TOKEN_PREFIX, hash_token

    _apply_server_env(args)
    _settings, db = _open_db()
    code = 0
    try:
        for given in args.tokens:
            shown = given if not given.startswith(TOKEN_PREFIX) else f"{given[:7]}..."
            if given.startswith(TOKEN_PREFIX):
                lookup: dict[str, Any] = {"token_hash": hash_token(given)}
            elif given.isdigit():
                lookup = {"token_id": int(given)}
            else:
                print(f"error: {given!r} is neither a token id nor a token (ls_...)",
                      file=sys.stderr)
                code = 2
                continue
            try:
                with db.write_session() as session:
                    token = crud.find_token(session, None, **lookup)
                    already = token.revoked_at is not None
                    crud.revoke_token(session, token)
                    print(f"token {token.id} {'was already' if already else ''} revoked"
                          .replace("  ", " "))
            except ServiceError as err:
                print(f"error: {shown}: {err.message}", file=sys.stderr)
                code = 1
    finally:
        db.dispose()
    return code


def _logging(level: str = "info") -> None:
    logging.basicConfig(level=level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # one line per plugin otherwise


def cmd_worker(args: argparse.Namespace) -> int:
    _apply_server_env(args)
    _logging(args.log_level)
    # torch is imported by the first job that needs it (seconds saved before the first claim);
    # its thread pool then starts at this size.
    os.environ.setdefault("OMP_NUM_THREADS", os.environ.get("LIGHTSEARCH_TORCH_THREADS", "1"))
    from service.core.config import Settings
    from service.worker import Worker

    worker = Worker(Settings())

    def _stop(_signum: int, _frame: Any) -> None:
        worker.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    # Under 'serve', a Ctrl+C reaches the whole process group; the API process then stops us
    # with SIGTERM once it has stopped serving, so we ignore SIGINT (as does our local Ray).
    signal.signal(signal.SIGINT, signal.SIG_IGN if args.parent_pid else _stop)
    if args.parent_pid:
        threading.Thread(target=_watch_parent, args=(args.parent_pid, worker.stop),
                         daemon=True).start()
    try:
        worker.run()
    finally:
        import ray

        if ray.is_initialized():
            ray.shutdown()
    return 0


def _watch_parent(pid: int, stop: threading.Event) -> None:
    """The API process died without stopping us (SIGKILL): stop too."""
    while not stop.wait(0.5):
        if os.getppid() != pid:
            stop.set()


class WorkerSupervisor:
    """Runs ``lightsearch worker`` as a child of the API process and restarts it if it dies
    (its jobs resume); the API process itself never imports torch or Ray."""

    def __init__(self, log_level: str = "info") -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.stopping = threading.Event()
        self.log_level = log_level

    def _spawn(self) -> None:
        cmd = [sys.executable, "-m", "service.cli", "worker", "--parent-pid", str(os.getpid()),
               "--log-level", self.log_level]
        self.proc = subprocess.Popen(cmd)

    def start(self) -> None:
        self._spawn()
        threading.Thread(target=self._watch, name="worker-supervisor", daemon=True).start()

    def _watch(self) -> None:
        while not self.stopping.wait(1.0):
            assert self.proc is not None
            code = self.proc.poll()
            if code is not None and not self.stopping.is_set():
                logging.getLogger(__name__).error("worker exited with %s; restarting", code)
                self._spawn()

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM: the worker hands its running jobs back to the queue, then exits."""
        self.stopping.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from service.admin import bootstrap_admin
    from service.core.config import Settings
    from service.main import create_app

    _apply_server_env(args)
    _logging(args.log_level)
    settings = Settings()
    app = create_app(settings, freeze_gc=True)  # migrates before a worker starts
    token = bootstrap_admin(app.state.lightsearch.db, settings.admin_token_file)
    if token:
        print(f"created user 'admin'; its token is in {settings.admin_token_file}",
              file=sys.stderr)
    supervisor = None if args.no_worker else WorkerSupervisor(args.log_level)
    if supervisor is not None:
        supervisor.start()
    if args.demo:
        admin = settings.admin_token_file.read_text().strip() \
            if settings.admin_token_file.is_file() else None
        threading.Thread(target=_submit_demo, args=(args.host, args.port, admin),
                         daemon=True).start()
    # uvicorn stops serving on SIGINT/SIGTERM, restores these handlers, then raises the signal
    # again: we exit through ``finally``, which hands the worker's jobs back to the queue.
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, _exit_quietly)
    try:
        if args.api_workers > 1:  # each process builds its app from the environment
            uvicorn.run("service.main:app", host=args.host, port=args.port,
                        workers=args.api_workers, log_level=args.log_level,
                        timeout_graceful_shutdown=5)
        else:
            uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level,
                        timeout_graceful_shutdown=5)
    finally:
        if supervisor is not None:
            supervisor.stop()
    return 0


def _exit_quietly(_signum: int, _frame: Any) -> None:
    raise SystemExit(0)


def demo_job() -> dict[str, Any]:
    """The job ``serve --demo`` submits: the README's example, from its one file."""
    from service.schemas import example_job

    return {**example_job("nb201_pixel3.json"), "name": "demo-nb201-pixel3"}


def _submit_demo(host: str, port: int, token: str | None) -> None:
    from service.client import Client, ClientError

    if token is None:
        print("demo: no admin token in the data folder; submit with --token", file=sys.stderr)
        return
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    client = Client(f"http://{host}:{port}", token)
    try:
        for _ in range(300):  # wait for uvicorn to listen
            try:
                client.http.get("/users/me")
                break
            except Exception:  # noqa: BLE001 - not listening yet
                time.sleep(0.2)
        job = client.submit(demo_job())
        print(f"demo job {job['id']} submitted; follow it with: lightsearch watch {job['id']}",
              file=sys.stderr)
    except ClientError as err:
        print(f"demo: {err}", file=sys.stderr)
    finally:
        client.close()


# ---- client side ---------------------------------------------------------------------------
def _client_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", help="API URL (LIGHTSEARCH_SERVER, default "
                   "http://127.0.0.1:8000)")
    p.add_argument("--token", help="API token (LIGHTSEARCH_TOKEN)")


def _add_client(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("submit", help="submit a job file to the server")
    p.add_argument("job", help="job spec JSON file")
    p.add_argument("--watch", action="store_true", help="then follow it with a progress bar")
    _client_options(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("jobs", help="list your jobs")
    p.add_argument("--status", choices=["queued", "running", *FINISHED])
    p.add_argument("--all", action="store_true", help="every user's jobs (admins)")
    p.add_argument("--limit", type=int, default=50)
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    _client_options(p)
    p.set_defaults(func=cmd_jobs)

    p = sub.add_parser("watch", help="follow a job with a live progress bar until it ends")
    p.add_argument("job_id")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between polls")
    _client_options(p)
    p.set_defaults(func=cmd_watch)

    p = sub.add_parser("cancel", help="cancel a job")
    p.add_argument("job_id")
    _client_options(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("note", help="show a job's note, or set it (an empty text clears it)")
    p.add_argument("job_id")
    p.add_argument("text", nargs="?", help="the new note; omit to print the current one")
    _client_options(p)
    p.set_defaults(func=cmd_note)

    p = sub.add_parser("download", help="download a job's artifacts and trials")
    p.add_argument("job_id")
    p.add_argument("--out", help="folder (default results/<job id>)")
    _client_options(p)
    p.set_defaults(func=cmd_download)

    p = sub.add_parser("upload", help="upload a table, dataset or model weights; jobs name "
                       "it upload:<id>",
                       description="Upload one of your files to the server. table: a CSV; "
                       "dataset: a zip or tar archive, or a folder (zipped on the way), of an "
                       "ImageFolder tree (<class>/<image>) or CIFAR-10 binary batches; model: "
                       "safetensors, a weights-only torch.save file or a LightSearch .lsz "
                       "artifact. Prints the id; a job spec names it as \"upload:<id>\".")
    p.add_argument("kind", choices=["table", "dataset", "model"])
    p.add_argument("file", help="the file (or, for a dataset, a folder)")
    p.add_argument("--name", help="name kept with it (default: the file's name)")
    _client_options(p)
    p.set_defaults(func=cmd_upload)

    p = sub.add_parser("uploads", help="list your uploads (or delete some)")
    p.add_argument("--delete", nargs="+", metavar="ID", help="delete these uploads")
    p.add_argument("--json", action="store_true", help="print the raw JSON")
    _client_options(p)
    p.set_defaults(func=cmd_uploads)


def _client(args: argparse.Namespace) -> Any:
    from service.client import Client

    return Client(args.server, args.token)


def _run_client(args: argparse.Namespace, fn: Any) -> int:
    import httpx

    from service.client import ClientError

    client = _client(args)
    if not client.token:
        print("error: no token: pass --token or set LIGHTSEARCH_TOKEN", file=sys.stderr)
        return 2
    try:
        return int(fn(client) or 0)
    except ClientError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except httpx.HTTPError as err:
        print(f"error: cannot reach {client.server}: {err}", file=sys.stderr)
        return 1
    finally:
        client.close()


def cmd_submit(args: argparse.Namespace) -> int:
    try:
        spec = json.loads(Path(args.job).read_text())
    except (OSError, json.JSONDecodeError) as err:
        print(f"error: job file {args.job}: {err}", file=sys.stderr)
        return 2

    def go(client: Any) -> int:
        job = client.submit(spec)
        print(job["id"])
        if args.watch:
            return _watch(client, job["id"], 1.0)
        return 0
    return _run_client(args, go)


def cmd_jobs(args: argparse.Namespace) -> int:
    def go(client: Any) -> int:
        body = client.jobs(status=args.status, limit=args.limit, all_users=args.all)
        if args.json:
            print(json.dumps(body, indent=1))
            return 0
        print(f"{'id':32}  {'status':9}  {'progress':>13}  {'best':>9}  name")
        for j in body["data"]:
            p = j["progress"]
            best = "" if j["best_reward"] is None else f"{j['best_reward']:.4g}"
            print(f"{j['id']:32}  {j['status']:9}  {p['evaluations']:>6}/{p['budget']:<6}  "
                  f"{best:>9}  {j['name']}")
        print(f"{len(body['data'])} of {body['count']} jobs")
        return 0
    return _run_client(args, go)


def _watch(client: Any, job_id: str, interval: float) -> int:
    from tqdm import tqdm

    job = client.job(job_id)
    # Evaluations done before we started watching are the bar's start, not its rate.
    bar = tqdm(total=job["progress"]["budget"], initial=job["progress"]["evaluations"],
               unit="eval", desc=job["name"], dynamic_ncols=True)
    try:
        while True:
            p = job["progress"]
            bar.update(p["evaluations"] - bar.n)
            post = {"status": job["status"]}
            if job["best_reward"] is not None:
                post["best"] = f"{job['best_reward']:.4g}"
            if p["failed"]:
                post["failed"] = p["failed"]
            bar.set_postfix(post)
            if job["status"] in FINISHED:
                break
            time.sleep(interval)
            job = client.job(job_id)
    finally:
        bar.close()
    print(f"{job['status']}: {job['reason']}")
    return EXIT_CODES.get(job["status"], 1)


def cmd_watch(args: argparse.Namespace) -> int:
    return _run_client(args, lambda c: _watch(c, args.job_id, args.interval))


def cmd_cancel(args: argparse.Namespace) -> int:
    def go(client: Any) -> int:
        job = client.cancel(args.job_id)
        print(f"{job['id']}: {job['status']}"
              + (" (stopping)" if job["cancel_requested"] and job["status"] == "running"
                 else ""))
        return 0
    return _run_client(args, go)


def cmd_note(args: argparse.Namespace) -> int:
    def go(client: Any) -> int:
        job = client.job(args.job_id) if args.text is None else client.set_note(
            args.job_id, args.text)
        print(job.get("note") or "")
        return 0
    return _run_client(args, go)


def cmd_download(args: argparse.Namespace) -> int:
    def go(client: Any) -> int:
        out = Path(args.out or Path("results") / args.job_id)
        job = client.job(args.job_id)
        out.mkdir(parents=True, exist_ok=True)
        (out / "job.json").write_text(json.dumps(job, indent=1))
        trials = list(client.all_trials(args.job_id))
        (out / "trials.json").write_text(json.dumps(trials, indent=1))
        files = client.artifacts(args.job_id)["data"]
        for f in files:
            client.download(args.job_id, f["path"], out / f["path"])
        print(f"{out}: job.json, trials.json ({len(trials)} trials), {len(files)} artifacts")
        return 0
    return _run_client(args, go)


def _zip_folder(folder: Path, dest: Path) -> Path:
    import zipfile

    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not path.is_symlink():
                zf.write(path, path.relative_to(folder).as_posix())
    return dest


def cmd_upload(args: argparse.Namespace) -> int:
    import tempfile

    path = Path(args.file)
    if not path.exists():
        print(f"error: {path}: no such file or folder", file=sys.stderr)
        return 2
    if path.is_dir() and args.kind != "dataset":
        print(f"error: {path} is a folder; only a dataset may be a folder", file=sys.stderr)
        return 2

    def go(client: Any) -> int:
        with tempfile.TemporaryDirectory() as tmp:
            source = _zip_folder(path, Path(tmp) / f"{path.name}.zip") if path.is_dir() \
                else path
            up = client.upload(args.kind, source, args.name or source.name)
        print(up["id"])
        print(f"{up['kind']} {up['name']} ({up['size']} bytes); name it in a job spec as "
              f"\"{up['ref']}\"", file=sys.stderr)
        return 0
    return _run_client(args, go)


def cmd_uploads(args: argparse.Namespace) -> int:
    def go(client: Any) -> int:
        if args.delete:
            for upload_id in args.delete:
                client.delete_upload(upload_id)
                print(f"upload {upload_id} deleted")
            return 0
        body = client.uploads()
        if args.json:
            print(json.dumps(body, indent=1))
            return 0
        print(f"{'id':32}  {'kind':7}  {'bytes':>11}  {'created':19}  name")
        for u in body["data"]:
            print(f"{u['id']:32}  {u['kind']:7}  {u['size']:>11}  {u['created_at'][:19]:19}  "
                  f"{u['name']}")
        print(f"{body['count']} uploads")
        return 0
    return _run_client(args, go)


DESCRIPTION = ("Search lightweight deep-learning models (NAS and compression). In this "
               "process: search, export. The service: serve, worker, token; its client: "
               "submit, jobs, watch, cancel, note, download, upload, uploads. Your own hardware: "
               "device, device-agent.")


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lightsearch", description=DESCRIPTION)
    sub = parser.add_subparsers(dest="command", required=True)
    if not (argv and argv[0] == "device-agent"):  # the agent runs without torch or pydantic
        from search.cli import add_search_commands

        add_search_commands(sub)
    add_service_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser(argv).parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
