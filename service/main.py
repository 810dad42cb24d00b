"""The FastAPI application: ``create_app(settings)`` (uvicorn: ``service.main:app``)."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI

from service import dashboard
from service.api import errors, openapi
from service.api.cache import ResponseCache
from service.api.deps import AppState, AuthCache, known_query_only
from service.api.limits import BodyLimitMiddleware
from service.api.routes import (
    dashboard_data,
    devices,
    health,
    jobs,
    registries,
    stream,
    uploads,
    users,
)
from service.core.config import Settings
from service.core.db import Database
from service.core.private import secure_data_dir
from service.migrations import upgrade

API_PREFIX = "/api/v1"
DESCRIPTION = """Search lightweight deep-learning models as a service: submit NAS and
compression jobs, follow their progress, read trials, Pareto fronts and hypervolume, and
download artifacts. Every `/api/v1` route needs `Authorization: Bearer <token>`
(`lightsearch token create`); other users' jobs answer 404."""

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, *, migrate: bool = True,
               freeze_gc: bool = False) -> FastAPI:
    """The API. ``freeze_gc`` (the served app): once started, move every object the process
    holds out of the cyclic garbage collector's reach (``gc.freeze``). Its full passes
    otherwise walk all of FastAPI, pydantic and SQLAlchemy: 60-150 ms each, measured during
    request bursts, a pause every request in flight waits out. Objects made at start-up live
    as long as the process; those made later are collected as before."""
    settings = settings or Settings()
    settings.load_plugins()
    secure_data_dir(settings.data_dir, settings.artifact_dir, settings.url)
    db = Database.from_url(settings.url, pool_size=settings.db_pool_size,
                           busy_timeout_ms=settings.sqlite_busy_timeout_ms)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if freeze_gc:
            gc.collect()
            gc.freeze()
        yield
        db.dispose()

    if migrate:
        upgrade(db.engine)
    app = FastAPI(title="LightSearch", version="0.1.0", description=DESCRIPTION,
                  lifespan=lifespan)
    app.state.lightsearch = AppState(settings, db, AuthCache(settings.auth_cache_s),
                                     ResponseCache(settings.response_cache_entries))
    errors.install(app)
    api = APIRouter(prefix=API_PREFIX, dependencies=[Depends(known_query_only)])
    for module in (jobs, uploads, registries, users, stream, dashboard_data, devices):
        api.include_router(module.router)
    api.include_router(devices.tokens_router)
    app.include_router(api)
    app.include_router(health.router)
    dashboard.install(app)  # the browser dashboard at /
    openapi.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       streamed={f"{API_PREFIX}/uploads": settings.max_upload_bytes})
    return app


def __getattr__(name: str) -> FastAPI:
    """``service.main:app`` for ``uvicorn`` (built on first access, from the environment)."""
    if name == "app":
        return create_app(freeze_gc=True)
    raise AttributeError(name)
