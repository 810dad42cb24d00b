"""Liveness and readiness probes (no token: load balancers call them)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from service.api.deps import StateDep
from service.migrations import current_revision, head_revision
from service.schemas import Health, Ready

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> Health:
    """The process is up."""
    return Health(status="ok")


@router.get("/readyz", response_model=Ready, responses={503: {"model": Ready}})
def readyz(state: StateDep) -> Ready | JSONResponse:
    """The database answers and its schema is at the latest migration."""
    db = state.db
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current = current_revision(db.engine)
    except Exception as err:  # noqa: BLE001 - reported as 'not ready' with the reason
        body = Ready(status="not ready", database=db.engine.dialect.name, migration=None,
                     detail=f"database unreachable: {type(err).__name__}")
        return JSONResponse(body.model_dump(), status_code=503)
    head = head_revision()
    if current != head:
        body = Ready(status="not ready", database=db.engine.dialect.name, migration=current,
                     detail=f"schema at {current}, code expects {head}")
        return JSONResponse(body.model_dump(), status_code=503)
    return Ready(status="ready", database=db.engine.dialect.name, migration=current)
