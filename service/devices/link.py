"""The device link a job's remote profilers get from the SQL sink: the queue in this
database, used with the rights of the job's owner."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from search.base import ProfileFailed
from search.profilers.remote import DeviceLink, Ticket
from service.core.db import Database
from service.core.security import Principal
from service.devices import queue
from service.devices.access import get_device, may_use
from service.models import DevicePredictor, Job, User, utcnow


class DbDeviceLink(DeviceLink):
    """Devices this user may use, reached through the service's database."""

    def __init__(self, db: Database, user: Principal, job_id: str | None = None) -> None:
        self.db, self.user, self.job_id = db, user, job_id
        self._ids: dict[str, int] = {}

    @classmethod
    def for_job(cls, db: Database, job_id: str) -> DbDeviceLink:
        with db.reading() as session:
            row = session.execute(select(User.id, User.name, User.is_admin).join(
                Job, Job.owner_id == User.id).where(Job.id == job_id)).one()
        return cls(db, Principal(int(row.id), row.name, bool(row.is_admin)), job_id)

    def _device_id(self, device: str) -> int:
        if device not in self._ids:
            with self.db.reading() as session:
                row = get_device(session, device)
                if row is None or not may_use(row, self.user):
                    raise ValueError(f"device {device!r} is not registered or user "
                                     f"{self.user.name!r} may not use it (an admin creates "
                                     "it: lightsearch device token create --name NAME)")
                self._ids[device] = row.id
        return self._ids[device]

    def check(self, device: str) -> None:
        self._device_id(device)

    def submit(self, device: str, models: Sequence[bytes], options: dict[str, Any]) -> Ticket:
        mid, result = queue.submit(self.db, self._device_id(device), models, options,
                                   owner_id=self.user.id, job_id=self.job_id)
        return Ticket(mid, result)

    def wait(self, ticket: Ticket, timeout_s: float) -> dict[str, Any]:
        if ticket.result is not None:
            return ticket.result
        assert ticket.id is not None
        status, result, error = queue.wait(self.db, ticket.id, timeout_s)
        if status != "done" or result is None:
            raise ProfileFailed(error or f"measurement {ticket.id} failed")
        return result

    def load_table(self, device: str, key: str) -> dict[str, Any] | None:
        with self.db.reading() as session:
            row = session.get(DevicePredictor, (self._device_id(device), key))
            return dict(row.table) if row is not None else None

    def save_table(self, device: str, key: str, table: dict[str, Any]) -> None:
        device_id = self._device_id(device)
        with self.db.writing() as session:
            row = session.get(DevicePredictor, (device_id, key))
            if row is None:
                session.add(DevicePredictor(device_id=device_id, key=key, table=table))
            else:
                row.table, row.updated_at = table, utcnow()
