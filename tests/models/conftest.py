"""Small spaces and data shared by the real-model tests (8x8 and 16x16 inputs, tiny nets)."""

from __future__ import annotations

import pytest

from spaces.mnasnet import MnasNetSpace

TINY_BLOCKS = [(8, 1, 1), (16, 1, 2)]


@pytest.fixture
def tiny_space() -> MnasNetSpace:
    """Two blocks, 8 and 16 base filters: builds and trains in well under a second."""
    return MnasNetSpace(blocks=TINY_BLOCKS, stem=8, head=32)


def tiny_space_options() -> dict:
    return {"blocks": [{"filters": f, "layers": n, "stride": s} for f, n, s in TINY_BLOCKS],
            "stem": 8, "head": 32}
