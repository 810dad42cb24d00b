"""The measurement queue of each device: one owner of a measurement's life cycle.

``queued -> leased -> done | failed``; a lease that was not renewed in time goes back to
``queued`` (the agent is taken for dead) when the next agent of the device asks for work,
and after ``MAX_ATTEMPTS`` lost leases the measurement fails. A lease is taken like a job
claim (``service.queue``): one ``UPDATE ... WHERE id = (SELECT ... LIMIT 1)``, with ``FOR
UPDATE SKIP LOCKED`` on PostgreSQL and under ``BEGIN IMMEDIATE`` on SQLite. Results and
renewals are fenced by ``(agent_id, status = leased)``: an agent whose lease was taken over
writes nothing.

A result is also stored in ``device_results`` under the device and a key of the models'
SHA-256 digests and the protocol, so the same model on the same device name is measured
once; a submission that matches a queued or leased measurement joins it.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.exc import IntegrityError

from service.core.db import Database
from service.models import Device, DeviceAgent, DeviceResult, Measurement, utcnow

MAX_ATTEMPTS = 3
#: protocol options an agent reads; anything else a caller sends is dropped
PROTOCOL = ("warmup", "rounds", "repeats", "batch_size", "input_shape")
LIVE = ("queued", "leased")


@dataclass(frozen=True)
class Work:
    """A leased measurement as the agent sees it."""

    id: int
    options: dict[str, Any]


def cache_key(models: Sequence[bytes], options: dict[str, Any]) -> str:
    doc = {"models": [hashlib.sha256(m).hexdigest() for m in models],
           "options": {k: options[k] for k in PROTOCOL if k in options}}
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


def submit(db: Database, device_id: int, models: Sequence[bytes], options: dict[str, Any],
           *, owner_id: int | None = None, job_id: str | None = None
           ) -> tuple[int | None, dict[str, Any] | None]:
    """Queue models measured together; ``(None, result)`` from the cache, or ``(id, None)``
    for a new measurement or a live one with the same models and protocol."""
    if not models:
        raise ValueError("nothing to measure")
    key = cache_key(models, options)
    opts = {k: options[k] for k in PROTOCOL if k in options}
    opts["sizes"] = [len(m) for m in models]
    with db.writing() as session:
        hit = session.get(DeviceResult, (device_id, key))
        if hit is not None:
            return None, dict(hit.result)
        live = session.scalar(select(Measurement.id).where(
            Measurement.device_id == device_id, Measurement.cache_key == key,
            Measurement.status.in_(LIVE)).limit(1))
        if live is not None:
            return int(live), None
        row = Measurement(device_id=device_id, owner_id=owner_id, job_id=job_id, cache_key=key,
                          options=opts, models=b"".join(models), status="queued", attempts=0)
        session.add(row)
        session.flush()
        return int(row.id), None


def _expire(session: Any, device_id: int) -> None:
    """Leases past their time go back to the queue (or fail after MAX_ATTEMPTS)."""
    now = utcnow()
    stale = and_(Measurement.device_id == device_id, Measurement.status == "leased",
                 Measurement.lease_expires_at < now)
    session.execute(update(Measurement).where(stale, Measurement.attempts >= MAX_ATTEMPTS)
                    .values(status="failed", agent_id=None, finished_at=now,
                            error=f"its device agents lost the lease {MAX_ATTEMPTS} times "
                                  "(they died or hung while measuring it)"))
    session.execute(update(Measurement).where(stale).values(status="queued", agent_id=None,
                                                            lease_expires_at=None))


def lease(db: Database, device_id: int, agent_id: int, lease_s: float) -> Work | None:
    """The oldest queued measurement of the device, now leased to this agent (or None)."""
    now = utcnow()
    with db.writing() as session:
        session.execute(update(DeviceAgent).where(DeviceAgent.id == agent_id)
                        .values(heartbeat_at=now))
        session.execute(update(Device).where(Device.id == device_id)
                        .values(last_heartbeat_at=now))
        _expire(session, device_id)
        ready = and_(Measurement.device_id == device_id, Measurement.status == "queued")
        inner = select(Measurement.id).where(ready).order_by(Measurement.id).limit(1)
        if not db.sqlite:
            inner = inner.with_for_update(skip_locked=True)
        row = session.execute(
            update(Measurement).where(Measurement.id == inner.scalar_subquery(), ready)
            .values(status="leased", agent_id=agent_id, attempts=Measurement.attempts + 1,
                    lease_expires_at=now + timedelta(seconds=lease_s))
            .returning(Measurement.id, Measurement.options)).first()
    return Work(int(row[0]), dict(row[1])) if row is not None else None


def _held(measurement_id: int, agent_id: int) -> Any:
    return and_(Measurement.id == measurement_id, Measurement.agent_id == agent_id,
                Measurement.status == "leased")


def models_of(db: Database, measurement_id: int, agent_id: int) -> bytes | None:
    """The models of a measurement this agent holds (None: not held)."""
    with db.reading() as session:
        return session.scalar(select(Measurement.models).where(
            _held(measurement_id, agent_id)))


def heartbeat(db: Database, device_id: int, agent_id: int, measurement_id: int | None,
              lease_s: float) -> bool:
    """The agent is alive; renews its lease on ``measurement_id`` (False: not held)."""
    now = utcnow()
    with db.writing() as session:
        session.execute(update(DeviceAgent).where(DeviceAgent.id == agent_id)
                        .values(heartbeat_at=now))
        session.execute(update(Device).where(Device.id == device_id)
                        .values(last_heartbeat_at=now))
        if measurement_id is None:
            return True
        result = session.execute(update(Measurement).where(_held(measurement_id, agent_id))
                                 .values(lease_expires_at=now + timedelta(seconds=lease_s)))
        return bool(result.rowcount)  # type: ignore[attr-defined]


def complete(db: Database, device_id: int, agent_id: int, measurement_id: int,
             result: dict[str, Any] | None, error: str | None) -> bool:
    """Store a held measurement's result (cached) or its failure; False: not held (409).
    ``ValueError`` when the result does not time every model."""
    now = utcnow()
    try:
        with db.writing() as session:
            row = session.execute(select(Measurement.cache_key, Measurement.options)
                                  .where(_held(measurement_id, agent_id))).first()
            if row is None:
                return False
            key, options = row
            if result is not None and len(result["models"]) != len(options["sizes"]):
                raise ValueError(f"{len(result['models'])} timings for "
                                 f"{len(options['sizes'])} models")
            session.execute(update(Measurement).where(_held(measurement_id, agent_id)).values(
                status="done" if error is None else "failed", result=result, error=error,
                finished_at=now, lease_expires_at=None))
            if error is None:
                if session.get(DeviceResult, (device_id, key)) is None:
                    session.add(DeviceResult(device_id=device_id, cache_key=key,
                                             result=result))
                session.execute(update(Device).where(Device.id == device_id).values(
                    measurements_done=Device.measurements_done + 1, last_heartbeat_at=now))
                session.execute(update(DeviceAgent).where(DeviceAgent.id == agent_id).values(
                    measurements_done=DeviceAgent.measurements_done + 1, heartbeat_at=now))
    except IntegrityError:  # another measurement of the same key stored it first
        return complete(db, device_id, agent_id, measurement_id, result, error)
    return True


def state(db: Database, measurement_id: int) -> tuple[str, dict[str, Any] | None, str | None]:
    with db.reading() as session:
        row = session.execute(select(Measurement.status, Measurement.result, Measurement.error)
                              .where(Measurement.id == measurement_id)).first()
    if row is None:
        return "failed", None, f"measurement {measurement_id} no longer exists"
    return row[0], row[1], row[2]


def withdraw(db: Database, measurement_id: int, reason: str) -> None:
    """A measurement nobody waits for any more leaves the queue (an agent holding it gets
    409 when it reports)."""
    with db.writing() as session:
        session.execute(update(Measurement).where(
            Measurement.id == measurement_id, or_(*(Measurement.status == s for s in LIVE)))
            .values(status="failed", error=reason, finished_at=utcnow(), agent_id=None))


def wait(db: Database, measurement_id: int, timeout_s: float,
         poll_s: float = 0.05) -> tuple[str, dict[str, Any] | None, str | None]:
    """Poll until the measurement is done or failed, or ``timeout_s`` passes (then it is
    withdrawn and reported failed with the queue's state)."""
    deadline = time.monotonic() + timeout_s
    while True:
        status, result, error = state(db, measurement_id)
        if status in ("done", "failed"):
            return status, result, error
        if time.monotonic() >= deadline:
            reason = (f"no result within {timeout_s:g} s (measurement {measurement_id} was "
                      f"{status}{'' if status == 'leased' else ': no agent took it'})")
            withdraw(db, measurement_id, reason)
            return "failed", None, reason
        time.sleep(min(poll_s, max(0.0, deadline - time.monotonic())))
