"""The agent's loop: register, lease a measurement, keep the lease alive, report.

One measurement at a time. While it measures, a thread renews the lease every
``heartbeat_s`` (the service says how often at registration); if the agent dies, the lease
runs out and the measurement goes back to the queue for another agent of the device. A
result the service refuses (409: the lease was lost meanwhile) is dropped.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import threading
import traceback
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from service.device_agent.measure import (
    MeasureConfig,
    PowerReading,
    describe_device,
    measure_models,
    split_models,
)

log = logging.getLogger("lightsearch.device_agent")
API = "/api/v1/devices/agent"


class DeviceAgent:
    """Serves one device name with one device token until ``stop`` is set."""

    def __init__(self, server: str, token: str, config: MeasureConfig, *,
                 poll_s: float = 0.2, agent_key: str | None = None) -> None:
        self.http = httpx.Client(base_url=server.rstrip("/"), timeout=60.0,
                                 headers={"Authorization": f"Bearer {token}"})
        self.config = config
        self.poll_s = poll_s
        self.agent_key = agent_key or uuid.uuid4().hex
        self.description = describe_device(config)
        self.stop = threading.Event()
        self.done = 0
        self.device = ""
        self.heartbeat_s = 5.0

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(API + path, json={"agent_key": self.agent_key, **body})

    def register(self) -> dict[str, Any]:
        resp = self._post("/register", {"description": self.description})
        resp.raise_for_status()
        info = resp.json()
        self.device, self.heartbeat_s = info["device"], float(info["heartbeat_s"])
        log.info("agent %s serves device %r (lease %.0f s)", self.agent_key[:8], self.device,
                 info["lease_s"])
        return info

    def run(self, max_measurements: int | None = None) -> None:
        """Serve until stopped; a server that is down is waited for, a token the server
        refuses (401/403: revoked, or not a device token) ends the agent."""
        registered = False
        while not self.stop.is_set():
            if max_measurements is not None and self.done >= max_measurements:
                return
            try:
                if not registered:
                    self.register()
                    registered = True
                if not self.step():
                    self.stop.wait(self.poll_s)
            except httpx.HTTPStatusError as err:
                if err.response.status_code in (401, 403):
                    log.error("the server refuses this token: %s", err.response.text[:300])
                    raise
                registered = err.response.status_code != 404  # 404: registration lost
                log.warning("server error (%s); retrying", err)
                self.stop.wait(max(self.poll_s, 1.0))
            except httpx.HTTPError as err:
                log.warning("service unreachable (%s); retrying", err)
                self.stop.wait(max(self.poll_s, 1.0))

    def step(self) -> bool:
        """Lease and run one measurement; False when the queue was empty."""
        resp = self._post("/lease", {})
        resp.raise_for_status()
        work = resp.json().get("measurement")
        if work is None:
            return False
        mid = int(work["id"])
        beat = threading.Event()
        thread = threading.Thread(target=self._heartbeat, args=(mid, beat), daemon=True)
        thread.start()
        try:
            body = self._measure(mid, work["options"])
        finally:
            beat.set()
            thread.join()
        resp = self._post(f"/measurements/{mid}/result", body)
        if resp.status_code == 409:
            log.warning("measurement %d: lease lost before the result; dropped", mid)
        else:
            resp.raise_for_status()
            self.done += 1
        return True

    def _measure(self, mid: int, options: dict[str, Any]) -> dict[str, Any]:
        try:
            resp = self.http.get(f"{API}/measurements/{mid}/models",
                                 params={"agent_key": self.agent_key})
            resp.raise_for_status()
            models = split_models(resp.content, options["sizes"])
            rows = measure_models(models, options, self.config)
            return {"models": rows, "device": self.description}
        except httpx.HTTPError:
            raise
        except Exception as err:  # noqa: BLE001 - reported as the measurement's failure
            text = "".join(traceback.format_exception_only(type(err), err)).strip()
            return {"error": text[-2000:], "device": self.description}

    def _heartbeat(self, mid: int, done: threading.Event) -> None:
        while not done.wait(self.heartbeat_s):
            try:
                self._post("/heartbeat", {"measurement_id": mid})
            except httpx.HTTPError as err:
                log.warning("heartbeat failed: %s", err)

    def close(self) -> None:
        self.http.close()


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("LIGHTSEARCH_SERVER",
                                                      "http://127.0.0.1:8000"))
    p.add_argument("--token", default=os.environ.get("LIGHTSEARCH_DEVICE_TOKEN"),
                   help="a device token (lightsearch device token create; "
                        "LIGHTSEARCH_DEVICE_TOKEN)")
    p.add_argument("--threads", type=int, default=1, help="ONNX Runtime intra-op threads")
    p.add_argument("--provider", default="CPUExecutionProvider",
                   help="ONNX Runtime execution provider")
    p.add_argument("--power-file", help="a file holding the power draw (e.g. sysfs power_now)")
    p.add_argument("--power-command", help="a command printing the power draw")
    p.add_argument("--power-scale", type=float, default=1.0,
                   help="multiplier to watts (1e-6 for a sysfs file in microwatts)")
    p.add_argument("--power-interval", type=float, default=0.02, help="seconds between samples")
    p.add_argument("--energy-s", type=float, default=1.0,
                   help="seconds each model runs while its energy is measured")
    p.add_argument("--poll-s", type=float, default=0.2, help="seconds between empty polls")
    p.add_argument("--max-measurements", type=int, help="exit after this many")
    p.add_argument("--agent-key", help="this agent's id (8-64 of A-Z a-z 0-9 _ -; default: "
                   "random per start)")
    p.add_argument("--log-level", default="info")


def main_args(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.token:
        print("error: no device token: pass --token or set LIGHTSEARCH_DEVICE_TOKEN")
        return 2
    power = None
    if args.power_file or args.power_command:
        power = PowerReading(args.power_file, args.power_command, args.power_scale,
                             args.power_interval, args.energy_s)
    agent = DeviceAgent(args.server, args.token,
                        MeasureConfig(args.threads, args.provider, power), poll_s=args.poll_s,
                        agent_key=args.agent_key)
    signal.signal(signal.SIGTERM, lambda *_: agent.stop.set())
    try:
        agent.run(args.max_measurements)
    except KeyboardInterrupt:
        pass
    except httpx.HTTPStatusError:
        return 1
    finally:
        agent.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="lightsearch device-agent",
                                     description="Measure ONNX models for a LightSearch "
                                                 "server on this device.")
    add_arguments(parser)
    return main_args(parser.parse_args(argv))


if __name__ == "__main__":
    raise SystemExit(main())
