"""Name -> lazy factory registries, and the registry of search spaces.

A job names its parts (``agent: "mnas"``, ``space: "nb201"``, ``profiler: "lut:pixel3"``).
The registry knows each name's options model (pydantic, torch-free) and the import path of its
factory, so the API process validates a job without importing torch or starting Ray.
"""

from __future__ import annotations

import dataclasses
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from spaces.compression import CompressionSpaceOptions  # torch-free


class NoOptions(BaseModel):
    """A component without options."""

    model_config = ConfigDict(extra="forbid", strict=True)


class UnknownName(ValueError):
    """A job named a component the registry does not know; lists the valid names."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]) -> None:
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        super().__init__(f"unknown {kind} {name!r}; valid {kind}s: {', '.join(self.valid)}")

    def __str__(self) -> str:
        return self.args[0]


@dataclass(frozen=True)
class Entry:
    """One registered component: its factory path, options model and fixed arguments."""

    name: str
    target: str  # "package.module:attribute", imported on first use
    options: type[BaseModel] = NoOptions
    summary: str = ""
    fixed: Mapping[str, Any] = field(default_factory=dict)  # e.g. {"device": "pixel3"}
    #: evaluators and profilers: "module:function" declaring the metrics they produce
    #: (``search.metrics``); called with the parsed options and ``fixed``
    metrics: str = ""
    #: a family: ``name`` is a prefix (``remote:``) and the rest of a job's name (a device
    #: name, ``FAMILY_MEMBER``) is passed to the factory as this argument
    suffix: str | None = None

    def load(self) -> Any:
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def parse_options(self, options: Mapping[str, Any] | None) -> BaseModel:
        """Validate options; raises pydantic ``ValidationError`` naming the field."""
        return self.options.model_validate(dict(options or {}))

    def create(self, *args: Any, options: Mapping[str, Any] | None = None, **kwargs: Any) -> Any:
        parsed = self.parse_options(options)
        return self.load()(*args, **self.fixed, **parsed.model_dump(), **kwargs)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "summary": self.summary,
            "options_schema": self.options.model_json_schema(),
        }


#: what may follow a family's prefix: lower-case letters, digits, '-' and '_'
FAMILY_MEMBER = re.compile(r"[a-z0-9][a-z0-9_-]{0,63}")


class Registry:
    """A named set of entries of one kind (``agent``, ``space``, ``profiler``...)."""

    def __init__(self, kind: str, entries: Iterable[Entry] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, Entry] = {}
        for entry in entries:
            self.register(entry)

    def register(self, entry: Entry) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.get(name)
        except UnknownName:
            return False
        return True

    def get(self, name: str) -> Entry:
        entry = self._entries.get(name)
        if entry is not None and entry.suffix is None:
            return entry
        for family in self._entries.values():
            member = name[len(family.name):]
            if family.suffix and name.startswith(family.name) and FAMILY_MEMBER.fullmatch(
                    member):
                return dataclasses.replace(family, name=name, suffix=None,
                                           fixed={**family.fixed, family.suffix: member})
        valid = [n + (f"<{e.suffix}>" if e.suffix else "") for n, e in self._entries.items()]
        raise UnknownName(self.kind, name, valid)

    def create(self, name: str, *args: Any, options: Mapping[str, Any] | None = None,
               **kwargs: Any) -> Any:
        return self.get(name).create(*args, options=options, **kwargs)

    def entries(self) -> list[Entry]:
        """The registered entries in name order (a family once, by its prefix)."""
        return [self._entries[n] for n in self.names()]

    def describe(self) -> list[dict[str, Any]]:
        return [e.describe() for e in self.entries()]


def options_error_text(err: ValidationError) -> str:
    """One line per pydantic error: ``field: message``."""
    parts = []
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]) or "(root)"
        parts.append(f"{loc}: {e['msg']}")
    return "; ".join(parts)


class NB201Options(NoOptions):
    """The NAS-Bench-201 cell space has no options."""


class MnasBlockOptions(NoOptions):
    """One block of the MnasNet skeleton: base filters, base layers and stride."""

    filters: int = Field(..., ge=1, le=4096)
    layers: int = Field(..., ge=1, le=32)
    stride: Literal[1, 2] = 1


class MnasNetOptions(NoOptions):
    """The MnasNet factorized hierarchical space (spaces/mnasnet.py): per-block choices."""

    blocks: list[MnasBlockOptions] = Field(
        default_factory=lambda: [MnasBlockOptions(filters=f, layers=n, stride=s) for f, n, s in
                                 ((16, 1, 2), (24, 2, 2), (40, 2, 2), (80, 2, 1), (96, 1, 1))],
        min_length=1, max_length=16, description="The skeleton (base of each block).")
    ops: list[Literal["conv", "sep", "mbconv1", "mbconv3", "mbconv6", "fire", "shuffle",
                      "resnet", "bottleneck", "dense"]] = Field(
        default_factory=lambda: ["conv", "sep", "mbconv1", "mbconv3", "mbconv6", "fire",
                                 "shuffle"], min_length=1)
    kernels: list[Literal[1, 3, 5, 7]] = Field(default_factory=lambda: [3, 5], min_length=1)
    se_ratios: list[Annotated[float, Field(ge=0, le=1)]] = Field(
        default_factory=lambda: [0.0, 0.25], min_length=1)
    skips: list[Literal["none", "identity"]] = Field(
        default_factory=lambda: ["none", "identity"], min_length=1)
    layer_deltas: list[Annotated[int, Field(ge=-32, le=32)]] = Field(
        default_factory=lambda: [-1, 0, 1], min_length=1)
    widths: list[Annotated[float, Field(gt=0, le=16)]] = Field(
        default_factory=lambda: [0.75, 1.0, 1.25], min_length=1)
    stem: int = Field(16, ge=1, le=4096)
    head: int = Field(128, ge=1, le=8192)
    shuffle_groups: int = Field(2, ge=1, le=64)
    dropout: float = Field(0.0, ge=0.0, lt=1.0)


SPACES = Registry(
    "space",
    [
        Entry(
            "compression",
            # The factory resolves and trains the job's model, so it lives in search/.
            "search.compression.factory:make_space",
            CompressionSpaceOptions,
            "Per-layer compression of a trained model: channel prune ratio, sparsity, "
            "bit-width or weight sharing per layer, with an optional resource target",
        ),
        Entry(
            "nb201",
            "spaces.nb201:NB201Space",
            NB201Options,
            "NAS-Bench-201 cell: 6 edges x 5 operations (15,625 architectures), table look-ups",
        ),
        Entry(
            "mnasnet",
            "spaces.mnasnet:MnasNetSpace",
            MnasNetOptions,
            "MnasNet factorized hierarchical space: per block op, kernel, SE, skip, layers, "
            "width; builds PyTorch models",
        ),
    ],
)
