"""Devices, their profiling-only tokens and agents, and who may use which device.

A device token (``lsd_...``) is stored as a SHA-256 digest, like API tokens, but in its own
table: it authenticates an agent of one device on the agent routes and nothing else (the
job routes answer it 403). A device's ``users`` lists who may queue work on it and see it;
None means every user. Admins see every device.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.core.errors import Forbidden, InvalidInput, NotAuthenticated, NotFound
from service.core.security import Principal, hash_token
from service.models import ApiToken, Device, DeviceAgent, DeviceToken, Measurement, utcnow

DEVICE_TOKEN_PREFIX = "lsd_"


@dataclass(frozen=True)
class DevicePrincipal:
    """The device an agent's token belongs to."""

    device_id: int
    name: str


def new_device_token() -> str:
    return DEVICE_TOKEN_PREFIX + secrets.token_urlsafe(32)


def get_device(session: Session, name: str) -> Device | None:
    return session.scalar(select(Device).where(Device.name == name))


def may_use(device: Device, user: Principal) -> bool:
    return user.is_admin or device.users is None or user.name in device.users


#: profiler name prefixes that queue work on (or read tables of) a registered device
DEVICE_PROFILERS = ("predictor:remote:", "remote:")


def check_job_devices(session: Session, user: Principal, profilers: list[Any]) -> None:
    """Every device a job's profilers name is registered and ``user`` may use it, so a typo
    or a device they may not use is a 422 at submit rather than failed trials later. The
    message is the same for both cases: a device's existence does not leak."""
    for i, component in enumerate(profilers):
        name = str(component.name)
        prefix = next((p for p in DEVICE_PROFILERS if name.startswith(p)), None)
        if prefix is None:
            continue
        device = name[len(prefix):]
        row = get_device(session, device) if len(device) <= 64 else None
        if row is None or not may_use(row, user):
            raise InvalidInput(f"profilers[{i}].name",
                               f"device {device[:64]!r} is not registered or you may not use "
                               "it (an admin creates it: lightsearch device token create "
                               "--name NAME; GET /api/v1/devices lists yours)")


def visible_device(session: Session, user: Principal, name: str) -> Device:
    """A device this user may use; ``NotFound`` otherwise (its existence does not leak)."""
    device = get_device(session, name) if len(name) <= 64 else None
    if device is None or not may_use(device, user):
        raise NotFound(f"device {name[:64]!r} not found")
    return device


def create_device_token(session: Session, name: str, *, users: list[str] | None = None,
                        label: str = "") -> tuple[Device, str]:
    """A new token for device ``name`` (the device is created if new; ``users`` replaces its
    access list when given). Commits; the token is returned only here."""
    device = get_device(session, name)
    if device is None:
        device = Device(name=name, users=users, description={}, measurements_done=0)
        session.add(device)
        session.flush()
    elif users is not None:
        device.users = users
    token = new_device_token()
    session.add(DeviceToken(device_id=device.id, token_hash=hash_token(token), label=label))
    session.commit()
    return device, token


def device_for_token(session: Session, token: str) -> DevicePrincipal:
    """The device of a live device token; 401 otherwise (403 for a user's API token)."""
    row = session.execute(
        select(Device.id, Device.name).join(DeviceToken, DeviceToken.device_id == Device.id)
        .where(DeviceToken.token_hash == hash_token(token), DeviceToken.revoked_at.is_(None))
    ).first()
    if row is None:
        if not token.startswith(DEVICE_TOKEN_PREFIX) and _is_user_token(session, token):
            raise Forbidden("the device agent routes need a device token "
                            "(lightsearch device token create)")
        raise NotAuthenticated("invalid or revoked device token")
    return DevicePrincipal(int(row.id), row.name)


def _is_user_token(session: Session, token: str) -> bool:
    """A live API token of a user: signed in, but not as a device (403, not 401)."""
    return session.scalar(select(func.count()).select_from(ApiToken).where(
        ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))) == 1


def is_device_token(session: Session, token: str) -> bool:
    if not token.startswith(DEVICE_TOKEN_PREFIX):
        return False
    return session.scalar(select(func.count()).select_from(DeviceToken).where(
        DeviceToken.token_hash == hash_token(token), DeviceToken.revoked_at.is_(None))) == 1


def revoke_device_tokens(session: Session, name: str) -> int:
    """Revoke every live token of a device; returns how many. Commits."""
    device = get_device(session, name)
    if device is None:
        raise NotFound(f"device {name[:64]!r} not found")
    result = session.execute(update(DeviceToken).where(
        DeviceToken.device_id == device.id, DeviceToken.revoked_at.is_(None))
        .values(revoked_at=utcnow()))
    session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]


def register_agent(session: Session, device: DevicePrincipal, agent_key: str,
                   description: dict[str, Any]) -> DeviceAgent:
    """Create or refresh an agent of the device (its description, its heartbeat). Commits."""
    agent = session.scalar(select(DeviceAgent).where(DeviceAgent.agent_key == agent_key))
    now = utcnow()
    if agent is not None and agent.device_id != device.device_id:
        raise Forbidden("this agent key belongs to another device")
    if agent is None:
        agent = DeviceAgent(device_id=device.device_id, agent_key=agent_key,
                            description=description, heartbeat_at=now, measurements_done=0)
        session.add(agent)
    else:
        agent.description, agent.heartbeat_at = description, now
    session.execute(update(Device).where(Device.id == device.device_id).values(
        description=description, last_heartbeat_at=now))
    session.commit()
    return agent


def agent_id(session: Session, device: DevicePrincipal, agent_key: str) -> int:
    """The id of a registered agent of this device; 409-free 404 otherwise."""
    found = session.scalar(select(DeviceAgent.id).where(
        DeviceAgent.agent_key == agent_key, DeviceAgent.device_id == device.device_id))
    if found is None:
        raise NotFound("agent not registered (POST /devices/agent/register first)")
    return int(found)


def device_rows(session: Session, user: Principal, lease_s: float,
                name: str | None = None) -> list[dict[str, Any]]:
    """Devices this user may use, with status, queue length and agents online."""
    stmt = select(Device).order_by(Device.name)
    if name is not None:
        stmt = stmt.where(Device.name == name)
    devices = [d for d in session.scalars(stmt).all() if may_use(d, user)]
    if not devices:
        return []
    ids = [d.id for d in devices]
    queued = dict(session.execute(
        select(Measurement.device_id, func.count()).where(
            Measurement.device_id.in_(ids), Measurement.status.in_(("queued", "leased")))
        .group_by(Measurement.device_id)).all())
    since = utcnow() - timedelta(seconds=2 * lease_s)
    online = dict(session.execute(
        select(DeviceAgent.device_id, func.count()).where(
            DeviceAgent.device_id.in_(ids), DeviceAgent.heartbeat_at >= since)
        .group_by(DeviceAgent.device_id)).all())
    return [{"name": d.name, "status": "online" if online.get(d.id) else "offline",
             "agents_online": int(online.get(d.id, 0)),
             "last_heartbeat_at": d.last_heartbeat_at,
             "queue_length": int(queued.get(d.id, 0)),
             "measurements_done": d.measurements_done, "description": d.description,
             "users": d.users if user.is_admin else None} for d in devices]
