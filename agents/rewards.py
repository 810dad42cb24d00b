"""MnasNet's reward, the one formula: the search loop records it (``search.objectives``
re-exports it) and the controller's Pareto-mode planning scores predicted points with it."""

from __future__ import annotations

import math
from typing import Literal


def mnas_reward(
    accuracy: float,
    latency: float,
    target: float,
    *,
    w: float = -0.07,
    mode: Literal["soft", "hard"] = "soft",
) -> float:
    """MnasNet's reward ``ACC * (LAT / T) ** w`` (Tan et al., CVPR 2019, eq. 2).

    The exponent is ``alpha`` when ``LAT <= T`` and ``beta`` above. ``soft``:
    ``alpha = beta = w`` (paper: -0.07, so a model 2x slower must be about 5% more accurate
    to earn the same reward). ``hard``: ``alpha = 0, beta = -1`` (``w`` is not used): no
    bonus below the target, a steep penalty above it.
    """
    for name, value in (("accuracy", accuracy), ("latency", latency), ("target", target),
                        ("w", w)):
        if not math.isfinite(value):
            raise ValueError(f"{name} must be a finite number, got {value!r}")
    if latency <= 0:
        raise ValueError(f"latency must be > 0, got {latency}")
    if target <= 0:
        raise ValueError(f"target must be > 0, got {target}")
    if mode == "soft":
        exponent = w
    elif mode == "hard":
        exponent = 0.0 if latency <= target else -1.0
    else:
        raise ValueError(f"mode must be 'soft' or 'hard', got {mode!r}")
    return float(accuracy * (latency / target) ** exponent)
