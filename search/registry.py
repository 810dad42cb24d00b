"""Profilers and evaluators a job can name (torch-free: factories are imported on first use).

Profilers are cheap and run before the evaluator (the loop can reject a candidate on a budget
before training it); evaluators are expensive and may run on Ray.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from search.compression.options import CompressEvaluatorOptions
from search.model_options import (
    MeasuredOptions,
    PredictorOptions,
    TorchAnalyticalOptions,
    TrainOptions,
)
from search.profilers.remote_options import RemoteOptions, RemotePredictorOptions
from spaces.paths import path_field
from spaces.registry import Entry, NoOptions, Registry

#: Device columns of the shipped NAS-Bench-201 tables: device -> metric columns it provides.
NB201_DEVICES: dict[str, tuple[str, ...]] = {
    "edgegpu": ("edgegpu_latency", "edgegpu_energy"),
    "raspi4": ("raspi4_latency",),
    "edgetpu": ("edgetpu_latency",),
    "pixel3": ("pixel3_latency",),
    "eyeriss": ("eyeriss_latency", "eyeriss_energy", "eyeriss_arithmetic_intensity"),
    "fpga": ("fpga_latency", "fpga_energy"),
    "gold_6226": ("gold_6226_latency",),
    "titanx_1": ("titanx_1_latency",),
    "titanx_32": ("titanx_32_latency",),
    "samsung_a50": ("samsung_a50_latency",),
    "pixel2": ("pixel2_latency",),
}

NB201_DEVICE_NAMES: dict[str, str] = {
    "edgegpu": "NVIDIA Jetson TX2 (HW-NAS-Bench, measured)",
    "raspi4": "Raspberry Pi 4 (HW-NAS-Bench, measured)",
    "edgetpu": "Google Edge TPU dev board (HW-NAS-Bench, measured)",
    "pixel3": "Google Pixel 3 (HW-NAS-Bench, measured)",
    "eyeriss": "Eyeriss ASIC (HW-NAS-Bench, simulated)",
    "fpga": "ZC706 FPGA (HW-NAS-Bench, simulated)",
    "gold_6226": "Intel Xeon Gold 6226 CPU (HELP, measured)",
    "titanx_1": "NVIDIA Titan X, batch 1 (HELP, measured)",
    "titanx_32": "NVIDIA Titan X, batch 32 (HELP, measured)",
    "samsung_a50": "Samsung Galaxy A50 (HELP, measured)",
    "pixel2": "Google Pixel 2 (HELP, measured)",
}


class CsvProfilerOptions(NoOptions):
    """Per-architecture device measurements from any CSV, no code change needed."""

    path: str = path_field("table", ..., min_length=1,
                           description="CSV file with one row per architecture.")
    key_column: str = Field(
        "arch_str", description="Column identifying the architecture (arch_str or arch_index)."
    )
    columns: list[str] | None = Field(
        None, description="Metric columns to report; default: every numeric column but the key."
    )
    prefix: str = Field("", description="Prefix added to each reported metric name.")


class AnalyticalOptions(NoOptions):
    """FLOPs and parameters computed from the architecture itself."""


class TabularOptions(NoOptions):
    """Evaluate by looking up per-architecture metrics in a table."""

    table: str = path_field(
        "table", "nb201", builtin=("nb201",), min_length=1,
        description="'nb201' for the shipped NAS-Bench-201 CIFAR-10 table, or a CSV path.",
    )
    key_column: str = Field("arch_str", description="Column identifying the architecture.")
    signal: str = Field(
        "val_acc", min_length=1,
        description="The column the agent is rewarded on (e.g. val_acc or val_acc_12ep).",
    )
    record: list[str] | Literal["all"] = Field(
        "all",
        description="Other columns recorded with each trial but never shown to the agent.",
    )


_M = "search.metrics:"  # each entry's metric declaration (imported on first use)


def _lut_entries() -> list[Entry]:
    return [
        Entry(
            f"lut:{device}",
            "search.profilers.lookup:NB201DeviceProfiler",
            NoOptions,
            f"{NB201_DEVICE_NAMES[device]}: {', '.join(cols)} from the NAS-Bench-201 tables",
            fixed={"device": device},
            metrics=f"{_M}nb201_device_metrics",
        )
        for device, cols in NB201_DEVICES.items()
    ]


PROFILERS = Registry(
    "profiler",
    [
        *_lut_entries(),
        Entry("csv", "search.profilers.lookup:CsvProfiler", CsvProfilerOptions,
              "Device measurements from a user's CSV (blank or -1 = not measured).",
              metrics=f"{_M}csv_profiler_metrics"),
        Entry("analytical", "search.profilers.analytical:AnalyticalProfiler", AnalyticalOptions,
              "FLOPs (multiply-adds) and parameters computed from the architecture.",
              metrics=f"{_M}analytical_metrics"),
        Entry("torch-analytical", "search.profilers.torch_analytical:TorchAnalyticalProfiler",
              TorchAnalyticalOptions,
              "FLOPs, params, peak activation memory and an energy ESTIMATE of the built "
              "PyTorch model.", metrics=f"{_M}torch_analytical_metrics"),
        Entry("torch-cpu", "search.profilers.measured:MeasuredLatencyProfiler", MeasuredOptions,
              "Latency measured here with PyTorch eager on the CPU (min over rounds, median, "
              "spread).", fixed={"backend": "torch"}, metrics=f"{_M}measured_metrics"),
        Entry("onnxruntime", "search.profilers.measured:MeasuredLatencyProfiler",
              MeasuredOptions, "Latency measured here with ONNX Runtime on the CPU.",
              fixed={"backend": "onnxruntime"}, metrics=f"{_M}measured_metrics"),
        Entry("predictor:torch-cpu", "search.profilers.predictor:LatencyPredictor",
              PredictorOptions, "PyTorch CPU latency predicted from a per-layer table measured "
              "once on this device + linear calibration.", fixed={"backend": "torch"},
              metrics=f"{_M}predictor_metrics"),
        Entry("predictor:onnxruntime", "search.profilers.predictor:LatencyPredictor",
              PredictorOptions, "ONNX Runtime CPU latency predicted from a per-layer table "
              "measured once on this device + linear calibration.",
              fixed={"backend": "onnxruntime"}, metrics=f"{_M}predictor_metrics"),
        Entry("remote:", "search.profilers.remote:RemoteLatencyProfiler", RemoteOptions,
              "Latency (and energy) measured with ONNX Runtime by the agents of a registered "
              "device ('remote:<device>'), by lease.", suffix="device",
              metrics=f"{_M}remote_metrics"),
        Entry("predictor:remote:", "search.profilers.remote_predictor:RemotePredictor",
              RemotePredictorOptions, "ONNX Runtime latency predicted from a per-layer table "
              "and calibration measured on a registered device ('predictor:remote:<device>').",
              suffix="device", metrics=f"{_M}remote_predictor_metrics"),
    ],
)

EVALUATORS = Registry(
    "evaluator",
    [
        Entry("tabular", "search.evaluators.tabular:TabularEvaluator", TabularOptions,
              "Per-architecture metrics looked up in a table (NAS-Bench-201 or a CSV).",
              metrics=f"{_M}tabular_metrics"),
        Entry("train", "search.evaluators.train:TrainingEvaluator", TrainOptions,
              "Proxy-train the built PyTorch model (seeded); val_acc to the agent, test_acc "
              "recorded; optional ASHA early stopping.", metrics=f"{_M}train_metrics"),
        Entry("compress", "search.evaluators.compress:CompressionEvaluator",
              CompressEvaluatorOptions,
              "Apply a compression policy for real (prune, quantize, share), recalibrate BN, "
              "score accuracy, FLOPs, size and latency of the exported model.",
              metrics=f"{_M}compress_metrics"),
    ],
)
