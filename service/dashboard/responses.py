"""JSON responses compressed when the browser accepts it (a 10,000-trial page stays small)."""

from __future__ import annotations

import gzip
from typing import Any

from fastapi import Request, Response

from service.core.db import json_dumps

MIN_GZIP_BYTES = 1024


def accepts_gzip(request: Request) -> bool:
    return "gzip" in request.headers.get("accept-encoding", "").lower()


def packed_json(request: Request, data: Any, *, level: int = 5) -> Response:
    """Strict JSON (NaN -> null), gzipped when worth it; private data is never cached."""
    body = json_dumps(data).encode()
    headers = {"Cache-Control": "no-store", "Vary": "Accept-Encoding"}
    if len(body) >= MIN_GZIP_BYTES and accepts_gzip(request):
        body = gzip.compress(body, compresslevel=level, mtime=0)
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type="application/json", headers=headers)
