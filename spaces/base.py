"""Search spaces: what an agent may propose, and how a proposal maps to decisions.

An architecture is a plain JSON-able ``dict`` from decision name to chosen value, so it can
travel to Ray workers, into SQL rows and through REST without custom encoders. Agents see a
space only as an ordered list of decisions (categorical or continuous) and talk to it through
``encode``/``decode``; the space owns validity.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

Architecture = dict[str, Any]


class InvalidArchitecture(ValueError):
    """An architecture that the space cannot build; the message names the decision at fault."""

    def __init__(self, message: str, *, decision: str | None = None) -> None:
        super().__init__(message)
        self.decision = decision


@dataclass(frozen=True)
class Categorical:
    """One choice among a fixed, ordered list of JSON-able values."""

    name: str
    choices: tuple[Any, ...]

    def __post_init__(self) -> None:
        if len(self.choices) < 1:
            raise ValueError(f"decision {self.name!r} needs at least one choice")

    @property
    def size(self) -> int:
        return len(self.choices)


@dataclass(frozen=True)
class Continuous:
    """A real value in ``[low, high]`` (compression ratios, for instance)."""

    name: str
    low: float
    high: float

    def __post_init__(self) -> None:
        if not self.low <= self.high:
            raise ValueError(
                f"low <= high must hold for {self.name!r}, got low={self.low}, high={self.high}"
            )


Decision = Categorical | Continuous


class Space(ABC):
    """Base class of every search and compression space.

    Subclasses list their decisions; the defaults below give sampling, validation of keys
    and values, encoding and JSON round trips. Override ``check`` to add constraints between
    decisions (it is called by ``validate`` after the per-decision checks).
    """

    name: ClassVar[str] = "space"

    @property
    @abstractmethod
    def decisions(self) -> Sequence[Decision]:
        """The ordered decisions an agent makes, one per step of an RNN controller."""

    # ---- optional hooks -------------------------------------------------------------
    def check(self, arch: Architecture) -> None:
        """Raise ``InvalidArchitecture`` for combinations the space cannot build."""

    def describe(self, arch: Architecture) -> str:
        """A short human-readable form (NB201 returns its canonical ``arch_str``)."""
        return self.key(arch)

    def size(self) -> int | None:
        """Number of distinct architectures, or None when a decision is continuous."""
        total = 1
        for d in self.decisions:
            if isinstance(d, Continuous):
                return None
            total *= d.size
        return total

    def to_config(self) -> dict[str, Any]:
        """Options that rebuild this space through the registry."""
        return {}

    # ---- provided ---------------------------------------------------------------------
    def sample(self, rng: np.random.Generator, max_tries: int = 1000) -> Architecture:
        """A uniformly random valid architecture (rejection sampling over ``check``)."""
        last: InvalidArchitecture | None = None
        for _ in range(max_tries):
            values: list[Any] = []
            for d in self.decisions:
                if isinstance(d, Categorical):
                    values.append(int(rng.integers(d.size)))
                else:
                    values.append(float(rng.uniform(d.low, d.high)))
            try:
                return self.decode(values)
            except InvalidArchitecture as err:
                last = err
        raise InvalidArchitecture(f"no valid architecture in {max_tries} samples: {last}")

    def validate(self, arch: Mapping[str, Any]) -> Architecture:
        """Return a clean copy of ``arch`` or raise ``InvalidArchitecture`` naming the field."""
        if not isinstance(arch, Mapping):
            raise InvalidArchitecture(
                f"an architecture is a mapping of decision -> value, got {type(arch).__name__}"
            )
        names = [d.name for d in self.decisions]
        unknown = sorted(set(arch) - set(names))
        if unknown:
            raise InvalidArchitecture(
                f"unknown decision(s) {unknown} for space {self.name!r}; valid: {names}",
                decision=unknown[0],
            )
        clean: Architecture = {}
        for d in self.decisions:
            if d.name not in arch:
                raise InvalidArchitecture(f"missing decision {d.name!r}", decision=d.name)
            value = arch[d.name]
            if isinstance(d, Categorical):
                if value not in d.choices:
                    raise InvalidArchitecture(
                        f"{d.name!r} = {value!r} is not a valid choice; valid: {list(d.choices)}",
                        decision=d.name,
                    )
                clean[d.name] = d.choices[d.choices.index(value)]
            else:
                try:
                    number = float(value)
                except (TypeError, ValueError):
                    raise InvalidArchitecture(
                        f"{d.name!r} must be a number, got {value!r}", decision=d.name
                    ) from None
                if not d.low <= number <= d.high:
                    raise InvalidArchitecture(
                        f"{d.name!r} = {number} is outside [{d.low}, {d.high}]", decision=d.name
                    )
                clean[d.name] = number
        self.check(clean)
        return clean

    def encode(self, arch: Mapping[str, Any]) -> list[int | float]:
        """Decision values as the agent sees them: choice indices, or floats."""
        arch = self.validate(arch)
        out: list[int | float] = []
        for d in self.decisions:
            if isinstance(d, Categorical):
                out.append(d.choices.index(arch[d.name]))
            else:
                out.append(float(arch[d.name]))
        return out

    def decode(self, values: Sequence[int | float]) -> Architecture:
        """Inverse of ``encode``; raises ``InvalidArchitecture`` for out-of-range values."""
        decisions = self.decisions
        if len(values) != len(decisions):
            raise InvalidArchitecture(
                f"expected {len(decisions)} decision values, got {len(values)}"
            )
        arch: Architecture = {}
        for d, v in zip(decisions, values, strict=True):
            if isinstance(d, Categorical):
                i = int(v)
                if i != v or not 0 <= i < d.size:
                    raise InvalidArchitecture(
                        f"{d.name!r}: index {v!r} outside 0..{d.size - 1}", decision=d.name
                    )
                arch[d.name] = d.choices[i]
            else:
                arch[d.name] = float(v)
        return self.validate(arch)

    def key(self, arch: Mapping[str, Any]) -> str:
        """Canonical string identity of an architecture: the cache and dedup key."""
        return json.dumps(dict(arch), sort_keys=True, separators=(",", ":"))

    def to_json(self, arch: Mapping[str, Any]) -> str:
        return json.dumps(self.validate(arch), sort_keys=True)

    def from_json(self, text: str) -> Architecture:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise InvalidArchitecture(f"not valid JSON: {err}") from None
        return self.validate(data)
