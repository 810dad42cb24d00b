"""Jobs, their trials, Pareto front, hypervolume history and artifacts."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path, Query, status
from fastapi.responses import FileResponse, Response
from sqlalchemy.orm import Session

from search.spec import ObjectiveSpec
from service import crud
from service.admission import admit, job_metrics_document
from service.api.deps import (
    CurrentUser,
    JobReadDep,
    SessionDep,
    SettingsDep,
    StateDep,
    WriteSessionDep,
)
from service.artifacts import list_artifacts, resolve_artifact
from service.core.errors import Forbidden, JobNotFound
from service.devices.access import check_job_devices
from service.models import Job
from service.policy import check_spec, path_roots
from service.schemas import (
    JOB_EXAMPLES,
    ArtifactPublic,
    ArtifactsPublic,
    ErrorBody,
    HypervolumePublic,
    HypervolumeReference,
    JobCreate,
    JobNoteUpdate,
    JobProgress,
    JobPublic,
    JobsPublic,
    JobStatusName,
    JobSummary,
    ParetoPublic,
    TrialPublic,
    TrialsPublic,
    TrialStateName,
)
from service.trial_pages import page_json

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or invalid token."},
    404: {"model": ErrorBody, "description": "No such job (or not yours)."},
    422: {"model": ErrorBody, "description": "Invalid input; `errors` names each field."},
}
router = APIRouter(prefix="/jobs", tags=["jobs"], responses=ERRORS)
# Read routes are ``async``: their queries are indexed and take well under a millisecond (WAL
# readers never wait on a lock), while a thread-pool hop per request, and forty threads
# contending for the GIL, cost more than that under load. Routes that write (they may queue
# on SQLite's write lock) or touch the file system stay sync, in the thread pool.

JobId = Annotated[str, Path(min_length=1, max_length=64, description="The job's id.")]
Offset = Annotated[int, Query(ge=0, le=1_000_000_000)]
Limit = Annotated[int, Query(ge=1, le=1000)]
SortKey = Annotated[str, Query(
    min_length=1, max_length=200, pattern=r"^[A-Za-z0-9_.:\-]+$",
    description="trial_id, reward, duration_s, evaluation_index or any metric name "
                "(trials without that metric come last).",
)]


def _progress(job: Job) -> JobProgress:
    budget = max(job.budget, 1)
    return JobProgress(evaluations=job.evaluations, budget=job.budget,
                       fraction=min(1.0, job.evaluations / budget), trials=job.n_trials,
                       complete=job.n_complete, failed=job.n_failed, cached=job.n_cached,
                       tasks_started=job.tasks_started)


def _summary_fields(job: Job, owner: str) -> dict[str, Any]:
    return dict(
        id=job.id, name=job.name, owner=owner, status=job.status, reason=job.reason,
        cancel_requested=job.cancel_requested, executor=job.executor,
        created_at=job.created_at, updated_at=job.updated_at, started_at=job.started_at,
        finished_at=job.finished_at, attempts=job.attempts, resumed=job.resumed,
        progress=_progress(job), best_reward=job.best_reward, hypervolume=job.hypervolume,
        hypervolume_reference=_reference(job),
        hypervolume_normalized=(job.hypervolume / job.hv_true_front
                                if job.hypervolume is not None and job.hv_true_front else None),
    )


def _reference(job: Job) -> HypervolumeReference | None:
    if job.hv_reference is None:
        return None
    return HypervolumeReference(point=job.hv_reference, source=job.hv_reference_source or "",
                                true_front=job.hv_true_front)


def _load(session: Session, job_id: str) -> Job:
    """The job whose version was just checked (it may have been deleted since)."""
    job = session.get(Job, job_id)
    if job is None:
        raise JobNotFound(job_id)
    return job


def _public(session: Session, job: Job) -> JobPublic:
    owner = crud.owner_names(session, [job]).get(job.owner_id, "?")
    best = crud.get_trial(session, job.id, job.best_trial_id)
    metrics, formula = job_metrics_document(job.id, job.spec)
    return JobPublic(**_summary_fields(job, owner), spec=job.spec,
                     best=TrialPublic.model_validate(best) if best is not None else None,
                     metrics=metrics, reward_formula=formula, note=job.note)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=JobPublic,
             responses={413: {"model": ErrorBody, "description": "Body too large."}})
def create_job(
    user: CurrentUser, session: WriteSessionDep, settings: SettingsDep,
    spec: Annotated[JobCreate, Body(openapi_examples=JOB_EXAMPLES)],
) -> JobPublic:
    """Validate a job spec and queue it."""
    spec = check_spec(spec, path_roots(settings, session, user))
    check_job_devices(session, user, spec.profilers)
    admit(spec, settings)
    job = crud.create_job(session, user, spec)
    return _public(session, job)


@router.get("", response_model=JobsPublic,
            responses={403: {"model": ErrorBody, "description": "all=true without an admin "
                             "token."}})
async def list_jobs(
    user: CurrentUser, session: SessionDep,
    offset: Offset = 0, limit: Limit = 50,
    status: Annotated[JobStatusName | None, Query(description="Only jobs in this status.")]
    = None,
    all_users: Annotated[bool, Query(alias="all", description="Admins: every user's jobs.")]
    = False,
) -> JobsPublic:
    """A page of your jobs, newest first."""
    if all_users and not user.is_admin:
        raise Forbidden("all=true needs an admin token")
    rows, count = crud.list_jobs(session, user, status=status, offset=offset, limit=limit,
                                 all_users=all_users)
    owners = crud.owner_names(session, rows)
    return JobsPublic(data=[JobSummary(**_summary_fields(j, owners.get(j.owner_id, "?")))
                            for j in rows], count=count)


@router.get("/{job_id}", response_model=JobPublic)
async def get_job(job_id: JobId, read: JobReadDep, state: StateDep) -> Response:
    """Status, progress, the best trial so far and the spec."""
    key = ("job", read.job_id, read.updated_at)

    def build() -> JobPublic:
        return state.db.read(lambda session: _public(session, _load(session, key[1])))
    return state.responses.respond(key, build)


@router.patch("/{job_id}", response_model=JobPublic, responses={
    403: {"model": ErrorBody, "description": "Not the job's owner (an admin may read the job, "
          "not write its note)."}})
def update_job(job_id: JobId, user: CurrentUser, session: WriteSessionDep,
               body: JobNoteUpdate) -> JobPublic:
    """Change what the owner may change of a job, in any status: its note."""
    return _public(session, crud.set_job_note(session, user, job_id, body.note))


@router.post("/{job_id}/cancel", response_model=JobPublic,
             responses={409: {"model": ErrorBody, "description": "Job already finished."}})
def cancel_job(job_id: JobId, user: CurrentUser, session: WriteSessionDep) -> JobPublic:
    """Cancel: a queued job ends now; a running one stops within seconds, results kept."""
    return _public(session, crud.cancel_job(session, user, job_id))


@router.delete("/{job_id}", status_code=status.HTTP_204_NO_CONTENT,
               responses={409: {"model": ErrorBody, "description": "Job is running."}})
def delete_job(job_id: JobId, user: CurrentUser, session: WriteSessionDep,
               settings: SettingsDep) -> Response:
    """Delete a job that is not running, with its trials and artifacts."""
    crud.delete_job(session, user, job_id, settings.artifact_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/{job_id}/trials", response_model=TrialsPublic)
async def list_trials(
    job_id: JobId, read: JobReadDep, app: StateDep,
    offset: Offset = 0, limit: Limit = 50, sort: SortKey = "trial_id",
    order: Literal["asc", "desc"] = "asc",
    state: Annotated[TrialStateName | None, Query(description="Only trials in this state.")]
    = None,
) -> Response:
    """A page of the job's trials, sorted by a column or any metric."""
    def build() -> bytes:
        return app.db.read(lambda session: page_json(
            session, read, offset=offset, limit=limit, sort=sort, order=order, state=state))

    key = ("trials", read.job_id, read.updated_at, offset, limit, sort, order, state)
    return app.responses.respond(key, build)


def _trials(rows: list[dict[str, Any]]) -> list[TrialPublic]:
    return [TrialPublic.model_validate(r) for r in rows]


def _objectives(job: Job) -> list[ObjectiveSpec]:
    return [ObjectiveSpec.model_validate(o) for o in job.spec["objectives"]]


@router.get("/{job_id}/pareto", response_model=ParetoPublic)
async def pareto_front(job_id: JobId, read: JobReadDep, state: StateDep) -> Response:
    """The current Pareto front under the job's objectives."""
    key = ("pareto", read.job_id, read.updated_at)

    def build() -> ParetoPublic:
        return state.db.read(lambda session: _pareto(session, _load(session, key[1])))
    return state.responses.respond(key, build)


def _pareto(session: Session, job: Job) -> ParetoPublic:
    rows = _trials(crud.pareto_trials(session, job))
    objectives = _objectives(job)
    first = objectives[0]
    rows.sort(key=lambda t: (t.metrics.get(first.metric) is None,
                             -(t.metrics.get(first.metric) or 0.0) if first.direction == "max"
                             else (t.metrics.get(first.metric) or 0.0), t.trial_id))
    return ParetoPublic(objectives=objectives, data=rows, count=len(rows))


@router.get("/{job_id}/hypervolume", response_model=HypervolumePublic)
async def hypervolume(job_id: JobId, read: JobReadDep, state: StateDep) -> Response:
    """The hypervolume after each trial that changed it."""
    key = ("hypervolume", read.job_id, read.updated_at)

    def build() -> HypervolumePublic:
        return state.db.read(lambda session: _hypervolume(session, _load(session, key[1])))
    return state.responses.respond(key, build)


def _hypervolume(session: Session, job: Job) -> HypervolumePublic:
    return HypervolumePublic(objectives=_objectives(job), reference=job.hv_reference,
                             reference_source=job.hv_reference_source,
                             true_front=job.hv_true_front,
                             data=crud.hypervolume_history(session, job))


@router.get("/{job_id}/artifacts", response_model=ArtifactsPublic)
def artifacts(job_id: JobId, user: CurrentUser, session: SessionDep,
              settings: SettingsDep) -> ArtifactsPublic:
    """The job's files (results.json when finished, and evaluator outputs)."""
    job = crud.get_job(session, user, job_id)
    files = list_artifacts(settings.artifact_dir, job.id)
    return ArtifactsPublic(data=[ArtifactPublic(path=f.path, size=f.size,
                                                modified_at=f.modified_at) for f in files],
                           count=len(files))


@router.get("/{job_id}/artifacts/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "The file."}})
def download_artifact(job_id: JobId, path: str, user: CurrentUser, session: SessionDep,
                      settings: SettingsDep) -> FileResponse:
    """Download one artifact; paths outside the job's folder are not found."""
    job = crud.get_job(session, user, job_id)
    target = resolve_artifact(settings.artifact_dir, job.id, path)
    return FileResponse(target, filename=target.name,
                        media_type="application/octet-stream")
