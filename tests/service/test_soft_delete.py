"""Soft delete (``reclaim_instance_interval`` > 0): a deleted server is powered off and
kept, restorable, until it is force-deleted or its compute reclaims it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strato.domain.ids import InstanceId
from strato.domain.instances import PowerState
from tests.cloud_fixtures import ADMIN_TOKEN, Harness, fake_hosts, running_cloud


def settings(interval: float) -> dict[str, Any]:
    return {"api": {"admin_token": ADMIN_TOKEN, "reclaim_instance_interval": interval}}


async def action(h: Harness, server_id: str, body: dict[str, Any]) -> int:
    resp = await h.client._http.post(f"/v2.1/servers/{server_id}/action", json=body)
    return resp.status_code


async def active_server(h: Harness) -> tuple[str, str]:
    server_id = await h.client.create_server("s", image=h.image_id,
                                             flavor=h.flavors["m1.tiny"])
    server = await h.client.wait_for_status(server_id, {"ACTIVE"})
    assert server.host
    return server_id, server.host


async def test_delete_soft_deletes_then_restore_brings_it_back(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1), **settings(3600)) as h:
        server_id, host = await active_server(h)
        await h.client.delete_server(server_id)
        server = await h.client.wait_for_status(server_id, {"SOFT_DELETED"})
        assert server.status == "SOFT_DELETED"
        driver = h.driver(host)
        assert (await driver.get_info(InstanceId(server_id))).power_state == \
            PowerState.SHUTDOWN
        # Resources stay held while it can come back.
        [usage] = await h.cloud.db.nodes.usages()
        assert usage.used.memory_mb == 512

        # Only restore and forceDelete apply now; a stop is a 409.
        assert await action(h, server_id, {"os-stop": None}) == 409
        assert await action(h, server_id, {"restore": None}) == 202
        await h.client.wait_for_status(server_id, {"ACTIVE"})
        assert (await driver.get_info(InstanceId(server_id))).power_state == \
            PowerState.RUNNING
        resp = await h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions")
        names = [a["action"] for a in resp.json()["instanceActions"]]
        assert names.count("delete") == 1 and "restore" in names
        assert await action(h, server_id, {"restore": None}) == 409  # not soft-deleted


async def test_force_delete_deletes_a_soft_deleted_server_for_good(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1), **settings(3600)) as h:
        server_id, host = await active_server(h)
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"SOFT_DELETED"})
        assert await action(h, server_id, {"forceDelete": None}) == 202
        await h.client.wait_for_status(server_id, {"DELETED"})
        assert await h.driver(host).list_instances() == []
        [usage] = await h.cloud.db.nodes.usages()
        assert usage.used.memory_mb == 0
        assert await action(h, server_id, {"forceDelete": {"x": 1}}) in (400, 404)


async def test_the_compute_reclaims_soft_deleted_servers_after_the_interval(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1), **settings(0.5)) as h:
        server_id, host = await active_server(h)
        await h.client.delete_server(server_id)
        # SOFT_DELETED first, then reclaimed by the compute's periodic task.
        await h.client.wait_for_status(server_id, {"DELETED"}, timeout=20)
        assert await h.driver(host).list_instances() == []
        [usage] = await h.cloud.db.nodes.usages()
        assert usage.used.memory_mb == 0


async def test_without_an_interval_delete_is_immediate(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1), **settings(0)) as h:
        server_id, _ = await active_server(h)
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
        assert await action(h, server_id, {"restore": None}) == 404


async def test_a_server_without_a_guest_is_deleted_at_once(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1, memory_mb=256), **settings(3600)) as h:
        server_id = await h.client.create_server("too-big", image=h.image_id,
                                                 flavor=h.flavors["m1.small"])
        await h.client.wait_for_status(server_id, {"ERROR"})
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
