"""The NAS-Bench-201 cell space (Dong & Yang, ICLR 2020): 6 edges x 5 operations.

A cell has 4 nodes; node j takes the sum of one operation on each edge from every node i < j.
The canonical string writes node j's edges as ``|op~i|`` groups joined by ``+``. Indices follow
the benchmark's own (non-lexicographic) order, so they come from the shipped table.
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from spaces.base import Architecture, Categorical, InvalidArchitecture, Space

OPS: tuple[str, ...] = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
EDGES: tuple[tuple[int, int], ...] = ((0, 1), (0, 2), (1, 2), (0, 3), (1, 3), (2, 3))
DATA_DIR = Path(__file__).parent / "data" / "nb201"
NUM_ARCHS = 15625


def edge_name(src: int, dst: int) -> str:
    return f"edge_{src}_{dst}"


@lru_cache(maxsize=1)
def _index_tables() -> tuple[tuple[str, ...], dict[str, int]]:
    """arch_index -> arch_str and back, read from the shipped accuracy table."""
    with gzip.open(DATA_DIR / "nb201_cifar10.csv.gz", "rt") as fh:
        header = fh.readline().rstrip("\n").split(",")
        i_idx, i_str = header.index("arch_index"), header.index("arch_str")
        by_index: list[str] = [""] * NUM_ARCHS
        for line in fh:
            parts = line.split(",", max(i_idx, i_str) + 1)
            by_index[int(parts[i_idx])] = parts[i_str]
    return tuple(by_index), {s: i for i, s in enumerate(by_index)}


class NB201Space(Space):
    """NAS-Bench-201's cell: decisions ``edge_i_j`` in node order, each one of ``OPS``."""

    name = "nb201"

    def __init__(self) -> None:
        self._decisions = tuple(Categorical(edge_name(i, j), OPS) for i, j in EDGES)

    @property
    def decisions(self) -> Sequence[Categorical]:
        return self._decisions

    def describe(self, arch: Architecture) -> str:
        return self.to_arch_str(arch)

    def key(self, arch: Mapping[str, Any]) -> str:
        return self.to_arch_str(arch)

    # ---- canonical string and index ---------------------------------------------------
    def to_arch_str(self, arch: Mapping[str, Any]) -> str:
        groups = []
        for dst in (1, 2, 3):
            ops = [f"{arch[edge_name(src, dst)]}~{src}" for src in range(dst)]
            groups.append("|" + "|".join(ops) + "|")
        return "+".join(groups)

    def from_arch_str(self, arch_str: str) -> Architecture:
        groups = arch_str.strip().split("+")
        if len(groups) != 3:
            raise InvalidArchitecture(
                f"arch_str needs 3 node groups joined by '+', got {len(groups)}: {arch_str!r}"
            )
        arch: Architecture = {}
        for dst, group in enumerate(groups, start=1):
            items = [x for x in group.split("|") if x]
            if len(items) != dst:
                raise InvalidArchitecture(
                    f"node {dst} needs {dst} incoming edges, got {len(items)} in {group!r}"
                )
            for item in items:
                op, _, src = item.partition("~")
                if not src.isdigit() or int(src) >= dst:
                    raise InvalidArchitecture(f"bad edge {item!r} into node {dst}")
                arch[edge_name(int(src), dst)] = op
        return self.validate(arch)

    def to_index(self, arch: Mapping[str, Any]) -> int:
        return _index_tables()[1][self.to_arch_str(self.validate(arch))]

    def from_index(self, index: int) -> Architecture:
        if not 0 <= int(index) < NUM_ARCHS:
            raise InvalidArchitecture(f"arch_index must be in 0..{NUM_ARCHS - 1}, got {index}")
        return self.from_arch_str(_index_tables()[0][int(index)])
