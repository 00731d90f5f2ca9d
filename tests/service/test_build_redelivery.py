"""A build message delivered more than once (RabbitMQ redelivers what a consumer did not
ack before it died) changes nothing: the compute builds an instance only while it waits
for this host's build (task scheduling, on this host), so a repeat of a build that was
done, is running, or was rescheduled to another host neither claims, releases, spawns
nor changes a state. The fixtures check at teardown that the books balance."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from strato.bootstrap import ComputeSpec
from strato.domain.context import RequestContext
from strato.domain.ids import HostName, InstanceId
from strato.domain.resources import Resources
from strato.rpc.bus import Target
from strato.rpc.contracts.compute import BuildAndRunInstance
from strato.virt.fake import FakeDriver, FakeDriverConfig
from tests.cloud_fixtures import Harness, fake_hosts, wait_until
from tests.fakes.lossy_bus import LossyBus, lossy_cloud


@dataclass
class _Builds:
    """Every build cast the conductor sent, as sent (target, message, context)."""

    sent: list[tuple[Target, BuildAndRunInstance, RequestContext]] = field(
        default_factory=list)

    def watch(self, bus: LossyBus) -> None:
        inner_cast = bus.cast

        async def cast(target: Target, message: object, *, ctx: RequestContext) -> None:
            if isinstance(message, BuildAndRunInstance):
                self.sent.append((target, message, ctx))
            await inner_cast(target, message, ctx=ctx)

        bus.cast = cast  # type: ignore[method-assign]

    async def redeliver(self, bus: LossyBus, index: int) -> None:
        """Deliver build ``index`` again, as the broker would, and wait until the
        compute's handler has finished with it (a call answers when it returns)."""
        target, message, ctx = self.sent[index]
        await bus.inner.call(target, message, ctx=ctx)


async def _one_allocation_on(h: Harness, server_id: str, host: str) -> None:
    allocations = await h.cloud.db.nodes.allocations(InstanceId(server_id))
    assert [a.host for a in allocations] == [host]
    assert h.cloud.computes[host].tracker.holds(InstanceId(server_id))


async def _server(h: Harness, server_id: str) -> dict[str, Any]:
    resp = await h.client.request("GET", f"/v2.1/servers/{server_id}")
    server: dict[str, Any] = resp.json()["server"]
    return server


async def _guests(h: Harness) -> dict[str, list[InstanceId]]:
    return {host: list(await h.driver(host).list_instances()) for host in h.cloud.drivers}


async def test_build_redelivered_after_active_changes_nothing(tmp_path: Path) -> None:
    builds = _Builds()
    async with lossy_cloud(tmp_path, fake_hosts(1)) as (h, bus):
        builds.watch(bus)
        server_id = await h.client.create_server("twice", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        await h.client.wait_for_status(server_id, {"ACTIVE"}, timeout=10)
        before = await _server(h, server_id)
        assert len(builds.sent) == 1
        await builds.redeliver(bus, 0)
        assert await _server(h, server_id) == before
        await _one_allocation_on(h, server_id, "h1")
        assert await _guests(h) == {"h1": [InstanceId(server_id)]}


async def test_build_redelivered_while_spawning_is_not_built_twice(tmp_path: Path) -> None:
    builds = _Builds()
    async with lossy_cloud(tmp_path, fake_hosts(1, spawn_delay=0.5)) as (h, bus):
        builds.watch(bus)
        server_id = await h.client.create_server("during", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])

        async def spawning() -> bool:
            return (await h.client.get_server(server_id)).task_state == "spawning"

        await wait_until(spawning, timeout=10)
        # The repeat waits for the build in progress (the instance's lock), then finds
        # it built.
        await asyncio.gather(builds.redeliver(bus, 0), builds.redeliver(bus, 0))
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=10)
        assert server.status == "ACTIVE"
        await _one_allocation_on(h, server_id, "h1")
        assert await _guests(h) == {"h1": [InstanceId(server_id)]}
        assert h.driver("h1").statistics().spawned == 1


def _hosts_first_fails() -> list[ComputeSpec]:
    """h1 (bigger, so the weighers choose it first) fails every spawn retryably; h2
    builds."""
    h1 = ComputeSpec("h1", FakeDriver(FakeDriverConfig(
        host=HostName("h1"), capacity=Resources(vcpus=16, memory_mb=16384, disk_gb=400),
        fail_every=1)))
    h2 = ComputeSpec("h2", FakeDriver(FakeDriverConfig(
        host=HostName("h2"), capacity=Resources(vcpus=8, memory_mb=8192, disk_gb=200))))
    return [h1, h2]


async def test_stale_attempt_after_a_reschedule_leaves_the_new_host_alone(
        tmp_path: Path) -> None:
    builds = _Builds()
    async with lossy_cloud(tmp_path, _hosts_first_fails()) as (h, bus):
        builds.watch(bus)
        server_id = await h.client.create_server("moved", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        await h.client.wait_for_status(server_id, {"ACTIVE"}, timeout=10)
        assert [(t.server, m.request.retry.attempts) for t, m, _ in builds.sent] == [
            ("h1", 1), ("h2", 2)]
        before = await _server(h, server_id)
        assert (before["status"], before["OS-EXT-SRV-ATTR:host"]) == ("ACTIVE", "h2")
        await builds.redeliver(bus, 0)  # attempt 1, to h1 again
        assert await _server(h, server_id) == before
        await _one_allocation_on(h, server_id, "h2")
        assert not h.cloud.computes["h1"].tracker.holds(InstanceId(server_id))
        assert await _guests(h) == {"h1": [], "h2": [InstanceId(server_id)]}
