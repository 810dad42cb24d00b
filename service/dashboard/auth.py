"""Who is looking: a bearer token, or the dashboard's session cookie for what a browser
cannot send headers with.

``EventSource`` cannot set an ``Authorization`` header and a plain ``<a download>`` link
cannot either. We use a cookie rather than a ``?token=`` query parameter: query strings land
in access logs, browser history, proxy logs and ``Referer`` headers, a cookie does not. The
cookie holds the same API token the page keeps in ``localStorage`` (the token is the only
credential the service has), is ``HttpOnly`` (page scripts never read it back),
``SameSite=Strict`` (other sites' pages cannot make the browser send it, so no CSRF) and
scoped to ``/api/v1``; it is accepted only by read-only GET routes (the event stream and
artifact downloads), never by a route that changes anything.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Response
from fastapi.security import HTTPAuthorizationCredentials

from service.api.deps import StateDep, bearer, current_user
from service.core.security import Principal

COOKIE = "lightsearch_session"
COOKIE_PATH = "/api/v1"
COOKIE_MAX_AGE_S = 30 * 24 * 3600


async def viewer(
    state: StateDep, request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The bearer token's user, else the session cookie's; 401 when neither is valid."""
    if credentials is None:
        token = request.cookies.get(COOKIE)
        if token:
            credentials = HTTPAuthorizationCredentials(scheme="Bearer", credentials=token)
    return await current_user(state, credentials)


Viewer = Annotated[Principal, Depends(viewer)]


def set_session_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE, token, max_age=COOKIE_MAX_AGE_S, path=COOKIE_PATH, httponly=True,
        samesite="strict", secure=request.url.scheme == "https",
    )


def clear_session_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
