"""Every path a job spec names, found through the plugins' declared path fields.

``spec_paths`` walks a job document (``JobSpec.model_dump()``): the top-level ``model`` of a
compression job and the options of each named component (space, agent, evaluator,
profilers), at any depth. The service checks each one at submit (``service.policy``), and
``lightsearch search`` can run the same walk. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from agents.registry import AGENTS
from search.registry import EVALUATORS, PROFILERS
from search.spec import SpecError
from spaces.compression import ModelRef
from spaces.paths import PathRef, walk_paths
from spaces.registry import SPACES, Registry

REGISTRIES: dict[str, Registry] = {r.kind: r for r in (SPACES, AGENTS, EVALUATORS, PROFILERS)}


def options_model(kind: str, name: str) -> type[BaseModel] | None:
    """The options model of component ``name`` in registry ``kind`` (None if unknown)."""
    registry = REGISTRIES.get(kind)
    if registry is None or name not in registry:
        return None
    return registry.get(name).options


def _component(kind: str, comp: Any, where: str) -> Iterator[PathRef]:
    if not isinstance(comp, dict):
        return
    model = options_model(kind, str(comp.get("name")))
    if model is not None:
        yield from walk_paths(model, comp.get("options"), f"{where}.options", options_model)


def spec_paths(data: dict[str, Any]) -> Iterator[PathRef]:
    """Each declared path of a job document, in document order (top-level ``model`` first)."""
    if isinstance(data.get("model"), dict):
        yield from walk_paths(ModelRef, data["model"], "model", options_model)
    for kind, key in (("space", "space"), ("agent", "agent"), ("evaluator", "evaluator")):
        yield from _component(kind, data.get(key), key)
    for i, comp in enumerate(data.get("profilers") or []):
        yield from _component("profiler", comp, f"profilers[{i}]")


#: ``(path reference) -> the value to store``; raises ``SpecError`` naming ``ref.field``.
Resolver = Callable[[PathRef], str]


def rewrite_paths(data: dict[str, Any], resolve: Resolver) -> bool:
    """Pass every declared path of a job document through ``resolve`` and store what it
    returns in place (the first refusal propagates). True if anything changed."""
    changed = False
    for ref in list(spec_paths(data)):
        value = resolve(ref)
        if value != ref.value:
            ref.container[ref.key] = value  # type: ignore[index]
            changed = True
    return changed


def local_resolver(ref: PathRef) -> str:
    """``lightsearch search`` (the user's own machine): ``~`` expanded, relative paths made
    absolute, so the results file says which files were read."""
    if "\x00" in ref.value:
        raise SpecError(ref.field, "must not contain NUL characters")
    return str(Path(ref.value).expanduser().absolute())
