"""``lightsearch device-agent`` and ``lightsearch device token create|revoke``, ``device
list``, ``device predictor`` (server side: they open the service's database, like ``token``).

Imports stay inside the commands: ``device-agent`` must run where only httpx, numpy and ONNX
Runtime are installed.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def add_device_commands(sub: argparse._SubParsersAction, server_options: Any) -> None:
    from service.device_agent.agent import add_arguments, main_args

    p = sub.add_parser("device-agent", help="measure ONNX models for the service on this "
                       "device (needs a device token)",
                       description="Register with the server under the device token's name, "
                       "lease measurements, time them with ONNX Runtime (and read power for "
                       "energy where configured), send results with the device description.")
    add_arguments(p)
    p.set_defaults(func=main_args)

    d = sub.add_parser("device", help="remote devices (on the server's database)")
    dsub = d.add_subparsers(dest="device_command", required=True)
    t = dsub.add_parser("token", help="device tokens: scoped to profiling on one device")
    tsub = t.add_subparsers(dest="device_token_command", required=True)
    c = tsub.add_parser("create", help="create a device token (and the device if new)")
    c.add_argument("--name", required=True, help="device name (jobs use remote:NAME)")
    c.add_argument("--users", help="comma-separated users who may use the device "
                   "(default: every user)")
    c.add_argument("--label", default="")
    server_options(c)
    c.set_defaults(func=cmd_device_token_create)
    r = tsub.add_parser("revoke", help="revoke every token of a device")
    r.add_argument("--name", required=True)
    server_options(r)
    r.set_defaults(func=cmd_device_token_revoke)
    ls = dsub.add_parser("list", help="devices, status, queue length, measurements done")
    ls.add_argument("--json", action="store_true")
    server_options(ls)
    ls.set_defaults(func=cmd_device_list)
    pr = dsub.add_parser("predictor", help="build a device's latency predictor (per-layer "
                         "table + calibration) from measurements on its agents")
    pr.add_argument("--name", required=True, help="device name (jobs then use "
                    "predictor:remote:NAME)")
    pr.add_argument("--job", help="a job file: its space and predictor:remote options are "
                    "used (default: the mnasnet space with default options)")
    pr.add_argument("--archs", type=int, default=30, help="calibration architectures")
    pr.add_argument("--prefetch", type=int, default=0, help="more sampled architectures "
                    "whose layers are measured ahead of searches")
    pr.add_argument("--timeout", type=float, default=3600.0, help="seconds per measurement")
    server_options(pr)
    pr.set_defaults(func=cmd_device_predictor)


def _db(args: argparse.Namespace) -> Any:
    from service.cli import _apply_server_env, _open_db

    _apply_server_env(args)
    return _open_db()


def cmd_device_token_create(args: argparse.Namespace) -> int:
    import re

    from service.devices.access import create_device_token
    from service.devices.schemas import DEVICE_NAME
    if not re.fullmatch(DEVICE_NAME, args.name) or args.name == "agent":
        print(f"error: --name must match {DEVICE_NAME} (and not be 'agent')", file=sys.stderr)
        return 2
    users = [u.strip() for u in args.users.split(",") if u.strip()] if args.users else None
    _settings, db = _db(args)
    try:
        with db.write_session() as session:
            device, token = create_device_token(session, args.name, users=users,
                                                label=args.label)
            name = device.name
    finally:
        db.dispose()
    print(token)
    print(f"device token for {name!r}; it is shown only now. On the device: "
          f"lightsearch device-agent --server URL --token {token[:8]}...", file=sys.stderr)
    return 0


def cmd_device_token_revoke(args: argparse.Namespace) -> int:
    from service.core.errors import ServiceError
    from service.devices.access import revoke_device_tokens

    _settings, db = _db(args)
    try:
        with db.write_session() as session:
            n = revoke_device_tokens(session, args.name)
    except ServiceError as err:
        print(f"error: {err.message}", file=sys.stderr)
        return 1
    finally:
        db.dispose()
    print(f"{n} token(s) of {args.name!r} revoked")
    return 0


def cmd_device_list(args: argparse.Namespace) -> int:
    from service.core.security import Principal
    from service.devices.access import device_rows

    settings, db = _db(args)
    try:
        with db.reading() as session:
            rows = device_rows(session, Principal(0, "(cli)", True), settings.device_lease_s)
    finally:
        db.dispose()
    if args.json:
        print(json.dumps(rows, indent=1, default=str))
        return 0
    print(f"{'name':20}  {'status':7}  {'agents':>6}  {'queue':>5}  {'done':>6}  heartbeat")
    for r in rows:
        beat = r["last_heartbeat_at"].isoformat()[:19] if r["last_heartbeat_at"] else ""
        print(f"{r['name']:20}  {r['status']:7}  {r['agents_online']:>6}  "
              f"{r['queue_length']:>5}  {r['measurements_done']:>6}  {beat}")
    return 0


def cmd_device_predictor(args: argparse.Namespace) -> int:
    from search.spec import SpecError, load_spec
    from service.core.security import Principal
    from service.devices.link import DbDeviceLink
    from spaces.registry import SPACES

    space_name, space_opts, options = "mnasnet", {}, {}
    try:
        if args.job:
            spec = load_spec(args.job)
            space_name, space_opts = spec.space.name, spec.space.options
            options = next((dict(p.options) for p in spec.profilers
                            if p.name == f"predictor:remote:{args.name}"), {})
        space = SPACES.create(space_name, options=space_opts)
    except (SpecError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    options.update(calibration_archs=args.archs, timeout_s=args.timeout)
    _settings, db = _db(args)
    try:
        link = DbDeviceLink(db, Principal(0, "(cli)", True))
        summary = build_predictor(link, args.name, space, options, prefetch=args.prefetch)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    finally:
        db.dispose()
    print(json.dumps(summary, indent=1))
    return 0


def build_predictor(link: Any, device: str, space: Any, options: dict[str, Any], *,
                    prefetch: int = 0) -> dict[str, Any]:
    """Measure a device's layer table and calibration for ``space`` through ``link`` (its
    agents) and store them under the device; returns what was built. Layers and calibration
    networks are timed in the same interleaved rounds on the device."""
    import numpy as np

    from search.profilers.remote_predictor import RemotePredictor

    link.check(device)
    predictor = RemotePredictor(device, **options)
    predictor.use_link(link)
    predictor.coefficients(space)
    if prefetch:
        rng = np.random.default_rng(predictor.seed + 1)
        predictor.prefetch([space.sample(rng) for _ in range(prefetch)], space)
    table = predictor.table()
    return {"device": device, "key": predictor.table_key, "layers": len(table["units"]),
            "calibrations": table["calibrations"], "agent": table.get("agent", {})}
