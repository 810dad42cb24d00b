"""SQLAlchemy rows. Pydantic schemas for the API live apart, in ``schemas.py``.

Job progress counters (trials, best trial, hypervolume) are kept on the job row and updated in
the same transaction as each trial insert, so the job routes stay one indexed read however
many trials a job has. Checkpoints sit in their own table so job listings never load blobs.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import BYTEA, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

JSONType = JSON().with_variant(JSONB(), "postgresql")


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite keeps no time zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC)
            if dialect.name == "sqlite":
                value = value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


BlobType = LargeBinary().with_variant(BYTEA(), "postgresql")


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_job_id() -> str:
    return uuid.uuid4().hex


class JobStatus(enum.StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    #: Ran out of new architectures to propose before its budget (reason: evaluations reached).
    EXHAUSTED = "exhausted"

    @property
    def finished(self) -> bool:
        return self in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED,
                        JobStatus.EXHAUSTED)



class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSONType, datetime: UTCDateTime()}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_created", "status", "created_at"),
        Index("ix_jobs_owner_created", "owner_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    spec: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED.value)
    reason: Mapped[str | None] = mapped_column(Text, default=None)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    executor: Mapped[str | None] = mapped_column(String(16), default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)
    # Queue lease: the worker that owns a running job and when it last said so.
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Progress, updated with every trial.
    budget: Mapped[int] = mapped_column(Integer, default=0)
    evaluations: Mapped[int] = mapped_column(Integer, default=0)
    n_trials: Mapped[int] = mapped_column(Integer, default=0)
    n_complete: Mapped[int] = mapped_column(Integer, default=0)
    n_failed: Mapped[int] = mapped_column(Integer, default=0)
    n_cached: Mapped[int] = mapped_column(Integer, default=0)
    best_trial_id: Mapped[int | None] = mapped_column(Integer, default=None)
    best_reward: Mapped[float | None] = mapped_column(Float, default=None)
    hypervolume: Mapped[float | None] = mapped_column(Float, default=None)
    # The hypervolume's reference point, fixed once per job (``search.trials.HvReference``):
    # the point, where it came from, the true front's hypervolume against it (migration 0004).
    hv_reference: Mapped[list[float] | None] = mapped_column(JSONType, default=None)
    hv_reference_source: Mapped[str | None] = mapped_column(String(64), default=None)
    hv_true_front: Mapped[float | None] = mapped_column(Float, default=None)
    checkpoint_trial_id: Mapped[int | None] = mapped_column(Integer, default=None)
    resumed: Mapped[int] = mapped_column(Integer, default=0)
    # Evaluations handed to an executor over all attempts: minus stored ones = re-runs.
    tasks_started: Mapped[int] = mapped_column(Integer, default=0)
    # The owner's free-text note on the job (the dashboard's job page; migration 0006).
    note: Mapped[str | None] = mapped_column(Text, default=None)


class Checkpoint(Base):
    """The search loop's state after its last agent update (pickled)."""

    __tablename__ = "checkpoints"

    job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True
    )
    last_trial_id: Mapped[int] = mapped_column(Integer)
    state: Mapped[bytes] = mapped_column(BlobType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Trial(Base):
    __tablename__ = "trials"
    __table_args__ = (
        UniqueConstraint("job_id", "trial_id", name="uq_trials_job_trial"),
        # Pages read their ids from these alone (crud.list_trials); migration 0002.
        Index("ix_trials_job_reward", "job_id", "reward", "trial_id"),
        Index("ix_trials_job_state", "job_id", "state", "trial_id"),
        Index("ix_trials_job_front", "job_id", "on_front", "trial_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(Integer)
    arch: Mapped[dict[str, Any]] = mapped_column(JSONType)
    arch_key: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(String(16))
    reward: Mapped[float | None] = mapped_column(Float, default=None)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    recorded: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    info: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    cached: Mapped[bool] = mapped_column(Boolean, default=False)
    evaluation_index: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_s: Mapped[float] = mapped_column(Float, default=0.0)
    node: Mapped[str | None] = mapped_column(String(200), default=None)
    artifacts: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    on_front: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TrialMetric(Base):
    """One metric of one trial, so trials sort by any metric through an index (the JSON
    column would need a scan of every trial of the job per request)."""

    __tablename__ = "trial_metrics"
    __table_args__ = (Index("ix_trial_metrics_sort", "job_id", "name", "value", "trial_id"),)

    job_id: Mapped[str] = mapped_column(
        ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    trial_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[float] = mapped_column(Float)


class HypervolumePoint(Base):
    """The hypervolume of the front after a trial changed it (a step function)."""

    __tablename__ = "hypervolume_points"
    __table_args__ = (Index("ix_hv_job_trial", "job_id", "trial_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    trial_id: Mapped[int] = mapped_column(Integer)
    evaluations: Mapped[int] = mapped_column(Integer)
    value: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Upload(Base):
    """A user's own file (a table, a dataset, model weights); jobs name it ``upload:<id>``.

    ``entry`` is the file or folder to use, relative to ``<uploads_dir>/<owner>/<id>/``."""

    __tablename__ = "uploads"
    __table_args__ = (Index("ix_uploads_owner_created", "owner_id", "created_at"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_job_id)
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(200))
    entry: Mapped[str] = mapped_column(String(400))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# ---- remote devices (service/devices) ---------------------------------------------------------
class Device(Base):
    """A named kind of hardware that agents measure on (``remote:<name>``); several agents
    may serve one name. ``users``: who may queue work on it (None: every user)."""

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    users: Mapped[list[str] | None] = mapped_column(JSONType, default=None)
    description: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    measurements_done: Mapped[int] = mapped_column(Integer, default=0)
    last_heartbeat_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeviceToken(Base):
    """A token scoped to profiling on one device: agent routes only, never jobs."""

    __tablename__ = "device_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class DeviceAgent(Base):
    """One running agent process of a device (registered, sends heartbeats)."""

    __tablename__ = "device_agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    agent_key: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    registered_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow)
    measurements_done: Mapped[int] = mapped_column(Integer, default=0)


class Measurement(Base):
    """One queued measurement of ONNX models on a device: queued -> leased -> done|failed;
    a lease that runs out puts it back to queued (``service.devices.queue`` owns the moves)."""

    __tablename__ = "device_measurements"
    __table_args__ = (Index("ix_device_measurements_queue", "device_id", "status", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    owner_id: Mapped[int | None] = mapped_column(Integer, default=None)
    job_id: Mapped[str | None] = mapped_column(String(32), default=None)
    cache_key: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)
    models: Mapped[bytes] = mapped_column(BlobType)
    status: Mapped[str] = mapped_column(String(16), default="queued")
    agent_id: Mapped[int | None] = mapped_column(Integer, default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSONType, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)


class DeviceResult(Base):
    """A finished measurement's result, by device and model hash (+ options): a model is
    measured once per device name."""

    __tablename__ = "device_results"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           primary_key=True)
    cache_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    result: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DevicePredictor(Base):
    """A latency predictor's per-layer table and calibrations measured on a device."""

    __tablename__ = "device_predictors"

    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    table: Mapped[dict[str, Any]] = mapped_column(JSONType)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
