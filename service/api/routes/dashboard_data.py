"""Read routes the dashboard needs beyond the job routes: a sign-in cookie, one-request page
snapshots, down-sampled scatter data, progress series, filtered trial pages and their CSV,
trial detail, the job's files, the analysis views and cookie-authenticated downloads.
Large answers are gzipped (``dashboard.responses``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response, status
from fastapi.responses import FileResponse

from service import crud
from service.api.deps import CurrentUser, SessionDep, SettingsDep
from service.api.routes.jobs import ERRORS, JobId, Limit, Offset
from service.artifacts import resolve_artifact
from service.core.errors import NotFound
from service.dashboard import analysis, export, queries
from service.dashboard.auth import Viewer, clear_session_cookie, set_session_cookie
from service.dashboard.responses import packed_json
from service.models import Job
from service.schemas import TrialPublic, TrialStateName, UserPublic

router = APIRouter(prefix="/dashboard", tags=["dashboard"], responses=ERRORS)

_NAME = r"[A-Za-z0-9_.:\-]{1,200}"
#: The keys ``queries.parse_axis`` accepts, as a pattern the OpenAPI document states.
AXIS_PATTERN = rf"^(trial_id|reward|duration_s|evaluation_index|(metrics|recorded)\.{_NAME})$"
COLOR_PATTERN = AXIS_PATTERN.replace("^(", "^(none|", 1)
SORT_PATTERN = rf"^(trial_id|reward|duration_s|evaluation_index|metrics\.{_NAME})$"
AxisKey = Annotated[str | None, Query(
    max_length=210, pattern=AXIS_PATTERN, description="A column (trial_id, reward, "
    "duration_s, evaluation_index), 'metrics.<name>' or 'recorded.<name>'. Default: the "
    "job's objectives.")]
ColorKey = Annotated[str | None, Query(
    max_length=210, pattern=COLOR_PATTERN, description="As x and y, or 'none': no colour.")]
MaxPoints = Annotated[int, Query(ge=50, le=50_000, description="Points to send at most; "
                                 "Pareto points and the best trial are always kept.")]
TrialId = Annotated[int, Path(ge=0, le=2**31 - 1)]
JSON_OK: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}}}}


def _default_axes(job: Job) -> tuple[str, str, str | None]:
    objs = [f"metrics.{o['metric']}" for o in queries.objectives(job)]
    if len(objs) >= 2:  # the second objective (a cost, usually) across, the first up
        return objs[1], objs[0], objs[2] if len(objs) > 2 else "trial_id"
    return "trial_id", objs[0] if objs else "reward", None


def _scatter(session: SessionDep, job: Job, x: str | None, y: str | None, color: str | None,
             max_points: int) -> dict[str, Any]:
    dx, dy, dc = _default_axes(job)
    x_axis = queries.parse_axis(x or dx, "x")
    y_axis = queries.parse_axis(y or dy, "y")
    c_key = color if color is not None else dc
    c_axis = queries.parse_axis(c_key, "color") if c_key and c_key != "none" else None
    return queries.scatter(session, job, x_axis, y_axis, c_axis, max_points)


@router.post("/session", response_model=UserPublic)
def sign_in(user: CurrentUser, request: Request, response: Response) -> UserPublic:
    """Sign in with a bearer token: sets the session cookie the event stream and downloads
    accept (HttpOnly, SameSite=Strict)."""
    token = request.headers["authorization"].split(None, 1)[1].strip()
    set_session_cookie(response, request, token)
    return UserPublic(id=user.id, name=user.name, is_admin=user.is_admin)


@router.delete("/session", status_code=status.HTTP_204_NO_CONTENT)
def sign_out() -> Response:
    """Drop the session cookie."""
    response = Response(status_code=status.HTTP_204_NO_CONTENT)
    clear_session_cookie(response)
    return response


@router.get("/jobs/{job_id}/overview", response_class=Response, responses=JSON_OK)
def overview(job_id: JobId, user: CurrentUser, session: SessionDep, request: Request,
             x: AxisKey = None, y: AxisKey = None, color: ColorKey = None,
             max_points: MaxPoints = 2000) -> Response:
    """Everything the job page draws first, from one read: axis choices, the scatter, the
    hypervolume and best-reward series, and the cursor to follow the event stream from."""
    job = crud.get_job(session, user, job_id)
    data = {"objectives": queries.objectives(job), "axes": queries.axes(session, job),
            "scatter": _scatter(session, job, x, y, color, max_points),
            "series": queries.series(session, job)}
    # One read transaction: the scatter and the series see the same rows; the stream starts
    # from the series' cursor (its trial part is the scatter's).
    data["cursor"] = data["series"]["cursor"]
    return packed_json(request, data)


@router.get("/jobs/{job_id}/scatter", response_class=Response, responses=JSON_OK)
def scatter(job_id: JobId, user: CurrentUser, session: SessionDep, request: Request,
            x: AxisKey = None, y: AxisKey = None, color: ColorKey = None,
            max_points: MaxPoints = 2000) -> Response:
    """Column-wise scatter data for two axes (and a colour), down-sampled on a grid."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, _scatter(session, job, x, y, color, max_points))


@router.get("/jobs/{job_id}/series", response_class=Response, responses=JSON_OK)
def series(job_id: JobId, user: CurrentUser, session: SessionDep,
           request: Request) -> Response:
    """Hypervolume and best reward against trials (only the points where they changed)."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, queries.series(session, job))


def trial_filter(
    state: Annotated[TrialStateName | None, Query(description="Only this state.")] = None,
    front: Annotated[bool, Query(description="Only Pareto points.")] = False,
    metric: Annotated[str | None, Query(max_length=210, pattern=SORT_PATTERN,
                                        description="'metrics.<name>' (or a column) bounded "
                                        "by min/max.")]
    = None,
    low: Annotated[float | None, Query(alias="min", allow_inf_nan=False, description=
                                       "Lower bound on `metric` (default: the sort key).")]
    = None,
    high: Annotated[float | None, Query(alias="max", allow_inf_nan=False, description=
                                        "Upper bound on `metric` (default: the sort key).")]
    = None,
    q: Annotated[str | None, Query(max_length=200, pattern=r"^[^\x00]*$",
                                   description="Text in the architecture key, or a trial id.")]
    = None,
    repeats: Annotated[bool, Query(description="false: hide repeats (answers from the "
                                   "job's cache for an architecture seen before).")] = True,
    where: Annotated[str | None, Query(max_length=20_000, description=(
        'JSON: {"ranges": {"metrics.<name>": [low, high]}, "choices": {"<decision>": '
        '[values]}} (the parallel coordinates\' brushes).'))] = None,
) -> queries.TrialFilter:
    return queries.TrialFilter(state=state, front=front, metric=metric, low=low, high=high,
                               q=q, repeats=repeats, where=queries.parse_where(where))


Filter = Annotated[queries.TrialFilter, Depends(trial_filter)]
Sort = Annotated[str, Query(max_length=210, pattern=SORT_PATTERN,
                            description="A column or 'metrics.<name>'.")]


@router.get("/jobs/{job_id}/trials", response_class=Response, responses=JSON_OK)
def trials(job_id: JobId, user: CurrentUser, session: SessionDep, request: Request,
           f: Filter, offset: Offset = 0, limit: Limit = 50, sort: Sort = "trial_id",
           order: Literal["asc", "desc"] = "asc") -> Response:
    """A page of trials, sorted and filtered on the server (slim rows)."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, queries.trials_page(session, job, f, offset=offset,
                                                    limit=limit, sort=sort, order=order))


@router.get("/jobs/{job_id}/trials.csv", response_class=Response,
            responses={200: {"content": {"text/csv": {}}}})
def trials_csv(job_id: JobId, user: Viewer, session: SessionDep, f: Filter,
               sort: Sort = "trial_id", order: Literal["asc", "desc"] = "asc") -> Response:
    """Every trial the same filter selects, as CSV (the table's export; cookie or token)."""
    job = crud.get_job(session, user, job_id)
    body = export.trials_csv(session, job, f, sort, order)
    name = f"trials-{job.id[:12]}.csv"
    return Response(body, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})


@router.get("/jobs/{job_id}/files", response_class=Response, responses=JSON_OK)
def files(job_id: JobId, user: CurrentUser, session: SessionDep, settings: SettingsDep,
          request: Request) -> Response:
    """The job's files: full path, size, what each is and the trial it belongs to."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, {"data": queries.job_files(settings.artifact_dir, job.id)})


@router.get("/jobs/{job_id}/importance", response_class=Response, responses=JSON_OK)
def importance(job_id: JobId, user: CurrentUser, session: SessionDep,
               request: Request) -> Response:
    """Each decision's importance per objective (Optuna's PED-ANOVA evaluator)."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, analysis.importance(session, job))


@router.get("/jobs/{job_id}/parallel", response_class=Response, responses=JSON_OK)
def parallel(job_id: JobId, user: CurrentUser, session: SessionDep, request: Request,
             max_rows: Annotated[int, Query(ge=50, le=20_000)] = 1500) -> Response:
    """Parallel coordinates: decision and metric axes, down-sampled trials as columns."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, analysis.parallel(session, job, max_rows))


@router.get("/jobs/{job_id}/slices", response_class=Response, responses=JSON_OK)
def slices(job_id: JobId, user: CurrentUser, session: SessionDep, request: Request,
           metric: Annotated[str | None, Query(max_length=210, description=(
               "'metrics.<name>' (default: the first objective)."))] = None) -> Response:
    """Per decision and choice, quantiles of one metric among the trials that took it."""
    job = crud.get_job(session, user, job_id)
    return packed_json(request, analysis.slices(session, job, metric))


@router.get("/jobs/{job_id}/trials/{trial_id}", response_class=Response, responses=JSON_OK)
def trial_detail(job_id: JobId, trial_id: TrialId, user: CurrentUser, session: SessionDep,
                 settings: SettingsDep, request: Request) -> Response:
    """One trial in full (architecture, every metric, error text) with its files' sizes."""
    job = crud.get_job(session, user, job_id)
    row = queries.trial_row(session, job.id, trial_id)
    if row is None:
        raise NotFound(f"trial {trial_id} not found in job {job_id!r}")
    data = TrialPublic.model_validate(row).model_dump(mode="json")
    data["files"] = queries.trial_files(settings.artifact_dir, row)
    data["is_best"] = job.best_trial_id == row.trial_id
    return packed_json(request, data)


@router.get("/jobs/{job_id}/artifacts/{path:path}", response_class=FileResponse,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "The file."}})
def download(job_id: JobId, path: str, user: Viewer, session: SessionDep,
             settings: SettingsDep) -> FileResponse:
    """The artifact download for links in the page (the session cookie authenticates)."""
    job = crud.get_job(session, user, job_id)
    target = resolve_artifact(settings.artifact_dir, job.id, path)
    return FileResponse(target, filename=target.name, media_type="application/octet-stream")
