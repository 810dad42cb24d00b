"""Profilers of built models: exact counts on hand-computed nets, measured latency protocol and
cache, and the per-layer latency predictor on a small case."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from search.profilers import measured as M
from search.profilers.predictor import LatencyPredictor, fit_linear, fit_relative, kendall_tau
from search.profilers.torch_analytical import count_model
from search.registry import PROFILERS


# ---- analytical ---------------------------------------------------------------------------
def test_counts_of_a_conv_net_by_hand():
    model = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1, bias=False), nn.ReLU())
    c = count_model(model, (1, 28, 28))
    assert c["macs"] == 8 * 9 * 28 * 28
    assert c["params"] == 72
    # input (784 floats) + conv output + ReLU output alive at once (Sequential keeps both)
    assert c["peak_activation_bytes"] == 4 * (784 + 2 * 8 * 784)
    assert c["flops_M"] == c["macs"] / 1e6 and c["peak_act_kB"] == c["peak_activation_bytes"] / 1024


def test_counts_of_a_linear_layer_and_views():
    c = count_model(nn.Sequential(nn.Flatten(), nn.Linear(784, 10)), (1, 28, 28))
    assert c["macs"] == 784 * 10 + 10 and c["params"] == 7850
    assert c["peak_activation_bytes"] == 4 * (784 + 10)  # flatten is a view: no new memory


class _Residual(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 4, 1, bias=False)

    def forward(self, x):
        return x + self.conv(x)


def test_residual_keeps_its_input_alive():
    c = count_model(_Residual(), (4, 5, 5))
    assert c["macs"] == 4 * 4 * 25
    assert c["peak_activation_bytes"] == 3 * 4 * 100  # x, conv(x), x + conv(x)


def test_counts_agree_with_module_shapes_on_a_sampled_network(tiny_space):
    arch = tiny_space.sample(np.random.default_rng(0))
    model = tiny_space.build_model(arch, (1, 16, 16), 10).eval()
    expected = 0
    hooks = []

    def conv_hook(m, inp, out):
        nonlocal expected
        expected += out.numel() * m.in_channels // m.groups * m.kernel_size[0] ** 2
        expected += out.numel() if m.bias is not None else 0

    def linear_hook(m, inp, out):
        nonlocal expected
        expected += m.in_features * m.out_features + m.out_features

    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    with torch.no_grad():
        model(torch.randn(1, 1, 16, 16))
    for h in hooks:
        h.remove()
    assert count_model(model, (1, 16, 16))["macs"] == expected


def test_energy_estimate_grows_with_the_model():
    small = count_model(nn.Conv2d(3, 8, 3), (3, 16, 16))
    big = count_model(nn.Conv2d(3, 32, 3), (3, 16, 16))
    assert 0 < small["energy_mJ_est"] < big["energy_mJ_est"]


def test_torch_analytical_profiler_caches(tiny_space):
    prof = PROFILERS.create("torch-analytical", options={"input_shape": [1, 8, 8]})
    arch = tiny_space.sample(np.random.default_rng(0))
    out = prof.profile(arch, tiny_space)
    assert set(out) == {"flops_M", "params_M", "peak_act_kB", "energy_mJ_est"}
    assert prof.profile(arch, tiny_space) == out and len(prof._cache) == 1
    assert "ESTIMATE" in prof.describe()["units"]["energy_mJ_est"]


# ---- measured -------------------------------------------------------------------------------
def test_interleaved_rounds_visit_every_function_each_round():
    log = []
    fns = [lambda i=i: log.append(i) for i in range(3)]
    stats = M.measure_interleaved(fns, warmup=1, rounds=5, repeats=2)
    assert log[:3] == [0, 1, 2]  # warm-up
    assert log[3:] == [0, 0, 1, 1, 2, 2] * 5
    for st in stats:
        assert len(st.round_medians) == 5 and st.min_ms == min(st.round_medians)
        assert st.spread >= 0 and st.min_ms <= st.median_ms + 1e-12
        assert st.value("min") == st.fastest_ms <= st.value("min_of_medians") == st.min_ms
        assert st.value("median") == st.median_ms
    with pytest.raises(ValueError, match="statistic must be one of"):
        stats[0].value("mean")


@pytest.mark.parametrize("backend,group", [("torch", 4096), ("onnxruntime", 512)])
def test_predictor_times_a_whole_torch_profile_in_the_same_rounds(tmp_path, backend, group):
    """The machine's speed drifts for every model alike: layers and networks timed in
    different rounds would disagree by that drift, so a PyTorch profile shares its rounds
    (ONNX Runtime groups bound the sessions held at once)."""
    n = 600
    built: list[int] = []  # the order runners were built in
    calls_at_build: list[int] = []  # timed calls made before each runner was built
    calls = [0]

    def factory(i: int):
        def make():
            calls_at_build.append(calls[0])
            built.append(i)

            def run() -> None:
                calls[0] += 1
            return run
        return make

    pred = LatencyPredictor(backend, table=str(tmp_path / "t.json"), rounds=5, repeats=1,
                            warmup=0)
    values = pred._timed([factory(i) for i in range(n)])
    assert len(values) == n and built == list(range(n))
    first_group = min(n, group)
    # every runner of a group is built before any of that group's calls
    assert set(calls_at_build[:first_group]) == {0}
    if n > group:
        assert calls_at_build[group] == group * 5  # the first group ran its 5 rounds first


def test_wall_and_cpu_clocks_see_work_but_only_wall_sees_sleep():
    import time

    wall = M.measure(lambda: time.sleep(0.002), warmup=0, rounds=5, repeats=1, clock="wall")
    cpu = M.measure(lambda: time.sleep(0.002), warmup=0, rounds=5, repeats=1, clock="cpu")
    assert wall.min_ms >= 1.9 and cpu.min_ms < 1.0
    with pytest.raises(ValueError, match="clock must be one of"):
        M.measure(lambda: None, clock="gpu")


@pytest.mark.parametrize("name,prefix", [("torch-cpu", "torch"), ("onnxruntime", "ort")])
def test_measured_profilers(tiny_space, monkeypatch, name, prefix):
    prof = PROFILERS.create(name, options={"input_shape": [1, 8, 8], "repeats": 3})
    arch = tiny_space.sample(np.random.default_rng(0))
    calls = []
    real = M.measure
    monkeypatch.setattr(M, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    out = prof.profile(arch, tiny_space)
    assert set(out) == {f"{prefix}_latency_ms", f"{prefix}_latency_median_ms",
                        f"{prefix}_latency_spread"}
    assert 0 < out[f"{prefix}_latency_ms"] <= out[f"{prefix}_latency_median_ms"] * 1.5
    assert prof.profile(arch, tiny_space) == out and len(calls) == 1  # cached by architecture
    desc = prof.describe()
    assert desc["device"]["threads"] == 1 and desc["protocol"]["clock"] == "cpu"


def test_measured_profiler_options_are_checked():
    with pytest.raises(ValueError, match="rounds must be >= 5"):
        M.MeasuredLatencyProfiler(rounds=3)
    with pytest.raises(ValueError, match="input_shape"):
        M.MeasuredLatencyProfiler(input_shape=(28, 28))


# ---- predictor ------------------------------------------------------------------------------
def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]) == 1.0
    assert kendall_tau([1, 2, 3, 4], [4, 3, 2, 1]) == -1.0
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)


def test_fits_recover_lines():
    raw = np.array([1.0, 2.0, 3.0, 5.0])
    a, b = fit_linear(raw, 0.8 * raw + 0.1)
    assert a == pytest.approx(0.8) and b == pytest.approx(0.1)
    layers = np.array([3.0, 5.0, 4.0, 8.0])
    x = np.stack([raw, layers, np.ones(4)], axis=1)
    assert fit_relative(x, x @ [0.7, -0.05, 0.2]) == pytest.approx([0.7, -0.05, 0.2])
    with pytest.raises(ValueError, match="at least 3 architectures"):
        fit_relative(x[:2], np.ones(2))


@pytest.mark.parametrize("backend", ["torch", pytest.param("onnxruntime",
                                                             marks=pytest.mark.slow)])
def test_predictor_small_case_and_table_reuse(tiny_space, tmp_path, backend):
    """Stated error for this small case on a shared, loaded 2-core machine: median relative
    error on held-out architectures under 20% (PyTorch; ~5% seen at load 5) and under 35%
    (ONNX Runtime, whose 0.04-0.1 ms networks are dominated by per-call effects a table
    misses; ~3-10% median seen, single networks up to 90% off). Both backends: the cheapest
    and dearest networks of the space ordered right, and the table reused. The benchmark
    reports the figures on the default space."""
    rng = np.random.default_rng(123)
    base = tiny_space.sample(rng)
    small = {**base, **{f"b{i}_{k}": v for i in range(2) for k, v in (
        ("op", "sep"), ("kernel", 3), ("se", 0.0), ("layers", 0), ("width", 0.75))}}
    big = {**base, **{f"b{i}_{k}": v for i in range(2) for k, v in (
        ("op", "mbconv6"), ("kernel", 5), ("se", 0.25), ("layers", 1), ("width", 1.25))}}
    held_out = [small, big, *(tiny_space.sample(rng) for _ in range(6))]
    bound = 0.2 if backend == "torch" else 0.35
    # Up to three independent tries (fresh table, calibration and measurements): a load spike
    # from another process during the 2-second calibration skews a whole try; the predictor
    # is wrong only if every try misses.
    for attempt in range(3):
        table = tmp_path / f"lut{attempt}.json"
        opts = dict(input_shape=(1, 16, 16), table=str(table), calibration_archs=8, repeats=4)
        pred = LatencyPredictor(backend, **opts)
        predicted = [pred.profile(a, tiny_space)[pred.metric] for a in held_out]
        measured = pred.measure_archs(held_out, tiny_space)
        err = np.abs(np.asarray(predicted) / np.asarray(measured) - 1)
        if np.median(err) < bound:
            break
    assert np.median(err) < bound, (predicted, measured)
    assert predicted[1] > predicted[0] and measured[1] > measured[0]
    data = json.loads(table.read_text())
    assert data["units"] and len(data["calibrations"]) == 1
    # Profile once, search many times: a new predictor on the same table measures nothing.
    again = LatencyPredictor(backend, **opts)
    assert [again.profile(a, tiny_space)[again.metric] for a in held_out] == predicted
    assert again.measured_units == 0


def test_predictor_errors(tiny_space, tmp_path):
    from spaces.nb201 import NB201Space

    with pytest.raises(TypeError, match="has no layer_plan"):
        LatencyPredictor(table=str(tmp_path / "t.json")).profile(NB201Space().from_index(0),
                                                                  NB201Space())
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="table: .* is not a version-1 torch latency table"):
        LatencyPredictor(table=str(bad)).table()
    with pytest.raises(ValueError, match="calibration_archs must be 0"):
        LatencyPredictor(calibration_archs=2)


def test_predictor_registry_names():
    p = PROFILERS.create("predictor:onnxruntime", options={"calibration_archs": 0})
    assert p.metrics() == ["ort_latency_pred_ms"] and p.name == "predictor:onnxruntime"
    assert PROFILERS.create("predictor:torch-cpu").metrics() == ["torch_latency_pred_ms"]
