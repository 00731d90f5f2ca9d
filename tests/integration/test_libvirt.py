"""Real guests: the tiny guest booted by libvirtd + QEMU (TCG) through strato's create
path, its console read back, its lifecycle driven, and nothing left behind."""

from __future__ import annotations

import asyncio
import base64
import json
import os
from pathlib import Path

import pytest

from strato.domain.hostnames import sanitize_hostname
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


def user_script(marker: str) -> str:
    # The tiny guest keeps the config drive mounted on /mnt: show the injected file too.
    script = (f"#!/bin/sh\necho \"user-data says {marker}\"\n"
              "cat /mnt/openstack/content/0000 2>/dev/null\n")
    return base64.b64encode(script.encode()).decode()


async def assert_gone(lv: LvCloud, server_id: str) -> None:
    """No domain, no instance directory, no allocation: the build could start over."""
    assert domains_with(lv.box.prefix) == []
    assert not (lv.box.instances / server_id).exists()
    usages = await lv.cloud.db.nodes.usages()
    assert [u.used.memory_mb for u in usages] == [0]
    assert lv.driver.cache.base_dir.exists()  # the shared cache stays


async def boot_and_check(lv: LvCloud, name: str, image: str, flavor: str) -> str:
    marker = os.urandom(4).hex()
    injected = base64.b64encode(f"injected file {marker}\n".encode()).decode()
    server_id = await lv.client.create_server(
        name, image=image, flavor=flavor, config_drive=True, user_data=user_script(marker),
        metadata={"role": "test <&> \"quoted\""},
        personality=[{"path": "/etc/strato-test", "contents": injected}])
    server = await lv.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=120)
    assert server.status == "ACTIVE", server
    console = await lv.console_line(server_id, "user-data exit=")
    assert f"strato-guest: uuid={server_id} hostname={sanitize_hostname(name)}" in console
    assert f"user-data says {marker}" in console
    assert f"injected file {marker}" in console
    assert "strato-guest: user-data exit=0" in console
    return server_id


async def test_boot_from_qcow2_disk_with_config_drive_then_reboot_stop_start_delete(
        tmp_path: Path, sandbox: Sandbox, tiny_guest: TinyGuest) -> None:
    async with libvirt_cloud(tmp_path, sandbox) as lv:
        image = await lv.upload("tiny", tiny_guest.disk, "qcow2")
        flavor = await lv.flavor("lv.tiny")
        server_id = await boot_and_check(lv, "Tiny Guest_1", image, flavor)
        iid = InstanceId(server_id)

        # TCG, said once in os-hypervisors.
        resp = await lv.client.request("GET", "/v2.1/os-hypervisors/detail")
        [hyp] = resp.json()["hypervisors"]
        assert hyp["hypervisor_type"] == "QEMU"
        assert json.loads(hyp["cpu_info"])["accelerator"] == "tcg"
        assert hyp["memory_mb_used"] == 128

        # The base is qcow2 and shared; the instance disk is an overlay on it.
        disk_info = json.loads((sandbox.instances / server_id / "disk.info").read_text())
        assert any(Path(p).parent == lv.driver.cache.base_dir for p in disk_info)

        async def console_size() -> int:
            return len(await lv.driver.console_output(iid))

        # Soft reboot: the guest handles the ACPI power button and comes back.
        before = await console_size()
        await lv.driver.reboot(iid)
        console = await lv.console_line(server_id, "strato-guest: uuid=", after=before)
        assert "strato-guest: powering off" in console[before:]
        assert (await lv.driver.get_info(iid)).power_state == PowerState.RUNNING

        # Stop, then start again.
        await lv.driver.power_off(iid)
        assert (await lv.driver.get_info(iid)).power_state == PowerState.SHUTDOWN
        before = await console_size()
        await lv.driver.power_on(iid)
        assert (await lv.driver.get_info(iid)).power_state == PowerState.RUNNING
        await lv.console_line(server_id, "strato-guest: uuid=", after=before)

        # Hard reboot: reset without asking the guest.
        before = await console_size()
        await lv.driver.reboot(iid, hard=True)
        console = await lv.console_line(server_id, "strato-guest: uuid=", after=before)
        assert "powering off" not in console[before:]

        # Pause and unpause; suspend to disk and resume.
        await lv.driver.pause(iid)
        assert (await lv.driver.get_info(iid)).power_state == PowerState.PAUSED
        await lv.driver.unpause(iid)
        assert (await lv.driver.get_info(iid)).power_state == PowerState.RUNNING
        await lv.driver.suspend(iid)
        assert (await lv.driver.get_info(iid)).power_state == PowerState.SUSPENDED
        await lv.driver.resume(iid)
        assert (await lv.driver.get_info(iid)).power_state == PowerState.RUNNING
        assert await lv.driver.list_instances() == [iid]

        # The console API reads the same console through the compute.
        resp = await lv.client.request("POST", f"/v2.1/servers/{server_id}/action",
                                       json={"os-getConsoleOutput": {"length": 50}})
        assert f"strato-guest: uuid={server_id}" in resp.json()["output"]

        await lv.client.delete_server(server_id)
        await lv.client.wait_for_status(server_id, {"DELETED"}, timeout=60)
        await assert_gone(lv, server_id)


async def test_direct_kernel_boot_from_aki_ari_with_virtio_config_drive(
        tmp_path: Path, sandbox: Sandbox, tiny_guest: TinyGuest) -> None:
    async with libvirt_cloud(tmp_path, sandbox, config_drive_bus="virtio") as lv:
        kernel = await lv.upload("tiny-kernel", tiny_guest.kernel, "aki", "aki")
        ramdisk = await lv.upload("tiny-ramdisk", tiny_guest.initrd, "ari", "ari")
        image = await lv.upload("tiny-ami", tiny_guest.disk, "qcow2", kernel_id=kernel,
                                ramdisk_id=ramdisk, os_command_line=tiny_guest.cmdline)
        resp = await lv.client.request("POST", "/v2.1/flavors", json={"flavor": {
            "name": "lv.disks", "ram": 128, "disk": 1, "vcpus": 1,
            "OS-FLV-EXT-DATA:ephemeral": 1, "swap": 16}})
        flavor = resp.json()["flavor"]["id"]
        server_id = await boot_and_check(lv, "kernel-boot", image, flavor)
        directory = sandbox.instances / server_id
        xml = (directory / "libvirt.xml").read_text()
        assert "<kernel>" in xml and "<initrd>" in xml
        # Root, ephemeral and swap disks from the flavor, then the config drive.
        assert [d for d in ("vda", "vdb", "vdc", "vdd") if f'dev="{d}"' in xml] == [
            "vda", "vdb", "vdc", "vdd"]
        assert (directory / "disk.eph0").exists() and (directory / "disk.swap").exists()
        await lv.client.delete_server(server_id)
        await lv.client.wait_for_status(server_id, {"DELETED"}, timeout=60)
        await assert_gone(lv, server_id)


async def test_a_domain_that_cannot_start_leaves_nothing_behind(
        tmp_path: Path, sandbox: Sandbox, tiny_guest: TinyGuest) -> None:
    async with libvirt_cloud(tmp_path, sandbox) as lv:
        junk = tmp_path / "junk-kernel"
        junk.write_bytes(b"not a kernel" * 1000)
        kernel = await lv.upload("junk-kernel", junk, "aki", "aki")
        image = await lv.upload("broken", tiny_guest.disk, "qcow2", kernel_id=kernel)
        flavor = await lv.flavor("lv.tiny")
        server_id = await lv.client.create_server("broken", image=image, flavor=flavor)
        server = await lv.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=120)
        assert server.status == "ERROR"
        resp = await lv.client.request("GET", f"/v2.1/servers/{server_id}")
        fault = resp.json()["server"]["fault"]["message"]
        assert "libvirt could not start" in fault or "kernel" in fault.lower(), fault
        # QEMU refused the kernel: the domain was defined and started, and is gone again.
        await assert_gone(lv, server_id)
        events = await lv.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions")
        assert events.status_code == 200


async def test_ten_parallel_builds_of_a_new_image_download_it_once(
        tmp_path: Path, sandbox: Sandbox) -> None:
    # A guest that halts at once: ten of them cost no CPU, so the test measures the cache.
    halt = tmp_path / "halt.img"
    halt.write_bytes(bytes([0xFA, 0xF4, 0xEB, 0xFD]).ljust(510, b"\0") + b"\x55\xaa"
                     + b"\0" * (1024 * 1024 - 512))
    # The compute fetches the image over HTTP with the service token, as on another host.
    async with libvirt_cloud(tmp_path, sandbox, serve_http=True, boot_cpu_seconds=0.2) as lv:
        image = await lv.upload("halt", halt, "raw")
        flavor = await lv.flavor("lv.halt", ram=32)
        resp = await lv.client.request("POST", "/v2.1/servers", json={"server": {
            "name": "many", "imageRef": image, "flavorRef": flavor,
            "min_count": 10, "max_count": 10, "return_reservation_id": True}})
        reservation = resp.json()["reservation_id"]
        servers = await lv.client.list_servers(reservation_id=reservation)
        assert len(servers) == 10
        done = await asyncio.gather(*(lv.client.wait_for_status(s.id, {"ACTIVE", "ERROR"},
                                                                timeout=120)
                                      for s in servers))
        assert {s.status for s in done} == {"ACTIVE"}
        assert lv.driver.cache.downloads == 1
        assert lv.driver.images.client.base_url.startswith("http://127.0.0.1:")
        assert len(domains_with(sandbox.prefix)) == 10
        for s in servers:
            await lv.client.delete_server(s.id)
        for s in servers:
            await lv.client.wait_for_status(s.id, {"DELETED"}, timeout=60)
        assert domains_with(sandbox.prefix) == []
        assert sorted(p.name for p in sandbox.instances.iterdir()) == ["_base"]
