"""A small HTTP client for the CLI (and scripts): the same routes a curl session uses."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

DEFAULT_SERVER = "http://127.0.0.1:8000"


class ClientError(RuntimeError):
    """An error answer from the server, with its status and the server's message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}")
        self.status = status


def default_token(data_dir: str | None = None) -> str | None:
    """``LIGHTSEARCH_TOKEN``, else the admin token a local ``lightsearch serve`` wrote."""
    token = os.environ.get("LIGHTSEARCH_TOKEN")
    if token:
        return token.strip()
    folder = Path(data_dir or os.environ.get("LIGHTSEARCH_DATA_DIR") or ".lightsearch")
    path = folder / "admin-token"
    if path.is_file():
        return path.read_text().strip()
    return None


class Client:
    def __init__(self, server: str | None = None, token: str | None = None,
                 timeout: float = 30.0) -> None:
        self.server = (server or os.environ.get("LIGHTSEARCH_SERVER") or DEFAULT_SERVER)
        self.server = self.server.rstrip("/")
        self.token = token or default_token()
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        self.http = httpx.Client(base_url=self.server + "/api/v1", headers=headers,
                                 timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                body = response.json()
                message = body.get("detail") or response.text
            except ValueError:
                message = response.text
            raise ClientError(response.status_code, str(message))
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._check(self.http.request(method, path, **kwargs))
        return response.json() if response.content else None

    # ---- routes ----------------------------------------------------------------------------
    def submit(self, spec: dict[str, Any]) -> dict[str, Any]:
        return self.request("POST", "/jobs", json=spec)

    def jobs(self, *, status: str | None = None, offset: int = 0, limit: int = 50,
             all_users: bool = False) -> dict[str, Any]:
        params: dict[str, Any] = {"offset": offset, "limit": limit}
        if status:
            params["status"] = status
        if all_users:
            params["all"] = "true"
        return self.request("GET", "/jobs", params=params)

    def job(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}")

    def cancel(self, job_id: str) -> dict[str, Any]:
        return self.request("POST", f"/jobs/{job_id}/cancel")

    def set_note(self, job_id: str, note: str) -> dict[str, Any]:
        """The job's note, replaced (an empty string clears it)."""
        return self.request("PATCH", f"/jobs/{job_id}", json={"note": note})

    def delete(self, job_id: str) -> None:
        self.request("DELETE", f"/jobs/{job_id}")

    def trials(self, job_id: str, **params: Any) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}/trials", params=params)

    def all_trials(self, job_id: str, page: int = 1000) -> Iterator[dict[str, Any]]:
        offset = 0
        while True:
            body = self.trials(job_id, offset=offset, limit=page)
            yield from body["data"]
            offset += len(body["data"])
            if not body["data"] or offset >= body["count"]:
                return

    def pareto(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}/pareto")

    def hypervolume(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}/hypervolume")

    def artifacts(self, job_id: str) -> dict[str, Any]:
        return self.request("GET", f"/jobs/{job_id}/artifacts")

    def upload(self, kind: str, path: Path, name: str | None = None) -> dict[str, Any]:
        """Send a file as one of your uploads (streamed); returns its record."""
        with open(path, "rb") as fh:
            return self.request("POST", "/uploads", params={"kind": kind,
                                                            "name": name or path.name},
                                content=fh, headers={"content-type": "application/octet-stream"},
                                timeout=None)

    def uploads(self) -> dict[str, Any]:
        return self.request("GET", "/uploads")

    def delete_upload(self, upload_id: str) -> None:
        self.request("DELETE", f"/uploads/{upload_id}")

    def download(self, job_id: str, path: str, dest: Path) -> Path:
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self.http.stream("GET", f"/jobs/{job_id}/artifacts/{path}") as response:
            if response.status_code >= 400:
                response.read()
                self._check(response)
            with open(dest, "wb") as fh:
                for chunk in response.iter_bytes():
                    fh.write(chunk)
        return dest
