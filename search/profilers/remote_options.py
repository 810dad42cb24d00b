"""Options of the remote-device profilers (torch-free: the API validates jobs with them)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from search.model_options import _ModelInput


class RemoteOptions(_ModelInput):
    """Latency (and energy, where the device reads power) measured by a device agent.

    Threads and the execution provider are the device's own (its agent's config)."""

    batch_size: int = Field(1, ge=1, le=4096)
    warmup: int = Field(5, ge=0, le=1000)
    rounds: int = Field(5, ge=5, le=1000)
    repeats: int = Field(10, ge=1, le=10000)
    statistic: Literal["min_of_medians", "median", "min"] = Field(
        "min_of_medians", description="The reported latency: minimum over rounds of each "
                                      "round's median, the median call, or the fastest call.")
    timeout_s: float = Field(600.0, gt=0, le=86400,
                             description="Seconds to wait for one measurement once the loop "
                                         "needs it; past it the trial fails (not the job).")


class RemotePredictorOptions(RemoteOptions):
    """A per-layer table measured on a device + calibration, kept under the device name."""

    warmup: int = Field(3, ge=0, le=1000)
    rounds: int = Field(20, ge=5, le=1000)
    repeats: int = Field(5, ge=1, le=10000)
    statistic: Literal["min_of_medians", "median", "min"] = "min"
    calibration_archs: int = Field(30, ge=0, le=10000)
    seed: int = Field(0, ge=0)

    @model_validator(mode="after")
    def _calibration(self) -> RemotePredictorOptions:
        if 0 < self.calibration_archs < 3:
            raise ValueError("calibration_archs must be 0 or >= 3")
        return self
