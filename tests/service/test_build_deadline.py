"""The build deadline (``scheduler.build_timeout``): a build whose message is lost between
two services still ends in ERROR, with a fault naming the step that never answered and
nothing left allocated; a build that answers in time is not touched."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strato.compute.build import BUILD_EVENT
from strato.conductor.deadlines import check_interval
from strato.config import Settings
from strato.domain.actions import EventResult
from strato.domain.ids import InstanceId
from strato.domain.resources import Resources
from strato.rpc.contracts.compute import BuildAndRunInstance
from strato.rpc.contracts.conductor import BuildInstances
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until
from tests.fakes.lossy_bus import lossy_cloud

FAST = {"build_timeout": 1.0}


async def _nothing_allocated(h: Harness, server_id: str) -> None:
    assert await h.cloud.db.nodes.allocations(InstanceId(server_id)) == []
    assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())


def test_deadline_is_on_by_default_and_checked_often_enough() -> None:
    assert Settings().scheduler.build_timeout == 600.0
    assert check_interval(600.0) == 30.0
    assert check_interval(1.0) == 0.25


async def test_lost_build_cast_to_the_compute_ends_in_error(tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(1), scheduler=FAST) as (h, bus):
        bus.drop_type(BuildAndRunInstance)
        server_id = await h.client.create_server("lost", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=10)
        assert [type(s.message) for s in bus.dropped] == [BuildAndRunInstance]
        assert server.status == "ERROR" and server.task_state is None
        assert server.fault is not None and server.fault["code"] == 500
        assert server.fault["message"] == (
            "Build timed out after 1 s waiting in task_state 'scheduling' on host h1 "
            "(compute h1 never answered)")
        await _nothing_allocated(h, server_id)
        # The create action says why, like any other failed build.
        actions = (await h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions")).json()["instanceActions"]
        assert [a["message"] for a in actions] == ["Error"]


async def test_lost_build_request_to_the_conductor_ends_in_error(tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(2), scheduler=FAST) as (h, bus):
        bus.drop_type(BuildInstances)
        server_id = await h.client.create_server("unscheduled", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=10)
        assert server.status == "ERROR" and server.host is None
        assert server.fault is not None and server.fault["message"] == (
            "Build timed out after 1 s waiting in task_state 'scheduling' "
            "(the scheduler or conductor never answered)")
        await _nothing_allocated(h, server_id)


async def test_spawn_past_the_deadline_ends_in_error_and_leaves_no_guest(
        tmp_path: Path) -> None:
    # The compute answers, but too late: the deadline wins the compare-and-swap, and the
    # compute's final write then fails, so it destroys the guest it just made.
    async with running_cloud(tmp_path, fake_hosts(1, spawn_delay=4.0),
                             scheduler={"build_timeout": 2.0}) as h:
        server_id = await h.client.create_server("slow", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=10)
        assert server.status == "ERROR"
        assert server.fault is not None and server.fault["message"] == (
            "Build timed out after 2 s waiting in task_state 'spawning' on host h1 "
            "(compute h1 never answered)")
        # The spawn finishes; the compute's last write fails and it gives the build up,
        # destroying its guest: the server must not come back to life.
        async def compute_gave_up() -> bool:
            [action] = await h.cloud.db.actions.list(InstanceId(server_id))
            return any(e.event == BUILD_EVENT and e.result == EventResult.ERROR
                       for e in action.events)

        await wait_until(compute_gave_up, timeout=10)
        assert (await h.client.get_server(server_id)).status == "ERROR"
        assert await h.driver("h1").list_instances() == []
        await _nothing_allocated(h, server_id)


async def test_builds_that_answer_in_time_are_not_touched(tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(2),
                           scheduler={"build_timeout": 3.0}) as (h, bus):
        ids = await asyncio.gather(*(
            h.client.create_server(f"ok-{i}", image=h.image_id, flavor=h.flavors["m1.tiny"])
            for i in range(5)))
        servers = await asyncio.gather(*(
            h.client.wait_for_status(i, {"ACTIVE", "ERROR"}) for i in ids))
        assert {s.status for s in servers} == {"ACTIVE"}
        await asyncio.sleep(3.5)  # past the deadline: ACTIVE stays ACTIVE
        for server_id in ids:
            server = await h.client.get_server(server_id)
            assert server.status == "ACTIVE" and server.fault is None
        assert bus.dropped == []
        used = sum((u.used for u in await h.cloud.db.nodes.usages()), Resources())
        assert used == Resources(vcpus=5, memory_mb=5 * 512, disk_gb=5)
