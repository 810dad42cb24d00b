"""The OpenAPI document, made to say what the routes do where FastAPI's generator cannot:

- a body that is not valid JSON (or not UTF-8) gets 400 from FastAPI itself, on every route
  that takes one, so those routes document 400;
- error answers are JSON (``ErrorBody``) even on routes whose success is another type (the
  event stream), while FastAPI files them under the route's own media type.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

ERROR_REF = "#/components/schemas/ErrorBody"
JSON = "application/json"
BAD_BODY = {"description": "The body is not valid JSON (UTF-8).",
            "content": {JSON: {"schema": {"$ref": ERROR_REF}}}}


def _fix(schema: dict[str, Any]) -> dict[str, Any]:
    for item in schema.get("paths", {}).values():
        for op in item.values():
            if not isinstance(op, dict) or "responses" not in op:
                continue
            responses = op["responses"]
            if "requestBody" in op:
                responses.setdefault("400", BAD_BODY)
            for code, response in responses.items():
                content = response.get("content") or {}
                if not code.startswith(("4", "5")) or JSON in content:
                    continue
                if any(v.get("schema", {}).get("$ref") == ERROR_REF for v in content.values()):
                    response["content"] = {JSON: {"schema": {"$ref": ERROR_REF}}}
    return schema


def _service_fields(schema: dict[str, Any]) -> None:
    """The request body is the search core's ``JobSpec``; the service refuses
    ``executor.address`` (its jobs run on its own Ray), so its document leaves it out."""
    executor = schema.get("components", {}).get("schemas", {}).get("ExecutorSpec", {})
    executor.get("properties", {}).pop("address", None)


def install(app: FastAPI) -> None:
    """Wrap ``app.openapi`` so the served document has the fixes above (built once)."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _fix(build())
            _service_fields(app.openapi_schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
