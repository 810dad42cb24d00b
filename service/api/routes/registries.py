"""The components a job can name, with the JSON schema of each one's options."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter

from agents.registry import AGENTS
from search.metrics import describe_entry
from search.registry import EVALUATORS, PROFILERS
from service.api.deps import CurrentUser
from service.api.routes.jobs import ERRORS
from service.schemas import RegistriesPublic, RegistryEntry, RegistryPublic
from spaces.registry import SPACES, Registry

router = APIRouter(prefix="/registries", tags=["registries"],
                   responses={401: ERRORS[401], 422: ERRORS[422]})
KINDS: dict[str, Registry] = {"spaces": SPACES, "agents": AGENTS, "profilers": PROFILERS,
                              "evaluators": EVALUATORS}


def _entries(registry: Registry) -> list[RegistryEntry]:
    return [RegistryEntry(**e.describe(), metrics=describe_entry(e))
            for e in registry.entries()]


@router.get("", response_model=RegistriesPublic)
async def registries(_user: CurrentUser) -> RegistriesPublic:
    """Every registered space, agent, profiler and evaluator."""
    return RegistriesPublic(**{k: _entries(r) for k, r in KINDS.items()})


@router.get("/{kind}", response_model=RegistryPublic)
async def registry(kind: Literal["spaces", "agents", "profilers", "evaluators"],
             _user: CurrentUser) -> RegistryPublic:
    """One registry."""
    return RegistryPublic(kind=kind, data=_entries(KINDS[kind]))
