"""Fixtures: a real service (API + worker threads, SQLite in a temporary folder) and Debian's
Chromium driven by Playwright. Screenshots go to ``test-output/dashboard/``."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from tests.dashboard.harness import Service, slow_evaluator, start_service

REPO = Path(__file__).resolve().parents[2]
SHOTS = REPO / "test-output" / "dashboard"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync",
                 # nothing but this machine resolves: a page that reaches for another host fails
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost"]


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """API and a worker that runs jobs (in-process, local executor)."""
    with slow_evaluator():
        svc = start_service(tmp_path_factory.mktemp("service"))
        yield svc
        svc.stop()


@pytest.fixture(scope="module")
def quiet_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """API only: tests write trials themselves through the SQL sink (``fill_job``)."""
    svc = start_service(tmp_path_factory.mktemp("quiet"), worker=False)
    yield svc
    svc.stop()


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM}: apt-get install -y chromium")
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


class Page:
    """A signed-in browser tab that cannot reach, and records, any request off this server."""

    def __init__(self, browser: Any, service: Service, token: str | None, *,
                 viewport: tuple[int, int] = (1440, 1000), touch: bool = False,
                 dark: bool = False) -> None:
        self.service = service
        self.context = browser.new_context(
            viewport={"width": viewport[0], "height": viewport[1]}, accept_downloads=True,
            has_touch=touch, is_mobile=touch, color_scheme="dark" if dark else "light",
            device_scale_factor=1)
        # Generous: a shared 2-core machine can be very busy.
        self.context.set_default_timeout(90_000)
        self.external: list[str] = []
        self.errors: list[str] = []
        host = urlparse(service.url).netloc

        # Recorded, not intercepted: Chromium cannot resolve any other host (CHROMIUM_ARGS), and
        # intercepting every request also intercepts download-attribute links, a path on which
        # Chromium and Playwright have lost downloads (microsoft/playwright#6573, #27575).
        def record(request: Any) -> None:
            if urlparse(request.url).netloc not in (host, ""):
                self.external.append(request.url)

        self.context.on("request", record)
        if token:
            self.context.add_init_script(
                f"localStorage.setItem('lightsearch.token', {json.dumps(token)});")
        self.page = self.context.new_page()
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))

    def goto(self, fragment: str = "#/jobs") -> Any:
        self.page.goto(f"{self.service.url}/{fragment}")
        return self.page

    def shot(self, name: str, *, full_page: bool = True) -> Path:
        SHOTS.mkdir(parents=True, exist_ok=True)
        path = SHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=full_page, animations="disabled")
        return path

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def open_page(browser: Any) -> Iterator[Any]:
    pages: list[Page] = []

    def make(service: Service, token: str | None, **options: Any) -> Page:
        page = Page(browser, service, token, **options)
        pages.append(page)
        return page

    yield make
    for p in pages:
        p.close()
        assert not p.external, f"the page tried to reach other hosts: {p.external}"
