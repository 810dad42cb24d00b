"""Remote devices: admins create device tokens; users list the devices they may use and
queue ONNX models on them; device agents (device tokens only) register, lease work, send
heartbeats and results."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, status
from fastapi.responses import Response
from fastapi.security import HTTPAuthorizationCredentials

from service.api.deps import AdminUser, CurrentUser, StateDep, bearer
from service.api.routes.jobs import ERRORS
from service.core.errors import Conflict, InvalidInput, NotAuthenticated, NotFound
from service.devices import access, queue
from service.devices.schemas import (
    DEVICE_NAME,
    AgentBody,
    AgentHeartbeat,
    AgentRegister,
    AgentRegistered,
    AgentResult,
    DevicePublic,
    DevicesPublic,
    DeviceTokenCreate,
    DeviceTokenCreated,
    LeaseAnswer,
    LeasedWork,
    MeasurementPublic,
)
from service.models import Measurement
from service.schemas import ErrorBody

_RESPONSES: dict[int | str, dict[str, object]] = {
    401: ERRORS[401], 403: {"model": ErrorBody, "description": "Wrong kind of token."},
    422: ERRORS[422]}
router = APIRouter(prefix="/devices", tags=["devices"], responses=_RESPONSES)
# Outside /devices: any /devices/<x> is also GET /devices/{name}, so a token route there
# would answer 405 with an Allow header its document does not list.
tokens_router = APIRouter(prefix="/device-tokens", tags=["devices"], responses=_RESPONSES)
DeviceName = Annotated[str, Path(pattern=DEVICE_NAME, description="The device's name.")]
MeasurementId = Annotated[int, Path(ge=1, le=2**31 - 1)]


async def current_device(
    state: StateDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> access.DevicePrincipal:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise NotAuthenticated("missing bearer token (Authorization: Bearer <token>)")
    token = credentials.credentials
    return state.db.read(lambda session: access.device_for_token(session, token))


DeviceDep = Annotated[access.DevicePrincipal, Depends(current_device)]


# ---- admins ----------------------------------------------------------------------------------
@tokens_router.post("", status_code=status.HTTP_201_CREATED, response_model=DeviceTokenCreated)
def create_device_token(body: DeviceTokenCreate, _admin: AdminUser,
                        state: StateDep) -> DeviceTokenCreated:
    """Create a device token (and the device if new): it may only run a device agent."""
    if body.name == "agent":
        raise InvalidInput("name", "'agent' is reserved")
    with state.db.write_session() as session:
        device, token = access.create_device_token(session, body.name, users=body.users,
                                                   label=body.label)
        return DeviceTokenCreated(device=device.name, token=token, users=device.users)


# ---- users -----------------------------------------------------------------------------------
@router.get("", response_model=DevicesPublic)
def list_devices(user: CurrentUser, state: StateDep) -> DevicesPublic:
    """The devices you may use: status, last heartbeat, queue length, measurements done."""
    lease_s = state.settings.device_lease_s
    rows = state.db.read(lambda session: access.device_rows(session, user, lease_s))
    return DevicesPublic(data=[DevicePublic(**r) for r in rows], count=len(rows))


@router.get("/{name}", response_model=DevicePublic, responses={404: ERRORS[404]})
def get_device(name: DeviceName, user: CurrentUser, state: StateDep) -> DevicePublic:
    """One device you may use (404 for one you may not)."""
    lease_s = state.settings.device_lease_s
    rows = state.db.read(lambda session: access.device_rows(session, user, lease_s, name))
    if not rows:
        raise NotFound(f"device {name!r} not found")
    return DevicePublic(**rows[0])


@router.post("/{name}/measurements", response_model=MeasurementPublic,
             status_code=status.HTTP_202_ACCEPTED, responses={404: ERRORS[404]})
def queue_measurement(
    name: DeviceName, user: CurrentUser, state: StateDep,
    model: Annotated[bytes, Body(media_type="application/octet-stream",
                                 description="An ONNX model (one input, float32).")],
    input_shape: Annotated[str, Query(pattern=r"^\d{1,5},\d{1,5},\d{1,5}$",
                                      description="channels,height,width")] = "1,28,28",
    batch_size: Annotated[int, Query(ge=1, le=4096)] = 1,
    warmup: Annotated[int, Query(ge=0, le=1000)] = 5,
    rounds: Annotated[int, Query(ge=5, le=1000)] = 5,
    repeats: Annotated[int, Query(ge=1, le=10000)] = 10,
) -> MeasurementPublic:
    """Queue one ONNX model on a device (answered at once when it was measured before)."""
    if not model:
        raise InvalidInput("body", "an ONNX model is required")
    with state.db.reading() as session:
        device_id = access.visible_device(session, user, name).id
    options: dict[str, Any] = {"input_shape": [int(v) for v in input_shape.split(",")],
                               "batch_size": batch_size, "warmup": warmup, "rounds": rounds,
                               "repeats": repeats}
    mid, result = queue.submit(state.db, device_id, [model], options, owner_id=user.id)
    return MeasurementPublic(id=mid, status="done" if result else "queued", result=result)


@router.get("/{name}/measurements/{measurement_id}", response_model=MeasurementPublic,
            responses={404: ERRORS[404]})
def get_measurement(name: DeviceName, measurement_id: MeasurementId, user: CurrentUser,
                    state: StateDep) -> MeasurementPublic:
    """A measurement you queued (admins: any)."""
    with state.db.reading() as session:
        device = access.visible_device(session, user, name)
        row = session.get(Measurement, measurement_id)
        if row is None or row.device_id != device.id or not (
                user.is_admin or row.owner_id == user.id):
            raise NotFound(f"measurement {measurement_id} not found")
        return MeasurementPublic(id=row.id, status=row.status, result=row.result,
                                 error=row.error)


# ---- device agents -----------------------------------------------------------------------------
@router.post("/agent/register", response_model=AgentRegistered)
def register(body: AgentRegister, device: DeviceDep, state: StateDep) -> AgentRegistered:
    """An agent of the token's device starts (or restarts): its description is stored."""
    with state.db.write_session() as session:
        access.register_agent(session, device, body.agent_key, body.description)
    lease_s = state.settings.device_lease_s
    return AgentRegistered(device=device.name, agent_key=body.agent_key, lease_s=lease_s,
                           heartbeat_s=lease_s / 3)


def _agent(state: Any, device: access.DevicePrincipal, key: str) -> int:
    return state.db.read(lambda session: access.agent_id(session, device, key))


@router.post("/agent/lease", response_model=LeaseAnswer)
def lease(body: AgentBody, device: DeviceDep, state: StateDep) -> LeaseAnswer:
    """The next measurement of this device, leased to the agent (null when none waits)."""
    agent = _agent(state, device, body.agent_key)
    work = queue.lease(state.db, device.device_id, agent, state.settings.device_lease_s)
    return LeaseAnswer(measurement=None if work is None else LeasedWork(id=work.id,
                                                                         options=work.options))


@router.get("/agent/agent.pyz", responses={200: {"content": {"application/zip": {}}}})
def agent_bundle(device: DeviceDep) -> Response:
    """The device agent as one file, for devices that should not install the server's
    dependencies: ``pip install httpx numpy onnxruntime``, then ``python agent.pyz --server
    URL --token lsd_...``."""
    from service.device_agent.bundle import agent_digest, agent_zipapp

    return Response(agent_zipapp(), media_type="application/zip",
                    headers={"ETag": f'"{agent_digest()}"',
                             "Content-Disposition": 'attachment; filename="agent.pyz"'})


@router.get("/agent/measurements/{measurement_id}/models",
            responses={200: {"content": {"application/octet-stream": {}}}})
def models(measurement_id: MeasurementId, device: DeviceDep, state: StateDep,
           agent_key: Annotated[str, Query(pattern=r"^[A-Za-z0-9_-]{8,64}$")]) -> Response:
    """The ONNX models of a measurement this agent holds, concatenated (options.sizes)."""
    data = queue.models_of(state.db, measurement_id, _agent(state, device, agent_key))
    if data is None:
        raise NotFound(f"measurement {measurement_id} is not leased to this agent")
    return Response(bytes(data), media_type="application/octet-stream")


@router.post("/agent/heartbeat")
def heartbeat(body: AgentHeartbeat, device: DeviceDep, state: StateDep) -> dict[str, bool]:
    """The agent is alive; renews the lease of the measurement it names."""
    agent = _agent(state, device, body.agent_key)
    held = queue.heartbeat(state.db, device.device_id, agent, body.measurement_id,
                           state.settings.device_lease_s)
    return {"held": held}


@router.post("/agent/measurements/{measurement_id}/result",
             responses={409: {"model": ErrorBody, "description": "The lease was lost."}})
def result(measurement_id: MeasurementId, body: AgentResult, device: DeviceDep,
           state: StateDep) -> dict[str, bool]:
    """Report a held measurement's timings (or why it failed)."""
    if (body.models is None) == (body.error is None):
        raise InvalidInput("models", "send either models or error")
    agent = _agent(state, device, body.agent_key)
    payload = None if body.models is None else {
        "models": [m.model_dump() for m in body.models], "device": body.device}
    try:
        stored = queue.complete(state.db, device.device_id, agent, measurement_id, payload,
                                body.error)
    except ValueError as err:
        raise InvalidInput("models", str(err)) from None
    if not stored:
        raise Conflict(f"measurement {measurement_id} is no longer leased to this agent")
    return {"stored": True}
