"""``Annotated`` dependencies shared by the routes: settings, sessions, the current user."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service import crud
from service.api.cache import ResponseCache
from service.core.config import Settings
from service.core.db import Database
from service.core.errors import Forbidden, NotAuthenticated
from service.core.security import Principal, hash_token


@dataclass
class AuthCache:
    """Verified tokens for a few seconds: most requests then skip the token query."""

    ttl_s: float
    _items: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Principal | None:
        with self._lock:
            hit = self._items.get(key)
        if hit is None or hit[1] < time.monotonic():
            return None
        return hit[0]

    def put(self, key: str, principal: Principal) -> None:
        if self.ttl_s <= 0:
            return
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key] = (principal, time.monotonic() + self.ttl_s)


@dataclass
class AppState:
    settings: Settings
    db: Database
    auth_cache: AuthCache
    responses: ResponseCache = field(default_factory=ResponseCache)


# Light dependencies are ``async``: FastAPI runs each sync dependency through the thread
# pool, and those hops cost more than the work here. Database calls stay in sync routes.
async def get_state(request: Request) -> AppState:
    return request.app.state.lightsearch


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


async def read_session(state: StateDep) -> AsyncIterator[Session]:
    """A session for reads; its connection opens lazily and closing only rolls back a
    read transaction, so neither needs a thread."""
    session = state.db.read_session()
    try:
        yield session
    finally:
        session.close()


async def write_session(state: StateDep) -> AsyncIterator[Session]:
    session = state.db.write_session()
    try:
        yield session
    finally:
        await run_in_threadpool(session.close)


SettingsDep = Annotated[Settings, Depends(get_settings)]
SessionDep = Annotated[Session, Depends(read_session)]
WriteSessionDep = Annotated[Session, Depends(write_session)]

bearer = HTTPBearer(auto_error=False, description="An API token: `lightsearch token create`.")


def _lookup(state: AppState, token: str) -> Principal | None:
    with state.db.reading() as session:
        return crud.principal_for_token(session, token)


async def current_user(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    token = credentials.credentials
    key = hash_token(token)
    principal = state.auth_cache.get(key)
    if principal is None:
        principal = await run_in_threadpool(_lookup, state, token)
        if principal is None:
            raise NotAuthenticated("invalid or revoked token")
        state.auth_cache.put(key, principal)
    return principal


CurrentUser = Annotated[Principal, Depends(current_user)]


async def admin_user(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise Forbidden("this route needs an admin token")
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]
