"""Your own tables, datasets and model weights: upload, list, delete. Jobs name them
``upload:<id>``; other users' uploads answer 404 (and 422 in a spec), like their jobs."""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response

from service import crud
from service.api.deps import CurrentUser, SessionDep, SettingsDep, StateDep, WriteSessionDep
from service.api.routes.jobs import ERRORS
from service.artifacts import safe_name
from service.core.config import Settings
from service.core.db import Database
from service.core.errors import InvalidInput, TooLarge
from service.core.security import Principal
from service.models import Upload
from service.schemas import ErrorBody, UploadKind, UploadPublic, UploadsPublic
from service.uploads import check_model, check_table, unpack_dataset, upload_dir

router = APIRouter(prefix="/uploads", tags=["uploads"],
                   responses={401: ERRORS[401], 422: ERRORS[422]})
UploadId = Annotated[str, PathParam(min_length=1, max_length=64, description="The upload's id.")]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such upload (or not yours)."}}
BODY = {"requestBody": {"required": True, "content": {
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}}


def public(upload: Upload) -> UploadPublic:
    return UploadPublic(id=upload.id, kind=upload.kind, name=upload.name, size=upload.size,
                        sha256=upload.sha256, created_at=upload.created_at,
                        ref=f"upload:{upload.id}")


def _store(settings: Settings, db: Database, user: Principal, upload_id: str, kind: str,
           name: str, incoming: Path, size: int, digest: str) -> Upload:
    """Check the received file for its kind, keep it in its final form, record it."""
    folder = incoming.parent
    if kind == "table":
        check_table(incoming)
        entry = folder / (name if name.lower().endswith(".csv") else f"{name}.csv")
        incoming.rename(entry)
    elif kind == "model":
        check_model(incoming)
        entry = folder / name
        incoming.rename(entry)
    else:
        entry = unpack_dataset(incoming, folder / "data", settings.max_unpacked_bytes)
        incoming.unlink()
    row = Upload(id=upload_id, kind=kind, name=name, entry=entry.relative_to(folder).as_posix(),
                 size=size, sha256=digest)
    with db.write_session() as session:
        return crud.create_upload(session, user, row)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=UploadPublic,
             openapi_extra=BODY,
             responses={413: {"model": ErrorBody, "description": "Larger than the limit."}})
async def create_upload(
    request: Request, user: CurrentUser, state: StateDep,
    kind: Annotated[UploadKind, Query(description="table (CSV), dataset (zip or tar of an "
                                      "ImageFolder tree or CIFAR-10 binary batches) or model "
                                      "(safetensors, weights-only torch file, .lsz)")],
    name: Annotated[str, Query(min_length=1, max_length=150,
                               description="The file's name (kept for your reference).")],
) -> UploadPublic:
    """Upload a file as the request body (application/octet-stream); it is checked, kept
    under your name and answered with the id jobs name it by ('upload:<id>')."""
    settings = state.settings
    upload_id = uuid.uuid4().hex
    folder = upload_dir(settings.uploads_dir, user.id, upload_id)
    folder.mkdir(parents=True, exist_ok=False)
    incoming = folder / ".incoming"
    digest, size = hashlib.sha256(), 0
    try:
        with incoming.open("wb") as fh:
            async for chunk in request.stream():
                size += len(chunk)
                if size > settings.max_upload_bytes:
                    raise TooLarge(f"upload larger than {settings.max_upload_bytes} bytes")
                digest.update(chunk)
                fh.write(chunk)
        if size == 0:
            raise InvalidInput("file", "the request body is empty: send the file's bytes")
        row = await run_in_threadpool(_store, settings, state.db, user, upload_id, kind,
                                      safe_name(name), incoming, size, digest.hexdigest())
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    return public(row)


@router.get("", response_model=UploadsPublic)
def list_uploads(user: CurrentUser, session: SessionDep) -> UploadsPublic:
    """Your uploads, newest first."""
    rows = [public(u) for u in crud.list_uploads(session, user)]
    return UploadsPublic(data=rows, count=len(rows))


@router.get("/{upload_id}", response_model=UploadPublic, responses=NOT_FOUND)
def get_upload(upload_id: UploadId, user: CurrentUser, session: SessionDep) -> UploadPublic:
    """One of your uploads."""
    return public(crud.get_upload(session, user, upload_id))


@router.delete("/{upload_id}", status_code=status.HTTP_204_NO_CONTENT, responses=NOT_FOUND)
def delete_upload(upload_id: UploadId, user: CurrentUser, session: WriteSessionDep,
                  settings: SettingsDep) -> Response:
    """Delete an upload and its files."""
    crud.delete_upload(session, user, upload_id, settings.uploads_dir)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
