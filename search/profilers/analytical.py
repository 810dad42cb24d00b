"""FLOPs (multiply-adds) and parameters computed from the architecture, no table, no torch.

Counting rule (the one NAS-Bench-201 used, its ``get_model_infos``): a convolution costs
``k*k*C_in/groups * C_out * H_out * W_out`` multiply-adds (plus ``C_out*H_out*W_out`` with a
bias), a linear layer ``in*out (+ out)``; pooling, BN, ReLU and additions cost nothing.
Parameters count every weight, bias and BN affine pair (``2*C``); running statistics are
buffers, not parameters. With this rule the formula below reproduces the table's ``flops_M``
and ``params_M`` for all 15,625 NB201 cells (tests/test_profilers.py checks them all).

Counters are chosen by ``space.name``; a space built into a torch model can register a
counter that walks its modules (``register_counter``) without touching this profiler.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from search.base import Profiler
from spaces.base import Architecture, Space


@dataclass
class Cost:
    """Running totals of multiply-adds and parameters (plain counts, not millions)."""

    macs: int = 0
    params: int = 0

    def conv(self, c_in: int, c_out: int, k: int, h_out: int, w_out: int, *,
             groups: int = 1, bias: bool = False) -> None:
        self.macs += k * k * c_in // groups * c_out * h_out * w_out
        self.params += k * k * c_in // groups * c_out
        if bias:
            self.macs += c_out * h_out * w_out
            self.params += c_out

    def bn(self, c: int) -> None:
        self.params += 2 * c  # affine weight and bias

    def linear(self, n_in: int, n_out: int, *, bias: bool = True) -> None:
        self.macs += n_in * n_out + (n_out if bias else 0)
        self.params += n_in * n_out + (n_out if bias else 0)


def nb201_cost(arch: Architecture, *, channels: int = 16, cells_per_stage: int = 5,
               num_classes: int = 10, resolution: int = 32) -> Cost:
    """NAS-Bench-201's CIFAR network (``TinyNetwork``) with this cell.

    stem conv3x3 3->C + BN; three stages of N cells (C, 2C, 4C channels at R, R/2, R/4),
    separated by a residual reduction block (ReLU-conv3x3/2-BN, ReLU-conv3x3-BN, shortcut
    avgpool2 + conv1x1); BN-ReLU, global pooling, linear 4C->classes. In a cell each
    ``nor_conv_kxk`` edge is ReLU-conv-BN (no bias); pooling, skip and none add nothing.
    """
    from spaces.nb201 import EDGES, edge_name

    ops = [arch[edge_name(i, j)] for i, j in EDGES]
    cost = Cost()
    c, r = channels, resolution
    cost.conv(3, c, 3, r, r)
    cost.bn(c)
    for stage in range(3):
        if stage > 0:
            c_out, r = 2 * c, r // 2
            cost.conv(c, c_out, 3, r, r)
            cost.bn(c_out)
            cost.conv(c_out, c_out, 3, r, r)
            cost.bn(c_out)
            cost.conv(c, c_out, 1, r, r)  # shortcut after a 2x2 average pool
            c = c_out
        for _ in range(cells_per_stage):
            for op in ops:
                if op.startswith("nor_conv_"):
                    k = int(op.rsplit("x", 1)[1])
                    cost.conv(c, c, k, r, r)
                    cost.bn(c)
    cost.bn(c)
    cost.linear(c, num_classes)
    return cost


Counter = Callable[[Architecture, Space], Cost]
_COUNTERS: dict[str, Counter] = {"nb201": lambda arch, space: nb201_cost(arch)}


def register_counter(space_name: str, counter: Counter) -> None:
    """Teach the analytical profiler a new space (e.g. one that walks a torch model)."""
    if space_name in _COUNTERS:
        raise ValueError(f"a FLOPs counter for space {space_name!r} is already registered")
    _COUNTERS[space_name] = counter


class AnalyticalProfiler(Profiler):
    """``flops_M`` (multiply-adds, millions) and ``params_M`` (millions) from the architecture."""

    name = "analytical"

    def metrics(self) -> list[str]:
        return ["flops_M", "params_M"]

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        counter = _COUNTERS.get(space.name)
        if counter is None:
            raise ValueError(
                f"the analytical profiler cannot count space {space.name!r}; "
                f"supported spaces: {', '.join(sorted(_COUNTERS))}"
            )
        cost = counter(arch, space)
        return {"flops_M": cost.macs / 1e6, "params_M": cost.params / 1e6}

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "device": "none (analytical)",
            "device_description": "multiply-adds and parameters counted from the architecture",
            "metrics": self.metrics(),
            "units": {"flops_M": "million multiply-adds", "params_M": "million parameters"},
            "provenance": {"rule": "NAS-Bench-201 get_model_infos: conv and linear MACs, "
                                   "pooling/BN/ReLU free; BN affine counted as parameters"},
        }
