"""FLOPs, parameters, peak activation memory and an energy estimate of any PyTorch model.

``count_model(model, input_shape)`` runs one batch-1 inference under a ``TorchDispatchMode``
hook that sees every ATen operation (so functional code, residual additions and SE gates are
counted, not only ``nn.Module`` leaves):

- ``macs``: multiply-adds of convolutions and matrix products, the rule of
  ``search.profilers.analytical`` (conv ``k*k*C_in/groups*C_out*H_out*W_out``, plus one add per
  output with a bias; linear ``in*out (+out)``); everything else is free here.
- ``params``: every parameter (BN affine included, running statistics excluded).
- ``peak_activation_bytes``: the most bytes of activations alive at once during the eager
  forward pass (the input included, weights excluded), tracked by storage as tensors are
  created and freed. It depends on the order PyTorch runs the graph, as on a device.
- ``energy_mj_est``: an **estimate** from a per-operation energy model, not a measurement.
  45 nm figures of Horowitz (ISSCC 2014), as used by Eyeriss and energy-aware NAS: a 32-bit
  float multiply-add 4.6 pJ (3.7 + 0.9), any other arithmetic element 0.9 pJ, each 32-bit
  activation read or written from on-chip SRAM 5 pJ (every op reads its inputs and writes its
  outputs once), each 32-bit weight fetched once from DRAM 640 pJ. Real devices differ by an
  order of magnitude; use it to rank candidates, not to quote joules.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from search.base import Profiler
from spaces.base import Architecture, Space

PJ_MAC = 4.6
PJ_ELEMENTWISE = 0.9
PJ_SRAM_WORD = 5.0
PJ_DRAM_WORD = 640.0
ENERGY_MODEL = {
    "source": "Horowitz, ISSCC 2014 (45 nm, 32-bit float)",
    "pJ_per_mac": PJ_MAC, "pJ_per_elementwise_op": PJ_ELEMENTWISE,
    "pJ_per_activation_word_sram": PJ_SRAM_WORD, "pJ_per_weight_word_dram": PJ_DRAM_WORD,
    "note": "estimate for ranking candidates; not a measurement",
}

_aten = torch.ops.aten
_MATMULS = {_aten.mm.default, _aten.addmm.default, _aten.bmm.default, _aten.linear.default}
_FREE = {_aten.detach.default, _aten.empty.memory_format, _aten.zeros.default}


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_flatten(tree)[0] if isinstance(t, torch.Tensor)]


def _storage_key(t: torch.Tensor) -> int:
    return t.untyped_storage().data_ptr()


class _Counter(TorchDispatchMode):
    def __init__(self, exclude: set[int]) -> None:
        super().__init__()
        self.exclude = exclude  # storages of parameters and buffers
        self.macs = 0
        self.elementwise = 0
        self.traffic_words = 0  # activation elements read + written
        self.live: dict[int, list[int]] = {}  # storage -> [bytes, live tensor objects]
        self.seen: set[int] = set()  # ids of tensors already tracked (alive)
        self.current = 0
        self.peak = 0

    def track(self, t: torch.Tensor) -> None:
        key = _storage_key(t)
        if key in self.exclude or key == 0 or id(t) in self.seen:
            return
        self.seen.add(id(t))
        entry = self.live.get(key)
        if entry is None:
            entry = self.live[key] = [t.untyped_storage().nbytes(), 0]
            self.current += entry[0]
            self.peak = max(self.peak, self.current)
        entry[1] += 1
        weakref.finalize(t, self._release, key, id(t))

    def _release(self, key: int, ident: int) -> None:
        self.seen.discard(ident)
        entry = self.live.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self.live[key]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # noqa: ANN001
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        inputs = _tensors((args, kwargs))
        outputs = _tensors(out)
        in_keys = {_storage_key(t) for t in inputs}
        fresh = [t for t in outputs if _storage_key(t) not in in_keys]  # views cost nothing
        if func is _aten.convolution.default:
            w, bias = args[1], args[2]
            y = outputs[0]
            self.macs += y.numel() * w.shape[1] * math.prod(w.shape[2:])
            if bias is not None:
                self.macs += y.numel()
        elif func in _MATMULS:
            a, b = (args[1], args[2]) if func is _aten.addmm.default else (args[0], args[1])
            y = outputs[0]
            inner = a.shape[-1]
            self.macs += y.numel() * inner
            if func is _aten.addmm.default or (func is _aten.linear.default and len(args) > 2
                                                and args[2] is not None):
                self.macs += y.numel()
        elif fresh and func not in _FREE:
            self.elementwise += sum(t.numel() for t in fresh)
        if fresh and func not in _FREE:
            self.traffic_words += sum(t.numel() for t in fresh)
            self.traffic_words += sum(t.numel() for t in inputs
                                      if _storage_key(t) not in self.exclude)
        for t in fresh:
            self.track(t)
        return out


def count_model(model: nn.Module, input_shape: Sequence[int], *, batch_size: int = 1
                ) -> dict[str, float]:
    """Cost of one inference of ``model`` on ``(batch_size, *input_shape)`` (see module doc).

    Returns plain counts (``macs``, ``params``, ``peak_activation_bytes``,
    ``energy_mj_est``) and the job-facing metrics ``flops_M``, ``params_M``,
    ``peak_act_kB`` and ``energy_mJ_est``.
    """
    model.eval()
    params = sum(p.numel() for p in model.parameters())
    exclude = {_storage_key(t) for t in [*model.parameters(), *model.buffers()]}
    x = torch.randn(batch_size, *input_shape, generator=torch.Generator().manual_seed(0))
    counter = _Counter(exclude)
    with torch.no_grad():
        with counter:
            counter.track(x)
            out = model(x)
        del out
    del x
    energy_pj = (counter.macs * PJ_MAC + counter.elementwise * PJ_ELEMENTWISE
                 + counter.traffic_words * PJ_SRAM_WORD + params * PJ_DRAM_WORD)
    return {
        "macs": float(counter.macs),
        "params": float(params),
        "peak_activation_bytes": float(counter.peak),
        "energy_mj_est": energy_pj * 1e-9,
        "flops_M": counter.macs / 1e6,
        "params_M": params / 1e6,
        "peak_act_kB": counter.peak / 1024,
        "energy_mJ_est": energy_pj * 1e-9,
    }


class TorchAnalyticalProfiler(Profiler):
    """``flops_M``, ``params_M``, ``peak_act_kB`` and ``energy_mJ_est`` of the built model."""

    name = "torch-analytical"
    METRICS = ("flops_M", "params_M", "peak_act_kB", "energy_mJ_est")

    def __init__(self, input_shape: Sequence[int] = (1, 28, 28), num_classes: int = 10) -> None:
        if len(input_shape) != 3 or min(input_shape) < 1:
            raise ValueError(f"input_shape must be (channels, height, width), got "
                             f"{list(input_shape)}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self._cache: dict[str, dict[str, float]] = {}

    def metrics(self) -> list[str]:
        return list(self.METRICS)

    def profile(self, arch: Architecture, space: Space) -> dict[str, float]:
        key = f"{space.name}:{space.key(arch)}"
        if key not in self._cache:
            build = getattr(space, "build_model", None)
            if build is None:
                raise TypeError(f"profiler {self.name!r} counts PyTorch models; space "
                                f"{space.name!r} does not build them")
            counts = count_model(build(arch, self.input_shape, self.num_classes),
                                 self.input_shape)
            self._cache[key] = {m: counts[m] for m in self.METRICS}
        return dict(self._cache[key])

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name, "device": "none (analytical)", "metrics": self.metrics(),
            "input_shape": list(self.input_shape),
            "units": {"flops_M": "million multiply-adds", "params_M": "million parameters",
                      "peak_act_kB": "KiB of live activations (eager, batch 1)",
                      "energy_mJ_est": "millijoules, ESTIMATE from a per-op model"},
            "energy_model": ENERGY_MODEL,
        }
