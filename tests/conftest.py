"""Shared fixtures: one Ray session for the whole test run (starting Ray costs ~5-8 s)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent

# Two threads on a busy core slow small models ~100x; tests never need more than one.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def ray_session():
    """A local Ray with the repository on the workers' path (tests define evaluators)."""
    import ray

    if not ray.is_initialized():
        path = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": path}})
    yield ray
