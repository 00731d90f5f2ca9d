"""Placement through the whole create path (API -> conductor -> scheduler -> compute, on
the fake driver): availability zones, forced hosts and nodes, multi-create with
min_count, reschedules onto the alternates, builds that fail everywhere, the
build-failure weigher, and the capability / image-property filters.

Each test asserts outcomes: where the servers landed, their zone, their faults (the
scheduler's explanation, filter by filter), the instance-action events, and that no
allocation outlives a failed build.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from strato.api import StaticTokenAuth, create_app
from strato.bootstrap import ComputeSpec
from strato.client import ApiError, ServerView
from strato.domain.ids import FlavorId, HostName, InstanceId
from strato.domain.resources import Flavor, Resources
from strato.rpc.bus import Target
from strato.rpc.contracts.scheduler import SelectDestinations
from strato.virt.fake import FakeDriver, FakeDriverConfig
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until
from tests.fakes.lossy_bus import lossy_cloud

MEMBER = "member-token"  # a member (not an admin) of project-m

# Every decision reads the node rows that changed (a failed build's count included).
FRESH = {"scheduler": {"host_refresh_interval": 0}}


def _host(name: str, *, memory_mb: int = 8192, **config: Any) -> ComputeSpec:
    """One fake compute host of its own size and failure behaviour."""
    return ComputeSpec(name, FakeDriver(FakeDriverConfig(
        host=HostName(name), capacity=Resources(vcpus=8, memory_mb=memory_mb, disk_gb=200),
        **config)))


async def _boot(h: Harness, name: str, *, flavor: str = "m1.tiny", image: str | None = None,
                **extra: Any) -> ServerView:
    """Create a server and wait until it is ACTIVE or ERROR."""
    server_id = await h.client.create_server(name, image=image or h.image_id,
                                             flavor=h.flavors.get(flavor, flavor), **extra)
    return await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})


async def _shown(h: Harness, server_id: str) -> dict[str, Any]:
    resp = await h.client.request("GET", f"/v2.1/servers/{server_id}")
    server: dict[str, Any] = resp.json()["server"]
    return server


async def _stored_zone(h: Harness, server_id: str) -> str | None:
    return (await h.cloud.db.instances.get(InstanceId(server_id))).availability_zone


async def _create_events(h: Harness, server_id: str) -> list[dict[str, Any]]:
    """The events of the server's create action, oldest first."""
    [create] = (await h.client.request(
        "GET", f"/v2.1/servers/{server_id}/os-instance-actions")).json()["instanceActions"]
    action = (await h.client.request(
        "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{create['request_id']}",
        headers={"X-Strato-Action-Extras": "1"})).json()["instanceAction"]
    events: list[dict[str, Any]] = action["events"]
    return events


async def _usage(h: Harness) -> dict[str, Resources]:
    return {u.host: u.used for u in await h.cloud.db.nodes.usages()}


async def _nothing_allocated(h: Harness) -> None:
    async def empty() -> bool:
        return all(used == Resources() for used in (await _usage(h)).values())

    await wait_until(empty, timeout=10)


async def _put_service(h: Harness, action: str, host: str) -> None:
    await h.client.request("PUT", f"/v2.1/os-services/{action}",
                           json={"host": host, "binary": "nova-compute"})


@asynccontextmanager
async def _member(h: Harness) -> AsyncIterator[httpx.AsyncClient]:
    """A client acting as a project member (no admin role), on the same cloud."""
    deps = cast(Any, h.cloud.app).state.deps
    app = create_app(replace(deps, auth=StaticTokenAuth("", tokens={
        MEMBER: ("member", "project-m", ("member",))})), deps.settings)
    async with httpx.AsyncClient(base_url="http://strato", headers={"X-Auth-Token": MEMBER},
                                 transport=httpx.ASGITransport(app=app)) as client:
        yield client


# --- availability zones ----------------------------------------------------------------

async def test_availability_zones_steer_and_stamp_the_instances(tmp_path: Path) -> None:
    # h2 is the biggest host: without a zone filter it would win every choice.
    hosts = [_host("h1"), _host("h2", memory_mb=16384), _host("h3")]
    async with running_cloud(tmp_path, hosts) as h:
        aggregate = (await h.client.request("POST", "/v2.1/os-aggregates", json={
            "aggregate": {"name": "az-a", "availability_zone": "zone-a"}})).json()["aggregate"]
        await h.client.request("POST", f"/v2.1/os-aggregates/{aggregate['id']}/action",
                               json={"add_host": {"host": "h2"}})
        zones = (await h.client.request("GET", "/v2.1/os-availability-zone")).json()
        assert {z["zoneName"]: z["zoneState"]["available"]
                for z in zones["availabilityZoneInfo"]} == {"zone-a": True, "nova": True}

        # Into zone-a: its only host.
        server = await _boot(h, "in-a", availability_zone="zone-a")
        assert (server.status, server.host) == ("ACTIVE", "h2")
        assert (await _shown(h, server.id))["OS-EXT-AZ:availability_zone"] == "zone-a"

        # Into nova: never h2, though h2 has the most room.
        for i in range(2):
            server = await _boot(h, f"in-nova-{i}", availability_zone="nova")
            assert server.status == "ACTIVE" and server.host in {"h1", "h3"}
            assert await _stored_zone(h, server.id) == "nova"

        # No zone asked: the instance takes its host's zone once scheduled (h2 is still
        # the emptiest, so zone-a here)...
        server = await _boot(h, "anywhere")
        assert (server.status, server.host) == ("ACTIVE", "h2")
        assert await _stored_zone(h, server.id) == "zone-a"
        assert (await _shown(h, server.id))["OS-EXT-AZ:availability_zone"] == "zone-a"

        # An unknown zone is refused up front; nothing is created.
        before = len(await h.client.list_servers())
        with pytest.raises(ApiError) as exc:
            await h.client.create_server("lost", image=h.image_id,
                                         flavor=h.flavors["m1.tiny"],
                                         availability_zone="zone-b")
        assert exc.value.status == 400
        assert exc.value.message == "The requested availability zone is not available"
        assert len(await h.client.list_servers()) == before

        # ...and with h2 disabled, a zone-less boot lands in nova and is stamped so
        # (stored: the view would show "nova" for a host without a zone anyway).
        await _put_service(h, "disable", "h2")
        zones = (await h.client.request("GET", "/v2.1/os-availability-zone")).json()
        assert {z["zoneName"]: z["zoneState"]["available"]
                for z in zones["availabilityZoneInfo"]} == {"zone-a": False, "nova": True}
        server = await _boot(h, "anywhere-else")
        assert server.status == "ACTIVE" and server.host in {"h1", "h3"}
        assert await _stored_zone(h, server.id) == "nova"

        # zone-a has no enabled host now. The API still takes the request (Nova answers
        # 400 "The requested availability zone is not available" for a zone without an
        # enabled service); the scheduler refuses it, and the fault says which filter
        # removed what.
        server = await _boot(h, "stranded", availability_zone="zone-a")
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 3 hosts: 1 removed by ComputeFilter (compute service "
            "disabled (no reason given)), 2 removed by AvailabilityZoneFilter (in "
            "availability zone 'nova', not 'zone-a').")
        details = server.fault["details"]
        assert "h2 (node h2): ComputeFilter: compute service disabled" in details
        assert "h1 (node h1): AvailabilityZoneFilter: in availability zone 'nova', " \
            "not 'zone-a'" in details
        assert (await h.cloud.db.nodes.allocations(InstanceId(server.id))) == []
        await _put_service(h, "enable", "h2")


# --- forced hosts and nodes -------------------------------------------------------------

async def test_forced_host_and_node(tmp_path: Path) -> None:
    # h1 is the best host by weight; h2 holds 1536 MB (ratio 1.5), too little for m1.small.
    hosts = [_host("h1", memory_mb=16384), _host("h2", memory_mb=1024), _host("h3")]
    async with running_cloud(tmp_path, hosts) as h:
        server = await _boot(h, "forced", availability_zone="nova:h3")
        assert (server.status, server.host) == ("ACTIVE", "h3")

        # A forced host skips the policy filters (a disabled compute takes it, as Nova)...
        await _put_service(h, "disable", "h3")
        server = await _boot(h, "forced-disabled", availability_zone="nova:h3")
        assert (server.status, server.host) == ("ACTIVE", "h3")
        await _put_service(h, "enable", "h3")

        # ...but not the resource fit.
        server = await _boot(h, "forced-full", flavor="m1.small", availability_zone="nova:h2")
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 1 host: 1 removed by RamFilter "
            "(free RAM 1536 MB < 2048 MB requested).")
        assert (await h.cloud.db.nodes.allocations(InstanceId(server.id))) == []

        # Forcing a node: "::node" and "zone::node" (a fake host's node is named after it).
        server = await _boot(h, "node-forced", availability_zone="::h3")
        assert (server.status, server.host) == ("ACTIVE", "h3")
        server = await _boot(h, "zone-node-forced", availability_zone="nova::h2")
        assert (server.status, server.host) == ("ACTIVE", "h2")

        before = len(await h.client.list_servers(all_tenants=1))
        for where, message in [("nova:nope", "Compute host nope could not be found."),
                               ("::nope", "Compute host node */nope could not be found."),
                               ("nova:h1:h2", "Compute host node h1/h2 could not be found.")]:
            with pytest.raises(ApiError) as exc:
                await h.client.create_server("nowhere", image=h.image_id,
                                             flavor=h.flavors["m1.tiny"],
                                             availability_zone=where)
            assert (exc.value.status, exc.value.message) == (400, message), where

        # Forcing is for admins only.
        image = await h.client.create_image("public", b"p" * 4096, disk_format="raw",
                                            visibility="public")
        async with _member(h) as member:
            for where in ("nova:h3", "::h3", ":h3"):
                resp = await member.post("/v2.1/servers", json={"server": {
                    "name": "sneaky", "imageRef": image, "flavorRef": h.flavors["m1.tiny"],
                    "availability_zone": where}})
                assert resp.status_code == 403, resp.text
                assert "os_compute_api:servers:create:forced_host" in \
                    resp.json()["forbidden"]["message"]
            # The same member may still name a zone.
            resp = await member.post("/v2.1/servers", json={"server": {
                "name": "allowed", "imageRef": image, "flavorRef": h.flavors["m1.tiny"],
                "availability_zone": "nova"}})
            assert resp.status_code == 202, resp.text
            allowed = await h.client.wait_for_status(resp.json()["server"]["id"],
                                                     {"ACTIVE", "ERROR"})
            assert allowed.status == "ACTIVE"
        assert len(await h.client.list_servers(all_tenants=1)) == before + 1


# --- multi-create ------------------------------------------------------------------------

async def _batch(h: Harness, name: str, min_count: int, max_count: int) -> list[ServerView]:
    resp = await h.client.request("POST", "/v2.1/servers", json={"server": {
        "name": name, "imageRef": h.image_id, "flavorRef": h.flavors["m1.tiny"],
        "min_count": min_count, "max_count": max_count}})
    assert resp.status_code == 202
    servers = await h.client.list_servers(name=f"^{name}-")
    assert len(servers) == max_count
    done = await asyncio.gather(*(h.client.wait_for_status(s.id, {"ACTIVE", "ERROR"})
                                  for s in servers))
    return sorted(done, key=lambda s: s.name)


async def _delete_all(h: Harness, servers: list[ServerView]) -> None:
    await asyncio.gather(*(h.client.delete_server(s.id) for s in servers))
    await asyncio.gather(*(h.client.wait_for_status(s.id, {"DELETED"}) for s in servers))
    await _nothing_allocated(h)


async def test_multi_create_places_between_min_and_max_count(tmp_path: Path) -> None:
    # Three hosts with 1 GB of disk each: room for exactly three m1.tiny in all.
    async with running_cloud(tmp_path, fake_hosts(3, disk_gb=1)) as h:
        servers = await _batch(h, "some", 2, 5)
        active = [s for s in servers if s.status == "ACTIVE"]
        failed = [s for s in servers if s.status == "ERROR"]
        assert len(active) == 3 and len(failed) == 2
        assert sorted(s.host or "" for s in active) == ["h1", "h2", "h3"]
        for server in failed:
            assert server.host is None and server.fault is not None
            assert server.fault["message"] == (
                "No valid host was found. 3 hosts: 3 removed by DiskFilter "
                "(free disk 0 GB < 1 GB requested).")
        await _delete_all(h, servers)

        # At least four asked, only three fit: the whole batch fails, holding nothing.
        servers = await _batch(h, "many", 4, 5)
        assert {s.status for s in servers} == {"ERROR"}
        for server in servers:
            assert server.fault is not None
            assert "Only 3 of the 5 instances requested could be placed " \
                "(at least 4 required)." in server.fault["message"]
            assert (await h.cloud.db.nodes.allocations(InstanceId(server.id))) == []
        assert all(used == Resources() for used in (await _usage(h)).values())
        # Nothing was built for it: the three spawns are the first batch's.
        assert sum(h.driver(f"h{i}").statistics().spawned for i in (1, 2, 3)) == 3
        await _delete_all(h, servers)

        # Exactly as many as fit.
        servers = await _batch(h, "exact", 3, 3)
        assert [s.status for s in servers] == ["ACTIVE"] * 3
        assert sorted(s.host or "" for s in servers) == ["h1", "h2", "h3"]


# --- reschedules onto the alternates, and the build-failure weigher ----------------------

async def test_failed_build_moves_to_an_alternate_and_the_host_is_avoided_after(
        tmp_path: Path) -> None:
    # h1 has the most RAM (the scheduler's first choice) and fails every spawn, retryably.
    hosts = [_host("h1", memory_mb=16384, fail_every=1), _host("h2"), _host("h3")]
    async with lossy_cloud(tmp_path, hosts, **FRESH) as (h, bus):
        # Loses nothing: only watches every SelectDestinations call to the scheduler.
        asked: list[SelectDestinations] = []

        def watch(target: Target, message: object) -> bool:
            del target
            if isinstance(message, SelectDestinations):
                asked.append(message)
            return False

        bus.drop(watch)

        server = await _boot(h, "first")
        # h1 failed it; the conductor took the next alternate (h2 and h3 tie: h2 by name).
        assert (server.status, server.host) == ("ACTIVE", "h2")
        assert h.driver("h1").statistics().failed == 1
        assert await h.driver("h1").list_instances() == []
        events = await _create_events(h, server.id)
        assert [(e["event"], e["result"], e.get("host")) for e in events
                if e["event"] == "compute__do_build_and_run_instance"] == [
            ("compute__do_build_and_run_instance", "Error", "h1"),
            ("compute__do_build_and_run_instance", "Success", "h2")]
        # The conductor ran twice for it (the build, then the reschedule), both fine...
        assert [e["result"] for e in events
                if e["event"] == "conductor_schedule_and_build_instances"] == ["Success"] * 2
        # ...but asked the scheduler only once: the reschedule claimed an alternate.
        assert [[r.instance_id for r in m.requests] for m in asked] == [[server.id]]
        assert (await _usage(h))["h1"] == Resources()

        records = {n.capacity.host: n.failed_builds
                   for n in (await h.cloud.db.nodes.changes(None)).nodes}
        assert records == {"h1": 1, "h2": 0, "h3": 0}

        # h1 still has the most free RAM, but its failed build puts it last.
        server = await _boot(h, "second")
        assert (server.status, server.host) == ("ACTIVE", "h3")
        assert h.driver("h1").statistics().spawned == 1
        assert len(asked) == 2

        async def built_cleanly() -> bool:
            # The scheduling, the build and its six steps (they come in a cast of their own).
            results = [e["result"] for e in await _create_events(h, server.id)]
            return results == ["Success"] * 8

        await wait_until(built_cleanly, timeout=10)


async def test_build_failing_on_every_host_gives_up_after_max_attempts(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(3, fail_every=1)) as h:
        server = await _boot(h, "doomed")
        assert server.status == "ERROR" and server.host is None
        assert server.fault is not None
        message = server.fault["message"]
        assert message.startswith("Exceeded maximum number of retries (3). Exhausted all "
                                  "hosts available for retrying build failures for "
                                  f"instance {server.id}. Last error: injected spawn "
                                  "failure of doomed on h")
        builds = [e for e in await _create_events(h, server.id)
                  if e["event"] == "compute__do_build_and_run_instance"]
        assert [e["result"] for e in builds] == ["Error"] * 3
        # Each host tried once (first choice, then the two alternates in turn).
        tried = [e["host"] for e in builds]
        assert sorted(tried) == ["h1", "h2", "h3"]
        assert message.endswith(f"on {tried[-1]}")
        assert [h.driver(f"h{i}").statistics().failed for i in (1, 2, 3)] == [1, 1, 1]
        assert (await h.cloud.db.nodes.allocations(InstanceId(server.id))) == []
        assert all(used == Resources() for used in (await _usage(h)).values())
        records = {n.capacity.host: n.failed_builds
                   for n in (await h.cloud.db.nodes.changes(None)).nodes}
        assert records == {"h1": 1, "h2": 1, "h3": 1}


# --- capabilities and image properties ----------------------------------------------------

async def test_capabilities_and_image_properties_filters(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        for flavor_id, specs in [("arm", {"capabilities:cpu_info:arch": "aarch64"}),
                                 ("x86", {"capabilities:cpu_info:arch": "x86_64"}),
                                 ("fakehv", {"capabilities:hypervisor_type": "fake"}),
                                 ("kvm", {"hypervisor_type": "QEMU"})]:
            await h.cloud.db.flavors.create(Flavor(
                id=FlavorId(flavor_id), name=f"tiny.{flavor_id}", vcpus=1, memory_mb=512,
                root_gb=1, extra_specs=specs))

        server = await _boot(h, "arm", flavor="arm")
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 2 hosts: 2 removed by ComputeCapabilitiesFilter "
            "(capabilities:cpu_info:arch: host has x86_64, flavor wants aarch64).")
        server = await _boot(h, "kvm", flavor="kvm")  # the unscoped spelling counts too
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 2 hosts: 2 removed by ComputeCapabilitiesFilter "
            "(hypervisor_type: host has fake, flavor wants QEMU).")
        for flavor in ("x86", "fakehv"):
            assert (await _boot(h, flavor, flavor=flavor)).status == "ACTIVE"

        arm_image = await h.client.create_image("arm-image", b"a" * 4096, disk_format="raw",
                                                hw_architecture="aarch64")
        server = await _boot(h, "arm-image", image=arm_image)
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 2 hosts: 2 removed by ImagePropertiesFilter "
            "(image wants arch=aarch64; host runs x86_64/fake/hvm).")
        assert "h1 (node h1): ImagePropertiesFilter: image wants arch=aarch64" in \
            server.fault["details"]
        x86_image = await h.client.create_image("x86-image", b"x" * 4096, disk_format="raw",
                                                architecture="amd64", hw_vm_mode="hvm")
        assert (await _boot(h, "x86-image", image=x86_image)).status == "ACTIVE"
        assert all(used.memory_mb in (0, 512, 1024) for used in (await _usage(h)).values())
        assert sum(used.memory_mb for used in (await _usage(h)).values()) == 3 * 512
