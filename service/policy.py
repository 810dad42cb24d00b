"""Service rules a job spec must meet beyond the search core's own validation.

The search core trusts its user with the local disk (a CSV profiler reads any path); the
service runs many users' jobs on its own machines, so file options must point inside the
server's tables folder. Strings with NUL characters and non-finite numbers are refused too:
PostgreSQL cannot store them, and a refusal at the door beats a 500 later.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from search.spec import JobSpec
from service.core.errors import InvalidInput

#: Option names that hold a file path in the registered components (a table name like
#: ``nb201`` without a separator or extension is not a path).
FILE_OPTIONS = frozenset({"path", "table", "file", "csv"})


def _walk(value: Any, where: str) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidInput(where, f"must be a finite number, got {value}")
    if isinstance(value, str) and "\x00" in value:
        raise InvalidInput(where, "must not contain NUL characters")
    if isinstance(value, dict):
        for k, v in value.items():
            if isinstance(k, str) and "\x00" in k:
                raise InvalidInput(where, "keys must not contain NUL characters")
            _walk(v, f"{where}.{k}" if where else str(k))
    elif isinstance(value, list | tuple):
        for i, v in enumerate(value):
            _walk(v, f"{where}[{i}]")


def _looks_like_path(value: str) -> bool:
    return "/" in value or "\\" in value or "." in value


def check_spec(spec: JobSpec, tables_dir: Path) -> JobSpec:
    """The spec with file options made absolute under ``tables_dir`` (the worker may run
    elsewhere); ``InvalidInput`` naming the field when it breaks a service rule."""
    data = spec.model_dump(mode="python")
    _walk(data, "")
    root = tables_dir.resolve()
    changed = False
    comps = [("space", data["space"]), ("agent", data["agent"]), ("evaluator", data["evaluator"])]
    comps += [(f"profilers[{i}]", p) for i, p in enumerate(data["profilers"])]
    for where, comp in comps:
        for key, value in comp["options"].items():
            if key not in FILE_OPTIONS or not isinstance(value, str) or \
                    not _looks_like_path(value):
                continue
            target = (root / value).resolve()
            if not target.is_relative_to(root):
                raise InvalidInput(f"{where}.options.{key}",
                                   "files must be inside the server's tables folder "
                                   f"({tables_dir}); give a path relative to it")
            comp["options"][key] = str(target)
            changed = True
    return JobSpec.model_validate(data) if changed else spec
