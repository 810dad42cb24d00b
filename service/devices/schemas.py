"""Request and response bodies of the device routes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

DEVICE_NAME = r"^[a-z0-9][a-z0-9_-]{0,63}$"
AGENT_KEY = r"^[A-Za-z0-9_-]{8,64}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DeviceTokenCreate(_Strict):
    name: str = Field(..., pattern=DEVICE_NAME, description="The device name jobs use "
                      "('remote:<name>'); created if new.")
    users: list[str] | None = Field(None, max_length=1000, description="Users who may use "
                                    "the device (default: keep; a new device: every user).")
    label: str = Field("", max_length=100, pattern=r"^[^\x00]*$")


class DeviceTokenCreated(BaseModel):
    device: str
    token: str = Field(..., description="Shown only here; scoped to the agent routes.")
    users: list[str] | None


class DevicePublic(BaseModel):
    name: str
    status: str = Field(..., description="online: an agent sent a heartbeat lately.")
    agents_online: int
    last_heartbeat_at: datetime | None
    queue_length: int = Field(..., description="Measurements queued or being measured.")
    measurements_done: int
    description: dict[str, Any] = Field(..., description="The last agent's CPU, OS, runtime.")
    users: list[str] | None = Field(None, description="Admins only: who may use it.")


class DevicesPublic(BaseModel):
    data: list[DevicePublic]
    count: int


class AgentBody(_Strict):
    agent_key: str = Field(..., pattern=AGENT_KEY)


class AgentRegister(AgentBody):
    description: dict[str, Any] = Field(default_factory=dict)


class AgentRegistered(BaseModel):
    device: str
    agent_key: str
    lease_s: float
    heartbeat_s: float


class AgentHeartbeat(AgentBody):
    measurement_id: int | None = Field(None, ge=1, le=2**31 - 1)


class LeasedWork(BaseModel):
    id: int
    options: dict[str, Any]


class LeaseAnswer(BaseModel):
    measurement: LeasedWork | None


class ModelTiming(_Strict):
    min_ms: float = Field(..., ge=0)
    median_ms: float = Field(..., ge=0)
    spread: float = Field(..., ge=0)
    fastest_ms: float = Field(..., ge=0)
    energy_mj: float | None = Field(None, ge=0)
    energy_calls: int | None = Field(None, ge=1)


class AgentResult(AgentBody):
    models: list[ModelTiming] | None = Field(None, max_length=100_000)
    error: str | None = Field(None, max_length=4000)
    device: dict[str, Any] = Field(default_factory=dict)


class MeasurementPublic(BaseModel):
    id: int | None = Field(..., description="None: answered from the device's cache.")
    status: str
    result: dict[str, Any] | None = None
    error: str | None = None
