"""Reads and writes behind the API routes; routes never touch the session themselves.

Every job access goes through ``get_job``: a job that does not exist and a job of another user
raise the same ``JobNotFound`` (404), so ids cannot be probed. Admins see every job.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol

from sqlalchemy import ColumnElement, delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from search.spec import JobSpec
from service import jobstate
from service.core.errors import (
    Conflict,
    Forbidden,
    InvalidTransition,
    JobNotFound,
    NotFound,
    UploadNotFound,
)
from service.core.security import Principal, hash_token, new_token
from service.models import (
    ApiToken,
    Checkpoint,
    HypervolumePoint,
    Job,
    JobStatus,
    Trial,
    TrialMetric,
    Upload,
    User,
    utcnow,
)

TRIAL_COLUMNS = ("trial_id", "reward", "duration_s", "evaluation_index")


# ---- users and tokens ----------------------------------------------------------------------
def get_user(session: Session, name: str) -> User | None:
    return session.scalar(select(User).where(User.name == name))


def create_user(session: Session, name: str, *, is_admin: bool = False) -> User:
    if get_user(session, name) is not None:
        raise Conflict(f"user {name!r} already exists")
    user = User(name=name, is_admin=is_admin)
    session.add(user)
    session.flush()
    return user


def create_token(session: Session, user_name: str, *, admin: bool = False,
                 label: str = "") -> tuple[User, str]:
    """A new token for ``user_name`` (created if new; ``admin`` promotes it). Commits."""
    user = get_user(session, user_name)
    if user is None:
        user = create_user(session, user_name, is_admin=admin)
    elif admin and not user.is_admin:
        user.is_admin = True
    token = new_token()
    session.add(ApiToken(user_id=user.id, token_hash=hash_token(token), label=label))
    safe_commit(session)
    return user, token


def principal_for_token(session: Session, token: str) -> Principal | None:
    row = session.execute(
        select(User.id, User.name, User.is_admin).join(ApiToken, ApiToken.user_id == User.id)
        .where(ApiToken.token_hash == hash_token(token), ApiToken.revoked_at.is_(None))
    ).first()
    return Principal(row.id, row.name, bool(row.is_admin)) if row is not None else None


def token_rows(session: Session, user: Principal | None = None) -> list[Any]:
    """Tokens (id, user, label, dates, and the digest so a route can mark the caller's own;
    no route shows it), oldest first; ``user``: only theirs, None: everyone's."""
    stmt = (select(ApiToken.id, User.name.label("user"), ApiToken.label, ApiToken.created_at,
                   ApiToken.revoked_at, ApiToken.token_hash)
            .join(User, User.id == ApiToken.user_id).order_by(ApiToken.id))
    if user is not None:
        stmt = stmt.where(ApiToken.user_id == user.id)
    return list(session.execute(stmt).all())


def find_token(session: Session, user: Principal | None, *, token_id: int | None = None,
               token_hash: str | None = None) -> ApiToken:
    """A token by id or digest that ``user`` may revoke (their own; any for admins, or for
    None: the server-side CLI). Another user's token is ``NotFound``, like a missing one."""
    if token_id is not None:
        token = session.get(ApiToken, token_id) if 0 < token_id < 2**31 else None
    else:
        token = session.scalar(select(ApiToken).where(ApiToken.token_hash == token_hash))
    if token is None or not (user is None or user.is_admin or token.user_id == user.id):
        raise NotFound(f"token {token_id if token_id is not None else '(given)'} not found")
    return token


def revoke_token(session: Session, token: ApiToken) -> ApiToken:
    """Revoke now (idempotent: an already revoked token keeps its first date). Commits."""
    if token.revoked_at is None:
        token.revoked_at = utcnow()
        session.commit()
    return token


def count_users(session: Session) -> int:
    return int(session.scalar(select(func.count()).select_from(User)) or 0)


# ---- uploads -------------------------------------------------------------------------------
def create_upload(session: Session, owner: Principal, upload: Upload) -> Upload:
    upload.owner_id = owner.id
    session.add(upload)
    session.commit()
    return upload


def get_upload(session: Session, user: Principal, upload_id: str) -> Upload:
    """The user's upload; another user's (admins excepted) is ``UploadNotFound`` like a
    missing one, so ids cannot be probed."""
    upload = session.get(Upload, upload_id) if len(upload_id) <= 32 else None
    if upload is None or not (user.is_admin or upload.owner_id == user.id):
        raise UploadNotFound(upload_id)
    return upload


def list_uploads(session: Session, user: Principal) -> list[Upload]:
    return list(session.scalars(select(Upload).where(Upload.owner_id == user.id)
                                .order_by(Upload.created_at.desc(), Upload.id)))


def delete_upload(session: Session, user: Principal, upload_id: str, root: Path) -> None:
    """Delete the row and its files (jobs that named it fail when they next read it)."""
    upload = get_upload(session, user, upload_id)
    folder = root / str(upload.owner_id) / upload.id
    session.delete(upload)
    session.commit()
    shutil.rmtree(folder, ignore_errors=True)


def owns_job(session: Session, user: Principal, job_id: str) -> bool:
    try:
        get_job(session, user, job_id)
    except JobNotFound:
        return False
    return True


# ---- jobs ----------------------------------------------------------------------------------
def create_job(session: Session, owner: Principal, spec: JobSpec) -> Job:
    job = Job(owner_id=owner.id, name=spec.name, spec=spec.model_dump(mode="json"),
              status=JobStatus.QUEUED.value, budget=spec.budget.evaluations)
    session.add(job)
    session.commit()
    return job


def _visible(user: Principal) -> ColumnElement[bool]:
    return Job.owner_id == user.id


def get_job(session: Session, user: Principal, job_id: str) -> Job:
    """The job if ``user`` may see it; ``JobNotFound`` otherwise (missing or not theirs)."""
    job = session.get(Job, job_id) if len(job_id) <= 32 else None
    if job is None or not (user.is_admin or job.owner_id == user.id):
        raise JobNotFound(job_id)
    return job


def owner_names(session: Session, jobs: Sequence[Job]) -> dict[int, str]:
    ids = {j.owner_id for j in jobs}
    if not ids:
        return {}
    return dict(session.execute(select(User.id, User.name).where(User.id.in_(ids))).all())


def list_jobs(session: Session, user: Principal, *, status: str | None = None, offset: int = 0,
              limit: int = 50, all_users: bool = False) -> tuple[list[Job], int]:
    conds: list[ColumnElement[bool]] = []
    if not (user.is_admin and all_users):
        conds.append(_visible(user))
    if status is not None:
        conds.append(Job.status == status)
    count = session.scalar(select(func.count()).select_from(Job).where(*conds)) or 0
    rows = session.scalars(
        select(Job).where(*conds).order_by(Job.created_at.desc(), Job.id)
        .offset(offset).limit(limit)
    ).all()
    return list(rows), int(count)


def cancel_job(session: Session, user: Principal, job_id: str) -> Job:
    """Queued jobs end at once; a running job is flagged and its worker stops it."""
    job = get_job(session, user, job_id)
    jobstate.cancel(session, job)  # InvalidTransition (409) for a finished job
    session.commit()
    session.refresh(job)
    return job


def set_job_note(session: Session, user: Principal, job_id: str, note: str | None) -> Job:
    """The job's note, as its owner writes it (others who may see the job, admins, get
    ``Forbidden``). The job's version moves on, so cached job documents are not served."""
    job = get_job(session, user, job_id)
    if job.owner_id != user.id:
        raise Forbidden("only the job's owner may edit its note")
    job.note = note
    job.updated_at = utcnow()
    session.commit()
    session.refresh(job)
    return job


def delete_job(session: Session, user: Principal, job_id: str, artifact_root: Path) -> None:
    job = get_job(session, user, job_id)
    if job.status == JobStatus.RUNNING:
        raise InvalidTransition(f"job {job_id!r} is running; cancel it first")
    for table in (TrialMetric, Trial, HypervolumePoint, Checkpoint):
        session.execute(delete(table).where(table.job_id == job.id))
    session.delete(job)
    session.commit()
    shutil.rmtree(artifact_root / job.id, ignore_errors=True)


# ---- trials, front, hypervolume ------------------------------------------------------------
def get_trial(session: Session, job_id: str, trial_id: int | None) -> TrialRow | None:
    if trial_id is None:
        return None
    rows = _rows(session, select(_TRIALS).where(_TRIALS.c.job_id == job_id,
                                                _TRIALS.c.trial_id == trial_id))
    return rows[0] if rows else None


TrialRow = dict[str, Any]
_TRIALS = Trial.__table__
_METRICS = TrialMetric.__table__


def _rows(session: Session, stmt: Any) -> list[TrialRow]:
    """Plain dicts (no ORM identity map): pages of trials are read-only and hot."""
    result = session.execute(stmt)
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]  # 3x cheaper than mappings()


class JobCounts(Protocol):
    """What a trials page needs of its job: a ``Job`` row, or the API's checked version."""

    @property
    def id(self) -> str: ...
    @property
    def n_trials(self) -> int: ...


def list_trials(session: Session, job: JobCounts, *, offset: int = 0, limit: int = 50,
                sort: str = "trial_id", order: Literal["asc", "desc"] = "asc",
                state: str | None = None) -> tuple[list[TrialRow], int]:
    """A page of trials sorted by a column or by any metric (trials without it come last),
    and the number of trials that match."""
    ids, count = page_ids(session, job, offset=offset, limit=limit, sort=sort, order=order,
                          state=state)
    return trials_by_ids(session, job.id, ids), count


def page_ids(session: Session, job: JobCounts, *, offset: int = 0, limit: int = 50,
             sort: str = "trial_id", order: Literal["asc", "desc"] = "asc",
             state: str | None = None) -> tuple[list[int], int]:
    """The trial ids of a page, in order, and the number of trials that match.

    The ids come from an index alone (the OFFSET steps over index entries, not over trial
    rows with their JSON), the rows later by primary key: a page deep in a 10,000-trial job
    costs about what the first one does. Metric sorts walk the ``trial_metrics`` index the
    same way."""
    t = _TRIALS
    conds: list[ColumnElement[bool]] = [t.c.job_id == job.id]
    if state is not None:
        conds.append(t.c.state == state)
        count = session.scalar(select(func.count()).select_from(t).where(*conds)) or 0
    else:
        count = job.n_trials
    if sort in TRIAL_COLUMNS:
        key = t.c[sort]
        keys = [key.asc().nulls_last(), t.c.trial_id.asc()] if order == "asc" else \
            [key.desc().nulls_last(), t.c.trial_id.desc()]
        return _ids(session, select(t.c.trial_id).where(*conds).order_by(*keys)
                    .offset(offset).limit(limit)), int(count)
    m = _METRICS
    with_sort = (m.c.job_id == job.id) & (m.c.name == sort)
    keys = [m.c.value.asc(), m.c.trial_id.asc()] if order == "asc" else \
        [m.c.value.desc(), m.c.trial_id.desc()]
    if state is None:  # the metric index alone answers
        ids_stmt = select(m.c.trial_id).where(with_sort)
    else:
        ids_stmt = select(m.c.trial_id).select_from(
            m.join(t, (t.c.job_id == m.c.job_id) & (t.c.trial_id == m.c.trial_id))
        ).where(with_sort, *conds)
    ids = _ids(session, ids_stmt.order_by(*keys).offset(offset).limit(limit))
    if len(ids) < limit:  # past the trials with the metric: those without it, by id
        if ids:
            with_metric = offset + len(ids)
        else:
            with_metric = session.scalar(
                select(func.count()).select_from(ids_stmt.subquery())) or 0
        has = select(m.c.trial_id).where(with_sort, m.c.trial_id == t.c.trial_id).exists()
        ids += _ids(session, select(t.c.trial_id).where(*conds, ~has).order_by(t.c.trial_id)
                    .offset(max(0, offset - with_metric)).limit(limit - len(ids)))
    return ids, int(count)


def _ids(session: Session, stmt: Any) -> list[int]:
    return list(session.scalars(stmt).all())


def trials_by_ids(session: Session, job_id: str, ids: list[int]) -> list[TrialRow]:
    """The trials with these ids, in this order."""
    if not ids:
        return []
    rows = _rows(session, select(_TRIALS).where(_TRIALS.c.job_id == job_id,
                                                _TRIALS.c.trial_id.in_(ids)))
    where = {tid: i for i, tid in enumerate(ids)}
    rows.sort(key=lambda r: where[r["trial_id"]])
    return rows


def pareto_trials(session: Session, job: Job) -> list[TrialRow]:
    return _rows(session, select(_TRIALS).where(_TRIALS.c.job_id == job.id,
                                                _TRIALS.c.on_front.is_(True))
                 .order_by(_TRIALS.c.trial_id))


def hypervolume_history(session: Session, job: Job) -> list[TrialRow]:
    """``{trial_id, evaluations, value}`` per point, in order (plain rows: no ORM objects)."""
    p = HypervolumePoint.__table__
    return _rows(session, select(p.c.trial_id, p.c.evaluations, p.c.value)
                 .where(p.c.job_id == job.id).order_by(p.c.trial_id, p.c.id))


def safe_commit(session: Session) -> None:
    """Commit, turning a unique-key race into a 409 instead of a 500."""
    try:
        session.commit()
    except IntegrityError as err:
        session.rollback()
        raise Conflict("the resource changed concurrently; retry") from err
