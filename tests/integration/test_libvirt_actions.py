"""Server actions on a real guest: the tiny guest under libvirtd + QEMU (TCG), driven only
through the Compute API (reboot soft and hard, os-stop/os-start, pause/unpause,
suspend/resume, rebuild onto the kernel-boot image, console output), each checked
against what libvirt and the guest's console say; nothing is left behind."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from strato.domain.ids import InstanceId
from strato.domain.instances import PowerState
from strato.tinyguest import TinyGuest

# ruff: noqa: F811
from tests.libvirt_fixtures import (  # noqa: F401
    LvCloud,
    Sandbox,
    domains_with,
    libvirt_cloud,
    sandbox,
    tiny_guest,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

UUID_LINE = "strato-guest: uuid="
READY = "strato-guest: ready"


async def act(lv: LvCloud, server_id: str, body: dict[str, Any], status: str
              ) -> dict[str, Any]:
    """Send one action through the API (202) and wait until it is done with the server
    in ``status``; the server's view."""
    resp = await lv.client.request("POST", f"/v2.1/servers/{server_id}/action", json=body)
    assert resp.status_code == 202, resp.text
    return await act_done(lv, server_id, status)


async def act_done(lv: LvCloud, server_id: str, status: str,
                   timeout: float = 90.0) -> dict[str, Any]:
    """The server's view once no task runs on it, checked to be in ``status``."""
    path = f"/v2.1/servers/{server_id}"
    async with asyncio.timeout(timeout):
        while True:
            server: dict[str, Any] = (await lv.client.request("GET", path)).json()["server"]
            if server["OS-EXT-STS:task_state"] is None:
                break
            await asyncio.sleep(0.1)
    assert server["status"] == status, server
    return server


async def test_server_actions_through_the_api_on_a_real_guest(
        tmp_path: Path, sandbox: Sandbox, tiny_guest: TinyGuest) -> None:
    async with libvirt_cloud(tmp_path, sandbox) as lv:
        image = await lv.upload("tiny", tiny_guest.disk, "qcow2")
        flavor = await lv.flavor("lv.tiny")
        server_id = await lv.client.create_server("acts", image=image, flavor=flavor,
                                                  config_drive=True)
        # The rebuild's image, uploaded while the guest boots.
        kernel = await lv.upload("tiny-kernel", tiny_guest.kernel, "aki", "aki")
        ramdisk = await lv.upload("tiny-ramdisk", tiny_guest.initrd, "ari", "ari")
        kernel_boot = await lv.upload("tiny-kernel-boot", tiny_guest.disk, "qcow2",
                                      kernel_id=kernel, ramdisk_id=ramdisk,
                                      os_command_line=tiny_guest.cmdline)
        server = await lv.client.wait_for_status(server_id, {"ACTIVE", "ERROR"},
                                                 timeout=120)
        assert server.status == "ACTIVE", server
        iid = InstanceId(server_id)
        await lv.console_line(server_id, READY)

        async def power() -> PowerState:
            return PowerState((await lv.driver.get_info(iid)).power_state)

        async def console_size() -> int:
            return len(await lv.driver.console_output(iid))

        # Pause and suspend keep the guest where it was: no new boot on the console.
        before = await console_size()
        view = await act(lv, server_id, {"pause": None}, "PAUSED")
        assert view["OS-EXT-STS:power_state"] == PowerState.PAUSED == await power()
        view = await act(lv, server_id, {"unpause": None}, "ACTIVE")
        assert view["OS-EXT-STS:power_state"] == PowerState.RUNNING == await power()
        view = await act(lv, server_id, {"suspend": None}, "SUSPENDED")
        assert view["OS-EXT-STS:power_state"] == PowerState.SUSPENDED == await power()
        view = await act(lv, server_id, {"resume": None}, "ACTIVE")
        assert view["OS-EXT-STS:power_state"] == PowerState.RUNNING == await power()
        assert UUID_LINE not in (await lv.driver.console_output(iid))[before:]

        # Soft reboot: the guest handles the ACPI power button, then boots again.
        before = await console_size()
        await act(lv, server_id, {"reboot": {"type": "SOFT"}}, "ACTIVE")
        console = await lv.console_line(server_id, READY, after=before)
        assert "strato-guest: powering off" in console[before:]
        assert f"{UUID_LINE}{server_id}" in console[before:]

        # Stop (cleanly, the guest is up) and start.
        before = await console_size()
        view = await act(lv, server_id, {"os-stop": None}, "SHUTOFF")
        assert view["OS-EXT-STS:power_state"] == PowerState.SHUTDOWN == await power()
        assert "strato-guest: powering off" in (await lv.driver.console_output(iid))[before:]
        before = await console_size()
        view = await act(lv, server_id, {"os-start": None}, "ACTIVE")
        assert view["OS-EXT-STS:power_state"] == PowerState.RUNNING == await power()
        await lv.console_line(server_id, UUID_LINE, after=before)

        # Hard reboot: reset without asking the guest.
        before = await console_size()
        await act(lv, server_id, {"reboot": {"type": "HARD"}}, "ACTIVE")
        console = await lv.console_line(server_id, UUID_LINE, after=before)
        assert "powering off" not in console[before:]

        # Rebuild onto the kernel-boot image: a new domain on the same host, a new disk
        # and console, the new image on the server.
        resp = await lv.client.request("POST", f"/v2.1/servers/{server_id}/action", json={
            "rebuild": {"imageRef": kernel_boot, "name": "rebuilt"}})
        assert resp.status_code == 202, resp.text
        assert resp.json()["server"]["status"] == "REBUILD"
        view = await act_done(lv, server_id, "ACTIVE")
        assert view["image"]["id"] == kernel_boot and view["name"] == "rebuilt"
        assert await power() == PowerState.RUNNING
        xml = (sandbox.instances / server_id / "libvirt.xml").read_text()
        assert "<kernel>" in xml and "<initrd>" in xml
        console = await lv.console_line(server_id, UUID_LINE)
        assert "powering off" not in console  # a fresh console.log
        assert f"{UUID_LINE}{server_id} hostname=rebuilt" in console

        # The console through the API, from the compute.
        resp = await lv.client.request("POST", f"/v2.1/servers/{server_id}/action",
                                       json={"os-getConsoleOutput": {"length": 20}})
        assert f"{UUID_LINE}{server_id}" in resp.json()["output"]

        # Every action recorded, each with the compute's successful event.
        resp = await lv.client.request("GET", f"/v2.1/servers/{server_id}/os-instance-actions")
        actions = resp.json()["instanceActions"]
        assert [a["action"] for a in actions] == [
            "rebuild", "reboot", "start", "stop", "reboot", "resume", "suspend", "unpause",
            "pause", "create"]
        for action in actions[:-1]:
            one = await lv.client.request(
                "GET", f"/v2.1/servers/{server_id}/os-instance-actions/"
                       f"{action['request_id']}")
            [event] = one.json()["instanceAction"]["events"]
            assert event["result"] == "Success", event

        await lv.client.delete_server(server_id)
        await lv.client.wait_for_status(server_id, {"DELETED"}, timeout=60)
        assert domains_with(sandbox.prefix) == []
        assert not (sandbox.instances / server_id).exists()
        assert [u.used.memory_mb for u in await lv.cloud.db.nodes.usages()] == [0]

