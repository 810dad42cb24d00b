"""Service rules a job spec must meet beyond the search core's own validation.

One path policy for every file a spec names, at any depth: the plugins declare their path
fields (``spaces.paths.path_field``) and ``search.spec_paths`` finds them all. Each must
resolve, symlinks followed, inside

- the administrator's folder for its kind (tables, datasets, models; relative paths are
  taken relative to it),
- one of the submitting user's uploads (``upload:<id>``), or
- a file of one of their jobs (``job:<id>/<path>``, or the artifact path itself);

``output`` paths (files a job writes) must stay inside the user's work folder. Anything else
is a 422 naming the field, with one message whether or not the file exists. Accepted paths are
stored absolute, so the worker reads exactly what was checked. Strings with NUL characters
and non-finite numbers are refused too: PostgreSQL cannot store them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from search.spec import JobSpec
from search.spec_paths import rewrite_paths
from service import crud
from service.core.config import Settings
from service.core.errors import InvalidInput, NotFound
from service.core.security import Principal
from service.uploads import upload_dir
from spaces.paths import PathRef

UPLOAD_PREFIX = "upload:"
JOB_PREFIX = "job:"


@dataclass(frozen=True)
class PathRoots:
    """Where a user's job may read and write."""

    admin: dict[str, Path]  # table / dataset / model -> the administrator's folder
    artifacts: Path  # every job's artifact folder (<artifacts>/<job id>/)
    uploads: Path  # this user's uploads (<uploads>/<user id>/)
    work: Path  # this user's output folder
    upload: Callable[[str], tuple[str, Path] | None]  # id -> (kind, path) if the user's
    owns_job: Callable[[str], bool]  # job id -> is it the user's


def _walk(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(where, f"must be a finite number, got {value}")
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(where, "must not contain NUL characters")
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                raise InvalidInput(where, "keys must not contain NUL characters")
            _walk(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, f"{where}[{i}]")


def _refusal(kind: str) -> str:
    if kind == "output":
        return "must be a path inside your work folder (a relative path such as 'exports/run1')"
    return (f"must name a file in the server's {kind} folder (a path relative to it), one of "
            f"your uploads ('upload:ID') or a file of one of your jobs ('job:ID/PATH')")


def _inside(path: Path, root: Path) -> bool:
    return path.is_relative_to(root.resolve())


def _resolve(base: Path, rel: str) -> Path | None:
    try:
        return (base / rel).resolve()
    except (OSError, ValueError, RuntimeError):
        return None


class PathChecker:
    """Resolves each declared path of a spec for one user (``check_spec`` uses it)."""

    def __init__(self, roots: PathRoots) -> None:
        self.roots = roots

    def __call__(self, ref: PathRef) -> str:
        target = self._target(ref)
        if target is None:
            raise InvalidInput(ref.field, _refusal(ref.kind))
        return str(target)

    def _target(self, ref: PathRef) -> Path | None:
        value, kind, r = ref.value, ref.kind, self.roots
        if kind == "output":
            target = _resolve(r.work, value)
            return target if target is not None and _inside(target, r.work) else None
        if value.startswith(UPLOAD_PREFIX):
            return self._upload(ref, value.removeprefix(UPLOAD_PREFIX))
        if value.startswith(JOB_PREFIX):
            job_id, _, rel = value.removeprefix(JOB_PREFIX).partition("/")
            if not job_id or not rel or not self._owns(job_id):
                return None
            target = _resolve(r.artifacts / job_id, rel)
            return target if target is not None and _inside(target, r.artifacts / job_id) \
                else None
        admin = r.admin.get(kind)
        if admin is None:
            return None
        target = _resolve(admin, value)  # an absolute value replaces the base
        if target is None:
            return None
        if _inside(target, admin) or _inside(target, r.uploads):
            return target
        if _inside(target, r.artifacts):
            job_id = target.relative_to(r.artifacts.resolve()).parts[:1]
            return target if job_id and self._owns(job_id[0]) else None
        return None

    def _owns(self, job_id: str) -> bool:
        return len(job_id) <= 64 and self.roots.owns_job(job_id)

    def _upload(self, ref: PathRef, upload_id: str) -> Path:
        found = self.roots.upload(upload_id) if 0 < len(upload_id) <= 64 else None
        if found is None:
            raise InvalidInput(ref.field, f"you have no upload {upload_id[:64]!r} "
                                          "(see GET /api/v1/uploads)")
        kind, path = found
        if kind != ref.kind:
            raise InvalidInput(ref.field, f"upload {upload_id!r} is a {kind}; this field "
                                          f"needs a {ref.kind}")
        return path.resolve()


def check_spec(spec: JobSpec, roots: PathRoots) -> JobSpec:
    """The spec with every declared path checked and made absolute; ``InvalidInput``
    naming the field when it breaks a service rule."""
    data = spec.model_dump(mode="python")
    _walk(data, "")
    changed = rewrite_paths(data, PathChecker(roots))
    return JobSpec.model_validate(data) if changed else spec


def path_roots(settings: Settings, session: Session, user: Principal) -> PathRoots:
    """The roots of ``user``'s jobs on this server; uploads and jobs are looked up in
    ``session``."""
    def upload(upload_id: str) -> tuple[str, Path] | None:
        try:
            row = crud.get_upload(session, user, upload_id)
        except NotFound:
            return None
        return row.kind, upload_dir(settings.uploads_dir, row.owner_id, row.id) / row.entry

    return PathRoots(
        admin={"table": settings.tables_dir, "dataset": settings.datasets_dir,
               "model": settings.models_dir},
        artifacts=settings.artifact_dir, uploads=settings.uploads_dir / str(user.id),
        work=settings.work_dir / str(user.id), upload=upload,
        owns_job=lambda job_id: crud.owns_job(session, user, job_id))
