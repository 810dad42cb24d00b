"""A latency cost model for AMC's latency-constrained mode, fitted to measurements.

AMC limits each action so the target stays reachable, which needs the latency of a policy
before the model is built. We measure a few dozen pruned models with a profiler and fit
``latency ~ intercept + sum_op coef_op * MACs_op`` by non-negative least squares; the space
then prices any policy in microseconds. The fit's error is reported; the evaluator still
measures every candidate on the exported file, so the constraint is exact for the model and
approximate (within that error) for the device.
"""

from __future__ import annotations

import functools
import hashlib
import json
import tempfile
from collections.abc import Callable, Mapping

import numpy as np
import torch
from scipy.optimize import nnls
from torch import nn

from search.compression.apply import apply_policy
from search.compression.measure import measure_latency_ms
from search.compression.reference import cache_dir
from spaces.compression import CompressionSpace, LatencyModel

Measure = Callable[[nn.Module], float]


def profiler_measure(profiler: str, input_shape: tuple[int, ...]) -> Measure:
    """``cpu``: this machine, one thread; otherwise a registered profiler that can time a
    torch module (``measure_model``, as the measured-latency profilers do)."""
    if profiler == "cpu":
        return lambda model: measure_latency_ms(model, input_shape)
    from search.registry import PROFILERS

    prof = PROFILERS.create(profiler, options={"input_shape": list(input_shape)})
    if not hasattr(prof, "measure_model"):
        raise ValueError(f"target.profiler {profiler!r} cannot time a torch module; use 'cpu' "
                         "or a measured-latency profiler")
    return lambda model: float(prof.measure_model(model).min_ms)


def fit_latency_model(model: nn.Module, space: CompressionSpace, measure: Measure, *,
                      samples: int | None = None, seed: int = 0) -> tuple[LatencyModel, float]:
    """Fit the model on random channel-pruning policies; returns it and the mean relative
    error on the fitted samples."""
    ops = [o for o in space.table.ops if o.kind != "bn"]
    n = samples or 2 * len(ops) + 10
    rng = np.random.default_rng(seed)
    prune_names = [d.name for d in space.decisions if d.name.startswith("prune:")]
    rows, ys = [], []
    for i in range(n):
        arch = space.identity()
        hi = 0.0 if i == 0 else space.max_prune * (i % 5 + 1) / 5
        for name in prune_names:
            arch[name] = float(rng.uniform(0, hi))
        pruned = apply_policy(model, space, arch).model
        flops = space.op_costs(arch, "flops")
        rows.append([1.0] + [flops[o.name] for o in ops])
        ys.append(measure(pruned))
    x, y = np.array(rows), np.array(ys)
    scale = x.max(0).clip(min=1e-12)
    coef, _ = nnls(x / scale, y)
    coef = coef / scale
    pred = x @ coef
    err = float(np.mean(np.abs(pred - y) / np.maximum(y, 1e-9)))
    return LatencyModel(float(coef[0]), {o.name: float(c) for o, c in zip(ops, coef[1:],
                                                                        strict=True)}), err


def cached_latency_model(model: nn.Module, space: CompressionSpace, profiler: str,
                         input_shape: tuple[int, ...], *, seed: int = 0) -> LatencyModel:
    """The fitted model, cached on disk per (layer table, profiler) so a job resumes with the
    same cost model it started with."""
    key = json.dumps({"table": space.table.to_dict(), "profiler": profiler, "seed": seed,
                      "torch": torch.__version__, "multiple": space.channel_multiple},
                     sort_keys=True)
    path = cache_dir() / f"latency-{hashlib.sha1(key.encode()).hexdigest()[:16]}.json"
    if path.exists():
        data = json.loads(path.read_text())
        return LatencyModel(data["intercept"], data["coefs"], data.get("unit", "ms"))
    lm, err = fit_latency_model(model, space, profiler_measure(profiler, input_shape), seed=seed)
    path.write_text(json.dumps({"intercept": lm.intercept, "coefs": lm.coefs, "unit": lm.unit,
                                "fit_error": err}))
    return lm


@functools.cache
def ort_nchwc_block() -> int | None:
    """The channel block of ONNX Runtime's NCHWc convolutions on this CPU (16 with AVX-512,
    8 with AVX2), or None where ONNX Runtime does not use them.

    Why it matters: ONNX Runtime pads every convolution's output channels up to a multiple
    of the block, and a layer with fewer channels than one block also leaves the blocked
    layout (a reorder to NCHW after it). So a channel count that is not a multiple of the
    block runs as fast as the next multiple, no faster: a ``channel_multiple`` below the
    block buys FLOPs that do not turn into latency. Read from the graph ONNX Runtime
    optimizes: a 4-channel convolution's weights come back padded to one block.
    """
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.zeros((4, 4, 3, 3), np.float32), "w")
    io = [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1, 4, 8, 8]) for n in "xy"]
    graph = helper.make_graph([helper.make_node("Conv", ["x", "w"], ["y"], pads=[1] * 4)],
                              "probe", io[:1], io[1:], [weight])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    with tempfile.TemporaryDirectory() as tmp:
        opts.optimized_model_filepath = f"{tmp}/probe.onnx"
        ort.InferenceSession(model.SerializeToString(), opts,
                             providers=["CPUExecutionProvider"])
        optimized = onnx.load(opts.optimized_model_filepath).graph
    if not any(n.domain == "com.microsoft.nchwc" for n in optimized.node):
        return None
    return int(max(t.dims[0] for t in optimized.initializer if len(t.dims) == 4))


def padded_kept(kept: Mapping[int, int], block: int | None) -> dict[int, int]:
    """The channels ONNX Runtime computes for ``kept`` channels per group: each count rounded
    up to the NCHWc block (an unpruned group's too: compare with the reference's padded
    counts)."""
    if not block:
        return dict(kept)
    return {g: -(-int(k) // block) * block for g, k in kept.items()}
