"""Path fields that plugins declare in their options models, and a walker that finds them.

A service runs many users' jobs on its own machines, so every file a job names must pass one
policy. Options models say which of their fields name files (``path_field``); ``walk_paths``
finds those fields at any depth of a document (nested models, lists of models, and dicts that
hold another component's options), so the edge checks them all without knowing the plugins.
Torch-free: the API validates jobs with it.
"""

from __future__ import annotations

import types
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, Field

PathKind = Literal["table", "dataset", "model", "output"]
PATH_KINDS: tuple[str, ...] = get_args(PathKind)
_KEY = "x-lightsearch-path"
_OPTIONS_KEY = "x-lightsearch-options-of"


def path_field(kind: PathKind, default: Any = None, *, builtin: tuple[str, ...] = (),
               **kwargs: Any) -> Any:
    """A pydantic ``Field`` that names a file or folder of ``kind``.

    ``table``, ``dataset`` and ``model`` are read; ``output`` is written. ``builtin`` values
    (e.g. ``"nb201"``) are names of shipped data, not paths.
    """
    extra = {_KEY: kind, **({"x-lightsearch-builtin": list(builtin)} if builtin else {})}
    return Field(default, json_schema_extra=extra, **kwargs)


def options_field(registry: str, name_field: str, **kwargs: Any) -> Any:
    """A ``dict`` field holding the options of a ``registry`` component named by the sibling
    field ``name_field`` (so its path fields are found too)."""
    return Field(json_schema_extra={_OPTIONS_KEY: [registry, name_field]}, **kwargs)


@dataclass(frozen=True)
class PathRef:
    """One path a document names: where (``field``, and the container and key that hold it,
    so a policy can rewrite it), what kind, and the value."""

    field: str
    kind: PathKind
    value: str
    container: dict[str, Any] | list[Any]
    key: str | int


#: ``(registry kind, component name) -> options model`` (None when unknown).
OptionsLookup = Callable[[str, str], type[BaseModel] | None]


def _models(annotation: Any) -> list[type[BaseModel]]:
    """Options models inside an annotation (``M``, ``M | None``, ``list[M]``...)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if get_origin(annotation) in (Union, types.UnionType, list, tuple):
        return [m for a in get_args(annotation) for m in _models(a)]
    return []


def _extra(field: Any) -> dict[str, Any]:
    extra = field.json_schema_extra
    return extra if isinstance(extra, dict) else {}


def walk_paths(model: type[BaseModel], data: Any, where: str,
               lookup: OptionsLookup | None = None) -> Iterator[PathRef]:
    """Every declared path in ``data`` (a dict shaped like ``model``), with its dotted field
    name under ``where``. Values that are not strings are skipped (validation reports them)."""
    if not isinstance(data, dict):
        return
    for name, field in model.model_fields.items():
        key = field.alias or name
        if key not in data or data[key] is None:
            continue
        value, here = data[key], f"{where}.{key}" if where else key
        extra = _extra(field)
        if _KEY in extra:
            builtin = extra.get("x-lightsearch-builtin", [])
            if isinstance(value, str) and value not in builtin:
                yield PathRef(here, extra[_KEY], value, data, key)
            continue
        if _OPTIONS_KEY in extra and lookup is not None:
            registry, name_field = extra[_OPTIONS_KEY]
            inner = lookup(registry, str(data.get(name_field)))
            if inner is not None:
                yield from walk_paths(inner, value, here, lookup)
            continue
        for sub in _models(field.annotation):
            if isinstance(value, list):
                for i, item in enumerate(value):
                    yield from walk_paths(sub, item, f"{here}[{i}]", lookup)
            else:
                yield from walk_paths(sub, value, here, lookup)
            break


def declared_paths(model: type[BaseModel], where: str = "") -> list[tuple[str, PathKind]]:
    """The path fields a model declares (dotted names, ``[]`` for list items): for docs."""
    out: list[tuple[str, PathKind]] = []
    for name, field in model.model_fields.items():
        here = f"{where}.{name}" if where else name
        extra = _extra(field)
        if _KEY in extra:
            out.append((here, extra[_KEY]))
        for sub in _models(field.annotation):
            is_list = get_origin(field.annotation) is list
            out += declared_paths(sub, f"{here}[]" if is_list else here)
    return out
