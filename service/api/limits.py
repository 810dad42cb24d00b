"""Refuse oversized request bodies (413) before any route or JSON parser sees them."""

from __future__ import annotations

import json
from typing import Any

Scope = dict[str, Any]


class BodyLimitMiddleware:
    """Pure ASGI middleware: checks Content-Length, then counts streamed (chunked) bytes.

    The body is buffered up to the limit and replayed to the app, so a client that lies about
    its length or streams without one is cut off at ``max_bytes`` too.
    """

    def __init__(self, app: Any, max_bytes: int,
                 streamed: dict[str, int] | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        #: path -> limit of routes that stream their body themselves (uploads): checked
        #: against Content-Length here, counted by the route, never buffered.
        self.streamed = streamed or {}

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        length = headers.get(b"content-length")
        streamed = self.streamed.get(scope.get("path", ""))
        if streamed is not None:
            if length is not None and (not length.isdigit() or int(length) > streamed):
                await _error(send, 413 if length.isdigit() else 400,
                             f"upload larger than {streamed} bytes" if length.isdigit()
                             else "invalid Content-Length header")
                return
            await self.app(scope, receive, send)
            return
        if length is not None:
            try:
                declared = int(length)
            except ValueError:
                await _error(send, 400, "invalid Content-Length header")
                return
            if declared > self.max_bytes:
                await _error(send, 413, self._message())
                return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body = message.get("body", b"")
            size += len(body)
            if size > self.max_bytes:
                await _error(send, 413, self._message())
                return
            chunks.append(body)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        sent = False

        async def replay() -> dict[str, Any]:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _message(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"


async def _error(send: Any, status: int, detail: str) -> None:
    payload = json.dumps({"detail": detail, "errors": []}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": payload})
