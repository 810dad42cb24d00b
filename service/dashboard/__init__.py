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
    threading.Thread(target=ASSETS.warm, name="dashboard-assets", daemon=True).start()
