"""The page's files, served by the API process itself: no build step, no CDN.

Scripts are ES modules loaded through an import map that ``index.html`` gets at request time,
mapping each module to ``?v=<content hash>``; so every asset is cached for a year and a new
release is still picked up at once. The charts are the page's own (``js/plot.js``), so the job
page needs no chart library: all of it is about 60 kB gzipped and works on a cluster without
internet. Files are gzipped once, in memory.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import mimetypes
import threading
from dataclasses import dataclass
from pathlib import Path

from fastapi import APIRouter, Request, Response

from service.dashboard.responses import accepts_gzip

STATIC = Path(__file__).parent / "static"
IMMUTABLE = "public, max-age=31536000, immutable"
MAX_POINTS = 2000  # scatter points the job page asks for (job.js has the same number)
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
         ".html": "text/html; charset=utf-8", ".svg": "image/svg+xml"}


@dataclass(frozen=True)
class Asset:
    body: bytes
    gz: bytes
    media_type: str
    version: str


class Assets:
    """Static files by URL path, read and compressed once per process."""

    def __init__(self, root: Path = STATIC) -> None:
        self.root = root
        self._cache: dict[str, Asset] = {}
        self._lock = threading.Lock()

    def _source(self, url: str) -> Path | None:
        rel = url.removeprefix("/static/")
        if rel == url or "\x00" in rel:
            return None
        try:  # a name too long, or not encodable, for the file system: not a file here
            path = (self.root / rel).resolve()
            root = self.root.resolve()
            return path if path.is_relative_to(root) and path.is_file() else None
        except (OSError, ValueError):
            return None

    def get(self, url: str) -> Asset | None:
        hit = self._cache.get(url)
        if hit is not None:
            return hit
        with self._lock:
            hit = self._cache.get(url)
            if hit is not None:
                return hit
            path = self._source(url)
            if path is None:
                return None
            body = path.read_bytes()
            media = TYPES.get(path.suffix) or mimetypes.guess_type(path.name)[0] or \
                "application/octet-stream"
            asset = Asset(body, gzip.compress(body, compresslevel=9, mtime=0), media,
                          hashlib.sha256(body).hexdigest()[:12])
            self._cache[url] = asset
            return asset

    def modules(self) -> list[str]:
        return sorted(f"/static/{p.relative_to(self.root).as_posix()}"
                      for p in self.root.rglob("*.js"))

    def warm(self) -> None:
        """Compress everything now so the first visit does not wait for it."""
        for url in ["/static/app.css", *self.modules()]:
            self.get(url)

    def versioned(self, url: str) -> str:
        asset = self.get(url)
        return f"{url}?v={asset.version}" if asset else url

    def index(self) -> bytes:
        template = (self.root / "index.html").read_text()
        imports = {url: self.versioned(url) for url in self.modules()}
        # Fetch every module at once instead of one import level after another.
        preload = "\n".join(f'<link rel="modulepreload" href="{u}">' for u in imports.values())
        page = (template.replace("{{importmap}}", json.dumps({"imports": imports}, indent=1))
                .replace("{{modulepreload}}", preload)
                .replace("{{css}}", self.versioned("/static/app.css"))
                .replace("{{app}}", self.versioned("/static/js/app.js"))
                .replace("{{max_points}}", str(MAX_POINTS)))
        return page.encode()


ASSETS = Assets()
router = APIRouter(include_in_schema=False)


def _send(request: Request, asset: Asset, cache: str) -> Response:
    etag = f'"{asset.version}"'
    headers = {"Cache-Control": cache, "ETag": etag, "Vary": "Accept-Encoding"}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    body = asset.body
    if accepts_gzip(request):
        body = asset.gz
        headers["Content-Encoding"] = "gzip"
    return Response(body, media_type=asset.media_type, headers=headers)


@router.get("/")
def index(request: Request) -> Response:
    body = ASSETS.index()
    asset = Asset(body, gzip.compress(body, mtime=0), TYPES[".html"],
                  hashlib.sha256(body).hexdigest()[:12])
    return _send(request, asset, "no-cache")


@router.get("/static/{path:path}")
def static(path: str, request: Request) -> Response:
    asset = ASSETS.get(f"/static/{path}")
    if asset is None:
        return Response(json.dumps({"detail": f"no such file: {path[:200]}",
                                    "errors": []}), status_code=404,
                        media_type="application/json")
    versioned = "v" in request.query_params
    return _send(request, asset, IMMUTABLE if versioned else "no-cache")
