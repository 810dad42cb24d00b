"""Request and response bodies of the REST API (pydantic), kept apart from the SQL rows.

Families follow the FastAPI full-stack template: ``JobSummary``/``JobPublic`` for one job,
``JobsPublic{data, count}`` for a page. The request body of ``POST /jobs`` is the search
core's own ``JobSpec``, so the API and ``lightsearch search`` accept the same files.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from search.spec import JobSpec, ObjectiveSpec

JobStatusName = Literal["queued", "running", "succeeded", "failed", "cancelled", "exhausted"]
TrialStateName = Literal["running", "complete", "failed", "invalid", "pruned"]


class _Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class FieldError(BaseModel):
    field: str = Field(..., description="Dotted path of the field at fault ('' for the body).")
    message: str
    valid: list[str] | None = Field(None, description="The valid names, for unknown names.")


class ErrorBody(BaseModel):
    """Every error response: a sentence, and per-field details for validation errors."""

    detail: str
    errors: list[FieldError] = Field(default_factory=list)

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "detail": "agent.name: unknown agent 'ppo'; valid agents: evolution, mnas, nsga2, "
                  "random, reinforce, tpe",
        "errors": [{"field": "agent.name",
                    "message": "unknown agent 'ppo'; valid agents: evolution, mnas, nsga2, "
                               "random, reinforce, tpe",
                    "valid": ["evolution", "mnas", "nsga2", "random", "reinforce", "tpe"]}],
    }]})


EXAMPLES_DIR = Path(__file__).resolve().parents[1] / "examples"


def example_job(name: str) -> dict[str, Any]:
    """A job file of ``examples/`` (one definition for the README, the OpenAPI examples and
    ``serve --demo``)."""
    return json.loads((EXAMPLES_DIR / name).read_text())


JOB_EXAMPLES: dict[str, dict[str, Any]] = {
    "random-nb201": {
        "summary": "Random search on NAS-Bench-201 (table look-ups)",
        "value": {
            "name": "nb201-random", "space": {"name": "nb201"}, "agent": {"name": "random"},
            "evaluator": {"name": "tabular", "options": {"table": "nb201", "signal": "val_acc"}},
            "objectives": [{"metric": "val_acc", "direction": "max"}],
            "budget": {"evaluations": 200}, "executor": {"name": "ray", "batch_size": 16},
            "seed": 0,
        },
    },
    "mnas-pixel3": {
        "summary": "MnasNet controller, accuracy vs Pixel 3 latency (examples/nb201_pixel3.json)",
        "value": example_job("nb201_pixel3.json"),
    },
}

JobCreate = JobSpec


class TrialPublic(_Out):
    trial_id: int
    arch: dict[str, Any]
    arch_key: str
    state: TrialStateName
    reward: float | None
    metrics: dict[str, float | None]
    recorded: dict[str, Any]
    info: dict[str, Any]
    error: str | None
    cached: bool = Field(..., description="Answered from the job's cache (a repeat).")
    evaluation_index: int | None
    duration_s: float
    node: str | None = Field(..., description="Ray node id (or 'local') that evaluated it.")
    artifacts: dict[str, Any]
    on_front: bool = Field(..., description="On the job's current Pareto front.")

    model_config = ConfigDict(from_attributes=True, json_schema_extra={"examples": [{
        "trial_id": 7, "arch": {"edge_0_1": "nor_conv_3x3"}, "arch_key": "|nor_conv_3x3~0|...",
        "state": "complete", "reward": 91.2, "metrics": {"val_acc": 91.2},
        "recorded": {"test_acc": 93.1}, "info": {}, "error": None, "cached": False,
        "evaluation_index": 8, "duration_s": 0.002, "node": "local", "artifacts": {},
        "on_front": True,
    }]})


class TrialsPublic(BaseModel):
    data: list[TrialPublic]
    count: int


class JobProgress(BaseModel):
    evaluations: int = Field(..., description="Distinct architectures evaluated.")
    budget: int = Field(..., description="The job's evaluation budget.")
    fraction: float = Field(..., ge=0, le=1)
    trials: int
    complete: int
    failed: int
    cached: int
    tasks_started: int = Field(..., description="Evaluations handed to executors over all "
                               "attempts; more than the stored ones means trials re-ran.")


class HypervolumeReference(BaseModel):
    """The fixed point a job's hypervolume is measured from (once per job)."""

    point: list[float] = Field(..., description="One value per objective, in its units.")
    source: str = Field(..., description="Per objective, comma-separated: 'spec' (the job's "
                        "objectives[].reference), 'table' (the worst value of the table the "
                        "metric comes from) or 'first batch' (its worst value, widened 10%).")
    true_front: float | None = Field(..., description="The hypervolume of the tables' true "
                                     "Pareto front from this point, when tables hold every "
                                     "objective.")


class JobSummary(BaseModel):
    id: str
    name: str
    owner: str
    status: JobStatusName
    reason: str | None
    cancel_requested: bool
    executor: str | None
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(..., description="Times a worker claimed the job.")
    resumed: int = Field(..., description="Times the job resumed from a checkpoint.")
    progress: JobProgress
    best_reward: float | None
    hypervolume: float | None = Field(..., description="Of the Pareto front, from "
                                      "hypervolume_reference; null for one objective.")
    hypervolume_reference: HypervolumeReference | None
    hypervolume_normalized: float | None = Field(..., description="hypervolume / the true "
                                                 "front's (1 = the best the tables allow).")

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "id": "3f2c9a7d1b8e4f60a1c2d3e4f5a6b7c8", "name": "nb201-random", "owner": "alice",
        "status": "running", "reason": None, "cancel_requested": False, "executor": "ray",
        "created_at": "2026-01-01T12:00:00Z", "updated_at": "2026-01-01T12:00:05Z",
        "started_at": "2026-01-01T12:00:01Z", "finished_at": None, "attempts": 1,
        "resumed": 0, "progress": {"evaluations": 40, "budget": 200, "fraction": 0.2,
                                   "trials": 41, "complete": 40, "failed": 0, "cached": 1,
                                   "tasks_started": 48},
        "best_reward": 91.6, "hypervolume": 2512.3,
        "hypervolume_reference": {"point": [9.712, 36.7665], "source": "table,table",
                                  "true_front": 2897.68},
        "hypervolume_normalized": 0.867,
    }]})


class MetricPublic(BaseModel):
    """How to show a metric: its label, unit, the device it was measured on (null: not a
    device measurement) and which way is better (null: neither)."""

    label: str
    unit: str | None
    device: str | None
    direction: Literal["max", "min"] | None


class JobPublic(JobSummary):
    spec: dict[str, Any]
    best: TrialPublic | None = Field(..., description="The trial with the highest reward.")
    metrics: dict[str, MetricPublic] = Field(
        default_factory=dict, description="Every metric the job's evaluator and profilers "
        "produce, by name (as in each trial's `metrics`).",
        examples=[{"val_acc": {"label": "Validation accuracy", "unit": "%", "device": None,
                               "direction": "max"},
                   "pixel3_latency": {"label": "Latency on Pixel 3", "unit": "ms",
                                      "device": "pixel3", "direction": "min"}}])
    reward_formula: str | None = Field(
        None, description="The reward the agent learns from, written out.",
        examples=["val_acc * (pixel3_latency / 10 ms)^-0.07"])
    note: str | None = Field(None, description="The owner's note on the job (PATCH "
                             "/jobs/{id}); null when there is none.")


NOTE_MAX_CHARS = 10_000


class JobNoteUpdate(BaseModel):
    """The fields of a job its owner may change: its note."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"note": "Baseline for the Pixel 3 runs; compare with the evolution job."},
        {"note": None}]})

    note: str | None = Field(..., max_length=NOTE_MAX_CHARS, pattern=r"^[^\x00]*$", description=(
        f"Free text without NUL characters, at most {NOTE_MAX_CHARS:,} characters; null or "
        "blank clears it."))

    @field_validator("note", mode="before")
    @classmethod
    def _no_nul(cls, v: object) -> object:
        if isinstance(v, str) and "\x00" in v:  # PostgreSQL's text cannot hold it
            raise ValueError("must not contain NUL characters")
        return v

    @field_validator("note")
    @classmethod
    def _text(cls, v: str | None) -> str | None:
        return v if v is not None and v.strip() else None


class JobsPublic(BaseModel):
    data: list[JobSummary]
    count: int = Field(..., description="Jobs matching the filter (all pages).")


class ParetoPublic(BaseModel):
    """Non-dominated completed trials under the job's objectives (repeats excluded)."""

    objectives: list[ObjectiveSpec]
    data: list[TrialPublic]
    count: int


class HypervolumePoint(_Out):
    trial_id: int = Field(..., description="The trial after which the volume took this value.")
    evaluations: int = Field(..., description="Distinct evaluations so far (repeats are free).")
    value: float


class HypervolumePublic(BaseModel):
    """The hypervolume after each evaluation that changed it, from a reference point fixed
    once per job (so it never falls while nothing improves); empty for one objective."""

    objectives: list[ObjectiveSpec]
    reference: list[float] | None
    reference_source: str | None
    true_front: float | None
    data: list[HypervolumePoint]


class ArtifactPublic(BaseModel):
    path: str = Field(..., description="Relative path; download it at .../artifacts/{path}.")
    size: int
    modified_at: datetime


class ArtifactsPublic(BaseModel):
    data: list[ArtifactPublic]
    count: int


UploadKind = Literal["table", "dataset", "model"]


class UploadPublic(_Out):
    id: str
    kind: UploadKind
    name: str = Field(..., description="The file name given at upload.")
    size: int = Field(..., description="Bytes received.")
    sha256: str
    created_at: datetime
    ref: str = Field(..., description="What a job spec names to use it: 'upload:<id>'.")


class UploadsPublic(BaseModel):
    data: list[UploadPublic]
    count: int


class RegistryMetric(MetricPublic):
    name: str


class RegistryEntry(BaseModel):
    name: str
    summary: str
    options_schema: dict[str, Any]
    metrics: list[RegistryMetric] | None = Field(
        None, description="Evaluators and profilers: the metrics produced with default "
        "options; null when they depend on the options (a CSV's columns: see each job's "
        "`metrics`) or for other kinds.")


class RegistryPublic(BaseModel):
    kind: str
    data: list[RegistryEntry]


class RegistriesPublic(BaseModel):
    spaces: list[RegistryEntry]
    agents: list[RegistryEntry]
    profilers: list[RegistryEntry]
    evaluators: list[RegistryEntry]


class UserPublic(_Out):
    id: int
    name: str
    is_admin: bool


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    user: str = Field(..., min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.@-]+$")
    admin: bool = Field(False, description="Admins see and manage every user's jobs.")
    label: str = Field("", max_length=100, pattern=r"^[^\x00]*$")


class TokenCreated(BaseModel):
    id: int = Field(..., description="The token's id, to list or revoke it later.")
    user: str
    is_admin: bool
    token: str = Field(..., description="Shown once; only its SHA-256 digest is stored.")


class TokenPublic(BaseModel):
    """A token's record; the token itself is never shown again."""

    id: int
    user: str
    label: str
    created_at: datetime
    revoked_at: datetime | None = Field(..., description="Set once revoked: it then gets 401.")
    current: bool = Field(..., description="The token this request was made with.")


class TokensPublic(BaseModel):
    data: list[TokenPublic]
    count: int


class Health(BaseModel):
    status: Literal["ok"]


class Ready(BaseModel):
    status: Literal["ready", "not ready"]
    database: str
    migration: str | None
    detail: str | None = None
