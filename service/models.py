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
    hv_reference: Mapped[list[float] | None] = mapped_column(JSONType, default=None)
    checkpoint_trial_id: Mapped[int | None] = mapped_column(Integer, default=None)
    resumed: Mapped[int] = mapped_column(Integer, default=0)
    # Evaluations handed to an executor over all attempts: minus stored ones = re-runs.
    tasks_started: Mapped[int] = mapped_column(Integer, default=0)


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
