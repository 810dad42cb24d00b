"""The served app moves its start-up objects out of the garbage collector's full passes."""

from __future__ import annotations

import gc

import pytest
from fastapi.testclient import TestClient

from service.main import create_app


@pytest.fixture
def unfrozen():
    gc.unfreeze()
    yield
    gc.unfreeze()  # the rest of the test session collects as usual


@pytest.mark.parametrize("freeze", [True, False])
def test_the_served_app_freezes_what_start_up_made(settings, unfrozen, freeze):
    app = create_app(settings, freeze_gc=freeze)
    assert gc.get_freeze_count() == 0
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        frozen = gc.get_freeze_count()
    if freeze:  # FastAPI, pydantic, SQLAlchemy...: far more than a request makes
        assert frozen > 100_000
    else:
        assert frozen == 0
