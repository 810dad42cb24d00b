"""The devices page in a real browser: a user sees the devices they may use, with status,
heartbeat, queue length and measurements done."""

from __future__ import annotations

from typing import Any

from tests.dashboard.harness import Service


def test_devices_page_lists_only_usable_devices(open_page: Any, quiet_service: Service) -> None:
    root = quiet_service.token("root-dev", admin=True)
    alice, bob = quiet_service.token("alice-dev"), quiet_service.token("bob-dev")
    admin = quiet_service.client(root)
    private = admin.post("/device-tokens", json={"name": "jetson", "users": ["alice-dev"]})
    shared = admin.post("/device-tokens", json={"name": "rpi4"})
    assert private.status_code == shared.status_code == 201
    agent = quiet_service.client(shared.json()["token"])
    assert agent.post("/devices/agent/register", json={
        "agent_key": "page-agent-1", "description": {"cpu": "Cortex-A72", "os": "Linux",
                                                     "onnxruntime": "1.20"}}).status_code == 200
    with quiet_service.db.writing() as session:  # a queued measurement shows in the queue
        from sqlalchemy import select

        from service.devices import queue
        from service.models import Device

        device_id = session.scalar(select(Device.id).where(Device.name == "rpi4"))
    queue.submit(quiet_service.db, device_id, [b"model"], {"rounds": 5})

    p = open_page(quiet_service, alice)
    page = p.goto("#/jobs")
    page.click("#nav-devices")
    page.wait_for_selector("tr[data-device='rpi4'][data-status='online']")
    assert page.locator("tr[data-device='jetson'][data-status='offline']").count() == 1
    row = page.inner_text("tr[data-device='rpi4']")
    assert "remote:rpi4" in row and "Cortex-A72" in row and "online" in row.lower()
    cells = page.locator("tr[data-device='rpi4'] td").all_inner_texts()
    assert cells[2] == "1" and cells[4] == "1" and cells[5] == "0"  # agents, queue, done
    p.shot("devices")
    assert not p.errors, p.errors

    other = open_page(quiet_service, bob).goto("#/devices")
    other.wait_for_selector("tr[data-device='rpi4']")
    assert other.locator("tr[data-device='jetson']").count() == 0
