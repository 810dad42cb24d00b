"""One place that turns errors into HTTP responses with the ``ErrorBody`` shape."""

from __future__ import annotations

import logging
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match, Route

from agents.registry import AGENTS
from search.registry import EVALUATORS, PROFILERS
from search.spec import field_path
from service.core.errors import InvalidInput, ServiceError
from service.schemas import ErrorBody, FieldError
from spaces.registry import SPACES, UnknownName

log = logging.getLogger(__name__)

_REGISTRIES = {r.kind: r for r in (SPACES, AGENTS, PROFILERS, EVALUATORS)}
_NESTED = re.compile(r"^(profilers\[\d+\]): (.*)$", re.S)
_UNKNOWN = re.compile(r"^unknown (\w+) ")


def _respond(status: int, detail: str, errors: list[FieldError] | None = None,
             headers: dict[str, str] | None = None) -> JSONResponse:
    body = ErrorBody(detail=detail, errors=errors or [])
    return JSONResponse(body.model_dump(mode="json"), status_code=status, headers=headers)


def field_errors(errors: list[dict[str, Any]]) -> list[FieldError]:
    """Pydantic/FastAPI errors as (field, message, valid names) users can act on."""
    out = []
    for e in errors:
        loc = list(e.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        field = field_path(loc)
        msg = str(e.get("msg", "invalid value")).removeprefix("Value error, ")
        if e.get("type") == "json_invalid":
            field, msg = "", f"the body is not valid JSON ({(e.get('ctx') or {}).get('error')})"
        valid = None
        error = (e.get("ctx") or {}).get("error")
        if isinstance(error, UnknownName):
            field, valid = f"{field}.name", list(error.valid)
        nested = _NESTED.match(msg)
        if nested:
            field, msg = f"{nested.group(1)}", nested.group(2)
            if _UNKNOWN.match(msg):
                field += ".name"
        kind = _UNKNOWN.match(msg)
        if valid is None and kind and kind.group(1) in _REGISTRIES:
            valid = _REGISTRIES[kind.group(1)].names()
        out.append(FieldError(field=field, message=msg, valid=valid))
    return out


def allowed_methods(req: Request) -> list[str]:
    """Every method some route serves at this path (Starlette's own 405 names only the first
    route that matched, and FastAPI has one route per method): the API's from its OpenAPI
    document, the page's from the top-level routes."""
    path = req.url.path
    methods: set[str] = set()
    for route in req.app.router.routes:
        if isinstance(route, Route) and route.matches(req.scope)[0] is not Match.NONE:
            methods |= set(route.methods or ()) - {"HEAD"}
    for pattern, verbs in _documented(req.app):
        if pattern.fullmatch(path):
            methods |= verbs
    return sorted(methods)


def _documented(app: FastAPI) -> list[tuple[re.Pattern[str], set[str]]]:
    index = getattr(app.state, "allow_index", None)
    if index is None:
        index = []
        for template, item in app.openapi().get("paths", {}).items():
            regex = re.sub(r"\\\{path\\\}$", ".+", re.escape(template))
            regex = re.sub(r"\\\{[^}]+\\\}", "[^/]+", regex)
            index.append((re.compile(regex), {m.upper() for m in item if m in _VERBS}))
        app.state.allow_index = index
    return index


_VERBS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def install(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def _service_error(_req: Request, err: ServiceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status_code == 401 else None
        errors = None
        if isinstance(err, InvalidInput):
            errors = [FieldError(field=err.field, message=err.field_message, valid=err.valid)]
        return _respond(err.status_code, err.message, errors, headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_req: Request, err: RequestValidationError) -> JSONResponse:
        errors = field_errors(list(err.errors()))
        first = errors[0] if errors else FieldError(field="", message="invalid request")
        detail = f"{first.field}: {first.message}" if first.field else first.message
        return _respond(422, detail, errors)

    @app.exception_handler(StarletteHTTPException)
    async def _http(req: Request, err: StarletteHTTPException) -> JSONResponse:
        headers = dict(getattr(err, "headers", None) or {})
        detail = str(err.detail)
        if err.status_code == 405:
            headers["Allow"] = ", ".join(allowed_methods(req))
        elif err.status_code == 400 and detail == "There was an error parsing the body":
            detail = "the body is not valid JSON (UTF-8)"
        return _respond(err.status_code, detail, headers=headers or None)

    @app.exception_handler(Exception)
    async def _unexpected(req: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", req.method, req.url.path)
        return _respond(500, "internal error; see the server log")
