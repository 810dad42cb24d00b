"""The browser dashboard: static files served by the API process (``install``), the reads
it needs (``queries``), its sign-in cookie (``auth``) and compressed answers (``responses``).
Routes live in ``service.api.routes.dashboard_data`` and ``service.api.routes.stream``."""

from __future__ import annotations

import threading

from fastapi import FastAPI


def install(app: FastAPI) -> None:
    """Serve the page at ``/`` and its files at ``/static``; compress them in the background."""
    from service.dashboard.assets import ASSETS, router

    app.include_router(router)
    threading.Thread(target=_warm, args=(ASSETS,), name="dashboard-warm", daemon=True).start()


def _warm(assets: object) -> None:
    """Compress the page's files, then import Optuna's importance evaluators (seconds on a
    busy machine), so neither waits for the first visitor."""
    assets.warm()  # type: ignore[attr-defined]
    from service.dashboard.analysis import warm

    warm()
