"""``Annotated`` dependencies shared by the routes: settings, sessions, the current user."""

from __future__ import annotations

import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.api.cache import ResponseCache
from service.core.config import Settings
from service.core.db import Database
from service.core.errors import Forbidden, JobNotFound, NotAuthenticated
from service.core.security import Principal, hash_token


@dataclass
class AuthCache:
    """Verified tokens trusted for ``ttl_s`` seconds without a look-up (0, the default: off).

    The look-up is one indexed ``SELECT`` (``HotReads``), so the cache is rarely worth it. If
    it is on, a token revoked through this process's API is evicted at once; one revoked
    elsewhere (the CLI, another API process or replica) keeps working here for at most
    ``ttl_s`` seconds.
    """

    ttl_s: float
    _items: dict[str, tuple[Principal, float]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self, key: str) -> Principal | None:
        if self.ttl_s <= 0:
            return None
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

    def evict(self, key: str) -> None:
        """Forget one token (by its digest): it was just revoked."""
        with self._lock:
            self._items.pop(key, None)


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


async def current_user(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    key = hash_token(credentials.credentials)
    principal = state.auth_cache.get(key)
    if principal is None:
        # On the event loop: one indexed point read, cheaper than a thread-pool hop.
        principal = state.db.hot.principal(key)
        if principal is None:
            raise rejected(state, credentials.credentials)
        state.auth_cache.put(key, principal)
    return principal


def rejected(state: AppState, token: str) -> Exception:
    """Why a token that is no user's fails: 403 for a live device token (it may reach the
    device agent routes only), 401 otherwise."""
    from service.devices.access import DEVICE_TOKEN_PREFIX, is_device_token

    if token.startswith(DEVICE_TOKEN_PREFIX) and state.db.read(
            lambda session: is_device_token(session, token)):
        return Forbidden("a device token may only be used on the device agent routes")
    return NotAuthenticated("invalid or revoked token")


@dataclass(frozen=True)
class JobRead:
    """Who asks, and the job's current version: the response cache's key."""

    user: Principal
    job_id: str
    updated_at: Any
    n_trials: int

    @property
    def id(self) -> str:  # stands in for the job row where only id and n_trials are read
        return self.job_id


async def job_read(
    state: StateDep, job_id: str,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> JobRead:
    """The token check and the job's owner and version, in one indexed read when the token
    is not cached: 401 for a bad token first, then 404 for a job this user may not see."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    key = hash_token(credentials.credentials)
    principal = state.auth_cache.get(key)
    if principal is None:
        principal, job = state.db.hot.principal_and_job(key, job_id)
        if principal is None:
            raise rejected(state, credentials.credentials)
        state.auth_cache.put(key, principal)
    else:
        job = state.db.hot.job_version(job_id)
    if job is None or not (principal.is_admin or job.owner_id == principal.id):
        raise JobNotFound(job_id)
    return JobRead(principal, job.id, job.updated_at, job.n_trials)


async def token_digest(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str | None:
    """The SHA-256 digest of the bearer token this request came with (None without one)."""
    return hash_token(credentials.credentials) if credentials is not None else None


CurrentUser = Annotated[Principal, Depends(current_user)]
TokenDigest = Annotated[str | None, Depends(token_digest)]
JobReadDep = Annotated[JobRead, Depends(job_read)]


async def admin_user(user: CurrentUser) -> Principal:
    if not user.is_admin:
        raise Forbidden("this route needs an admin token")
    return user


AdminUser = Annotated[Principal, Depends(admin_user)]


def _query_names(dependant: Any) -> set[str]:
    names = {p.alias for p in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


async def known_query_only(request: Request) -> None:
    """Refuse query parameters the route does not take (a typo such as ``?limt=5`` would
    otherwise be ignored without a word): 422 naming the first one."""
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None or not request.query_params:
        return
    if "authorization" not in request.headers and not request.cookies:
        return  # anonymous: the route's 401 comes first
    known = getattr(route, "_known_query", None)
    if known is None:
        known = _query_names(dependant)
        route._known_query = known  # type: ignore[union-attr]
    unknown = [k for k in request.query_params if k not in known]
    if unknown:
        from service.core.errors import InvalidInput

        raise InvalidInput(f"query.{unknown[0][:100]}", "unknown query parameter; this route "
                           f"takes: {', '.join(sorted(known)) or 'none'}")
