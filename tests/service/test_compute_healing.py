"""A compute host that heals itself: restart reconciliation (``init_host``), the resource
audit that heals allocations both ways, and the power-state sync; on the fake driver,
through the real SQLite adapter and the in-process bus (the heal itself also on
PostgreSQL)."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from strato.bootstrap import ComputeSpec
from strato.compute.audit import update_available_resource
from strato.compute.deps import ComputeDeps
from strato.compute.host import init_host
from strato.compute.locks import KeyedLocks
from strato.compute.tracker import ResourceTracker
from strato.conductor.client import ConductorClient
from strato.db.sql import SqlDatabase
from strato.domain.actions import EventResult
from strato.domain.ids import HostName, InstanceId, NodeName, RequestId, new_uuid
from strato.domain.instances import PowerState, TaskState, VmState
from strato.domain.networks import Vif
from strato.domain.requests import BootRequest, Destination
from strato.domain.resources import Resources
from strato.network.host import FakeHostNetwork
from strato.virt.fake import FakeDriver, FakeDriverConfig
from tests.cloud_fixtures import Harness, compute_run, fake_hosts, running_cloud, wait_until
from tests.db_fixtures import (  # noqa: F401
    T0,
    backend_url,
    clock,
    db,
    db_url,
    make_capacity,
    make_instance,
    pg_url,
)

TINY = Resources(vcpus=1, memory_mb=512, disk_gb=1)
BUILD_EVENT = "compute__do_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"


@dataclass
class CrashableDriver(FakeDriver):
    """A fake hypervisor that outlives its compute service.

    ``dead``: the service was killed, so its last calls (the clean-up of a cancelled
    build) never reach the hypervisor. ``hang_spawn``: a spawn creates the guest, then
    waits for it to run forever (as libvirt waits for its "started" event).
    ``destroy_gate``: a destroy waits for the gate (``destroying`` says one does).
    """

    dead: bool = False
    hang_spawn: bool = False
    destroy_gate: asyncio.Event | None = None
    destroying: asyncio.Event = field(default_factory=asyncio.Event)

    async def spawn(self, req: BootRequest, *, node: NodeName,
                    vifs: Sequence[Vif] = ()) -> None:
        await super().spawn(req, node=node, vifs=vifs)
        if self.hang_spawn:
            await asyncio.Event().wait()

    async def destroy(self, instance_id: InstanceId) -> None:
        if self.dead:
            return
        if self.destroy_gate is not None:
            self.destroying.set()
            await self.destroy_gate.wait()
        await super().destroy(instance_id)


def _spare() -> list[ComputeSpec]:
    # The cloud's own compute: too small for any flavor, so every build goes to the
    # compute the test runs (and kills) itself.
    return fake_hosts(1, prefix="spare", memory_mb=256)


def _h1(spawn_delay: float = 0.0) -> CrashableDriver:
    return CrashableDriver(FakeDriverConfig(host=HostName("h1"), spawn_delay=spawn_delay))


def _task_is(h: Harness, server_id: str, task: str) -> Callable[[], Awaitable[bool]]:
    async def check() -> bool:
        return (await h.client.get_server(server_id)).task_state == task
    return check


async def _h1_is_empty(h: Harness, server_id: str) -> bool:
    allocations = await h.cloud.db.nodes.allocations(InstanceId(server_id))
    usage = {u.host: (u.used, u.instances) for u in await h.cloud.db.nodes.usages()}
    return allocations == [] and usage[HostName("h1")] == (Resources(), 0)


async def _events(h: Harness, server_id: str, action: str) -> list[tuple[str, str | None]]:
    """(event, result) of the server's newest ``action``; open events have no result."""
    actions = await h.cloud.db.actions.list(InstanceId(server_id))
    found = next(a for a in actions if a.action == action)
    return [(e.event, e.result if e.finish_time is not None else None) for e in found.events]


def _deps(h: Harness, driver: FakeDriver, host: str = "h1") -> ComputeDeps:
    return ComputeDeps(host=HostName(host), driver=driver,
                       conductor=ConductorClient(h.cloud.bus, 10.0), tracker=ResourceTracker(),
                       locks=KeyedLocks(), builds=asyncio.Semaphore(1),
                       network=FakeHostNetwork())


# ---- restart reconciliation ----------------------------------------------------------


async def test_build_cut_off_by_a_killed_compute_goes_to_error_on_restart(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, _spare()) as h:
        driver = _h1(spawn_delay=60.0)
        async with compute_run(h.cloud, ComputeSpec("h1", driver)) as compute:
            server_id = await h.client.create_server("cut", image=h.image_id,
                                                      flavor=h.flavors["m1.tiny"])
            await wait_until(_task_is(h, server_id, "spawning"))
            driver.dead = True
            await compute.kill()
            driver.dead = False
            # What the kill left: a build in "spawning" that holds its allocation.
            stored = await h.cloud.db.instances.get(InstanceId(server_id))
            assert (stored.task_state, stored.host) == (TaskState.SPAWNING, "h1")
            assert [a.host for a in await h.cloud.db.nodes.allocations(stored.id)] == ["h1"]

            compute.start()
            server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
            assert server.status == "ERROR" and server.task_state is None
            assert server.fault is not None and server.fault["message"] == (
                "Build interrupted: the compute service restarted during spawning")
            await wait_until(lambda: _h1_is_empty(h, server_id))
            assert await driver.list_instances() == []
            # The event the killed run opened is closed, as failed.
            assert (BUILD_EVENT, EventResult.ERROR) in await _events(h, server_id, "create")
            assert None not in {r for _, r in await _events(h, server_id, "create")}
            # The host builds again.
            driver.config = FakeDriverConfig(host=HostName("h1"))
            again = await h.client.create_server("again", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
            assert (await h.client.wait_for_status(again, {"ACTIVE", "ERROR"})).status == "ACTIVE"


async def test_restart_destroys_the_guest_an_interrupted_build_left(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, _spare()) as h:
        driver = _h1()
        driver.hang_spawn = True
        async with compute_run(h.cloud, ComputeSpec("h1", driver)) as compute:
            server_id = await h.client.create_server("half", image=h.image_id,
                                                      flavor=h.flavors["m1.tiny"])
            await wait_until(_task_is(h, server_id, "spawning"))
            await wait_until(lambda: _has_guest(driver, server_id))
            driver.dead = True
            await compute.kill()
            driver.dead = driver.hang_spawn = False
            assert await driver.list_instances() == [server_id]   # the domain runs on

            compute.start()
            server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
            assert server.status == "ERROR"
            await wait_until(lambda: _h1_is_empty(h, server_id))
            assert await driver.list_instances() == []


async def _has_guest(driver: FakeDriver, server_id: str) -> bool:
    return server_id in await driver.list_instances()


async def test_delete_cut_off_by_a_killed_compute_finishes_on_restart(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, _spare()) as h:
        driver = _h1()
        async with compute_run(h.cloud, ComputeSpec("h1", driver)) as compute:
            server_id = await h.client.create_server("doomed", image=h.image_id,
                                                      flavor=h.flavors["m1.tiny"])
            await h.client.wait_for_status(server_id, {"ACTIVE"})
            driver.destroy_gate = asyncio.Event()
            await h.client.delete_server(server_id)
            await asyncio.wait_for(driver.destroying.wait(), timeout=10)
            await compute.kill()   # mid-destroy: the message is gone with the process
            driver.destroy_gate = None
            stored = await h.cloud.db.instances.get(InstanceId(server_id))
            assert stored.task_state == TaskState.DELETING
            assert await driver.list_instances() == [server_id]

            compute.start()
            await h.client.wait_for_status(server_id, {"DELETED"})
            await wait_until(lambda: _h1_is_empty(h, server_id))
            assert await driver.list_instances() == []
            stored = await h.cloud.db.instances.get(InstanceId(server_id),
                                                    include_deleted=True)
            assert stored.deleted and stored.vm_state == VmState.DELETED
            # Recorded under the delete request: every event closed, the last one done.
            events = await _events(h, server_id, "delete")
            assert (TERMINATE_EVENT, EventResult.SUCCESS) in events
            assert None not in {r for _, r in events}


async def test_restart_counts_its_instances_and_reports_unknown_guests(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        kept, forgotten = [await h.client.create_server(n, image=h.image_id,
                                                        flavor=h.flavors["m1.tiny"])
                           for n in ("kept", "forgotten")]
        for server_id in (kept, forgotten):
            await h.client.wait_for_status(server_id, {"ACTIVE"})
        # strato forgets one instance; its guest runs on, unknown to it.
        await h.cloud.db.instances.soft_delete(InstanceId(forgotten))
        driver = h.driver("h1")
        deps = _deps(h, driver)
        deps.tracker.update_capacities(await driver.node_capacities())
        with caplog.at_level(logging.WARNING, logger="strato.compute"):
            report = await init_host(deps)
        assert report.unknown_guests == (forgotten,)
        assert report.tracked == (kept,)
        assert deps.tracker.statistics().used == TINY
        assert f"unknown domain {forgotten} on this host left running; not managed by " \
               "strato" in caplog.text
        # Reported, never destroyed: by the start-up nor by the audit.
        audit = await update_available_resource(deps)
        assert audit.unknown_guests == (forgotten,) and audit.tracked == 1
        assert sorted(await driver.list_instances()) == sorted([kept, forgotten])
        [usage] = await h.cloud.db.nodes.usages()
        assert usage.used == TINY
        # The cloud's own compute h1 heals at its next audit (run now, not in 60 s).
        await update_available_resource(h.cloud.computes["h1"])


# ---- the resource audit ----------------------------------------------------------------


def test_tracker_rebuild_keeps_what_changed_after_the_audit_read_its_view() -> None:
    tracker = ResourceTracker()
    tracker.update_capacities([make_capacity("h1", "n1")])
    n1 = NodeName("n1")
    stale, kept, claimed, released = (InstanceId(n) for n in ("stale", "kept", "cl", "rel"))
    tracker.track(stale, n1, TINY)
    tracker.track(released, n1, TINY)
    since = tracker.mark()
    # While the audit reads the database: one build claims, one instance is released.
    with tracker.claim(claimed, n1, TINY):
        pass
    tracker.release(released)
    # The audit's view, read before those: no "claimed" yet, "released" still there.
    drift = tracker.rebuild({kept: (n1, TINY), released: (n1, TINY)}, since=since)
    assert (drift.added, drift.dropped) == ((kept,), (stale,))
    assert {i for i in (stale, kept, claimed, released) if tracker.holds(i)} == {kept, claimed}
    # A later audit's view is taken as it is.
    tracker.rebuild({kept: (n1, TINY)}, since=tracker.mark())
    assert tracker.statistics().instances == 1


def test_tracker_claim_does_not_count_the_instance_twice() -> None:
    tracker = ResourceTracker()
    tracker.update_capacities([make_capacity("h1", "n1", memory_mb=1024)])
    n1, need = NodeName("n1"), Resources(memory_mb=1024)
    # An audit counted the instance before its build claimed: the claim still fits.
    tracker.rebuild({InstanceId("a"): (n1, need)}, since=tracker.mark())
    with tracker.claim(InstanceId("a"), n1, need):
        assert tracker.statistics().used == need


async def test_audit_heals_allocations_both_ways(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    compute = {"report_interval": 0.5, "resource_audit_interval": 0.2}
    async with running_cloud(tmp_path, fake_hosts(2), compute=compute) as h:
        ids = [await h.client.create_server(f"vm{i}", image=h.image_id,
                                            flavor=h.flavors["m1.tiny"]) for i in range(3)]
        for server_id in ids:
            await h.client.wait_for_status(server_id, {"ACTIVE"})
        db = h.cloud.db
        gone, moved, lost = [await db.instances.get(InstanceId(i)) for i in ids]
        assert gone.host and gone.node and moved.host and lost.host
        with caplog.at_level(logging.WARNING, logger="strato.compute"):
            # Deleted behind the compute's back, its allocation left behind.
            await db.instances.soft_delete(gone.id)
            assert await db.nodes.claim(gone.id, Destination(host=gone.host, node=gone.node),
                                        TINY)
            # Its allocation on the other host; and one that lost its allocation.
            other = HostName("h2" if moved.host == "h1" else "h1")
            assert await db.nodes.claim(moved.id, Destination(host=other, node=NodeName(other)),
                                        TINY)
            await db.nodes.release(lost.id)

            async def healed() -> bool:
                hosts = {i.id: [a.host for a in await db.nodes.allocations(i.id)]
                         for i in (gone, moved, lost)}
                used = sum((u.used for u in await db.nodes.usages()), Resources())
                return hosts == {gone.id: [], moved.id: [moved.host], lost.id: [lost.host]} \
                    and used == Resources(vcpus=2, memory_mb=1024, disk_gb=2)

            await wait_until(healed, timeout=10)
        assert f"removed the allocation of instance {gone.id}" in caplog.text
        assert f"created an allocation for instance {lost.id}" in caplog.text
        # Nothing left to heal: the servers are as they were.
        await asyncio.sleep(0.5)
        assert await healed()
        assert {s.status for s in await h.client.list_servers()} == {"ACTIVE"}


async def test_heal_host_on_each_backend(db: SqlDatabase) -> None:
    h1, n1 = HostName("h1"), NodeName("n1")
    await db.nodes.report([make_capacity("h1", "n1"), make_capacity("h2", "n2")])
    here = {"host": h1, "node": n1, "task_state": None}
    running = make_instance(vm_state=VmState.ACTIVE, launched_at=T0, **here)
    unallocated = make_instance(vm_state=VmState.STOPPED, launched_at=T0, **here)
    elsewhere = make_instance(vm_state=VmState.ACTIVE, launched_at=T0, host=HostName("h2"),
                              node=NodeName("n2"), task_state=None)
    deleted = make_instance(vm_state=VmState.ACTIVE, launched_at=T0, **here)
    failed = make_instance(vm_state=VmState.ERROR, **here)
    scheduling = make_instance()                      # no host yet: being scheduled
    spawning = make_instance(host=h1, node=n1, task_state=TaskState.SPAWNING)
    await db.instances.create_many(
        [running, unallocated, elsewhere, deleted, failed, scheduling, spawning],
        request_id=RequestId("req-heal"))
    dest = Destination(host=h1, node=n1)
    unknown = InstanceId(new_uuid())
    for instance_id in (running.id, elsewhere.id, deleted.id, failed.id, scheduling.id,
                        unknown):
        assert await db.nodes.claim(instance_id, dest, TINY)
    await db.instances.soft_delete(deleted.id)        # frees its allocation ...
    assert await db.nodes.claim(deleted.id, dest, TINY)   # ... which comes back, leaked

    healing = await db.nodes.heal_host(h1)

    assert {h.allocation.instance_id for h in healing.removed} == {
        elsewhere.id, deleted.id, failed.id}
    assert [h.allocation.instance_id for h in healing.created] == [unallocated.id]
    assert [h.allocation.node for h in healing.created] == [n1]
    assert len(healing.skipped) == 1 and unknown in healing.skipped[0]
    kept = {running.id, unallocated.id, scheduling.id, unknown}
    for instance_id in kept:
        assert [a.node for a in await db.nodes.allocations(instance_id)] == [n1]
    for instance_id in (elsewhere.id, deleted.id, failed.id, spawning.id):
        assert await db.nodes.allocations(instance_id) == []
    usage = {u.node: (u.used, u.instances) for u in await db.nodes.usages()}
    assert usage[n1] == (Resources(vcpus=4, memory_mb=2048, disk_gb=4), 4)
    assert usage[NodeName("n2")] == (Resources(), 0)
    # Healed: a second pass changes nothing.
    again = await db.nodes.heal_host(h1)
    assert (again.removed, again.created) == ((), ())
    assert await db.nodes.heal_host(HostName("nowhere")) == type(again)()


# ---- the power-state sync --------------------------------------------------------------


async def test_power_sync_records_guests_stopped_or_gone_behind_strato(
        tmp_path: Path) -> None:
    compute = {"report_interval": 0.5, "sync_power_state_interval": 0.2}
    async with running_cloud(tmp_path, fake_hosts(1), compute=compute) as h:
        stopped, vanished, busy = [await h.client.create_server(
            n, image=h.image_id, flavor=h.flavors["m1.tiny"]) for n in ("s", "v", "b")]
        for server_id in (stopped, vanished, busy):
            await h.client.wait_for_status(server_id, {"ACTIVE"})
        db, driver = h.cloud.db, h.driver("h1")
        # A task in progress owns its instance: the sync must leave this one alone.
        await db.instances.update(InstanceId(busy), {"task_state": TaskState.SPAWNING},
                                  expected_task_state=(None,))
        for server_id in (stopped, busy):
            await driver.power_off(InstanceId(server_id))
        await driver.destroy(InstanceId(vanished))

        server = await h.client.wait_for_status(stopped, {"SHUTOFF"}, timeout=10)
        assert server.vm_state == "stopped" and server.task_state is None
        shown = (await h.client.request("GET", f"/v2.1/servers/{stopped}")).json()["server"]
        assert shown["OS-EXT-STS:power_state"] == PowerState.SHUTDOWN

        async def nostate() -> bool:
            gone = await db.instances.get(InstanceId(vanished))
            return gone.power_state == PowerState.NOSTATE

        await wait_until(nostate, timeout=10)
        assert (await h.client.get_server(vanished)).status == "ACTIVE"
        await asyncio.sleep(0.5)  # a few more syncs
        untouched = await db.instances.get(InstanceId(busy))
        assert (untouched.vm_state, untouched.power_state) == (VmState.ACTIVE,
                                                               PowerState.RUNNING)
        # Once its task is over, it is synced like the others.
        await db.instances.update(InstanceId(busy), {"task_state": None},
                                  expected_task_state=(TaskState.SPAWNING,))
        assert (await h.client.wait_for_status(busy, {"SHUTOFF"}, timeout=10)).status == \
            "SHUTOFF"
