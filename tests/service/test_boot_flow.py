"""The create path end to end in one process: api -> conductor -> scheduler -> compute,
on the fake driver, through the real SQLite adapter and the in-process bus."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import httpx
import pytest

from strato.client import ApiClient, ApiError
from strato.domain.ids import HostName, InstanceId
from strato.domain.resources import Resources
from tests.cloud_fixtures import fake_hosts, running_cloud, wait_until


async def test_fifty_servers_across_five_hosts_all_become_active(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(5)) as h:
        ids = await asyncio.gather(*(
            h.client.create_server(f"vm-{i}", image=h.image_id, flavor=h.flavors["m1.tiny"])
            for i in range(50)))
        servers = await asyncio.gather(*(
            h.client.wait_for_status(i, {"ACTIVE", "ERROR"}) for i in ids))
        assert {s.status for s in servers} == {"ACTIVE"}
        assert all(s.vm_state == "active" and s.task_state is None for s in servers)
        per_host = Counter(s.host for s in servers)
        assert set(per_host) == {"h1", "h2", "h3", "h4", "h5"}
        # Spread by free RAM: equal hosts end up within one instance of each other.
        assert max(per_host.values()) - min(per_host.values()) <= 1
        # Every guest exists on the host the API reports, and nowhere else.
        for host, count in per_host.items():
            assert len(await h.driver(host or "").list_instances()) == count
        usage = {u.host: u.used for u in await h.cloud.db.nodes.usages()}
        assert sum((u for u in usage.values()), Resources()) == Resources(
            vcpus=50, memory_mb=50 * 512, disk_gb=50)


async def test_build_records_its_steps_as_instance_action_events(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        resp = await h.client.request("POST", "/v2.1/servers", json={"server": {
            "name": "traced", "imageRef": h.image_id, "flavorRef": h.flavors["m1.tiny"]}})
        request_id = resp.headers["x-openstack-request-id"]
        server_id = resp.json()["server"]["id"]
        await h.client.wait_for_status(server_id, {"ACTIVE"})
        # The admin token acts for the bootstrap's admin user and project.
        shown = (await h.client.request("GET", f"/v2.1/servers/{server_id}")).json()["server"]
        admin = await h.cloud.db.identity.user_by_name("admin")
        assert (shown["user_id"], shown["tenant_id"]) == (admin.id, admin.default_project_id)
        actions = (await h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions")).json()["instanceActions"]
        assert [(a["action"], a["request_id"]) for a in actions] == [("create", request_id)]
        events: list[tuple[str, str]] = []

        async def recorded() -> bool:
            # The compute's steps arrive in a cast of their own, by the build's end.
            nonlocal events
            action = (await h.client.request(
                "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}")
            ).json()["instanceAction"]
            events = [(e["event"], e["result"]) for e in action["events"]]
            return len(events) == 8 and all(result for _, result in events)

        await wait_until(recorded, timeout=10)
        assert events == [("conductor_schedule_and_build_instances", "Success"),
                          ("compute__do_build_and_run_instance", "Success"),
                          ("compute_claim_resources", "Success"),
                          ("compute_allocate_networks", "Success"),
                          ("compute_prepare_image", "Success"),
                          ("compute_plug_vifs", "Success"),
                          ("compute_spawn", "Success"),
                          ("compute_boot", "Success")]


async def test_full_cloud_puts_the_server_in_error_with_the_reason(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2, memory_mb=1024)) as h:
        server_id = await h.client.create_server("too-big", image=h.image_id,
                                                 flavor=h.flavors["m1.small"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ERROR" and server.task_state is None
        assert server.fault is not None and server.fault["code"] == 500
        # The admin client sees the host-by-host details too.
        assert server.fault["message"] == (
            "No valid host was found. 2 hosts: 2 removed by RamFilter "
            "(free RAM 1536 MB < 2048 MB requested).")
        assert "h1 (node h1): RamFilter: free RAM 1536 MB < 2048 MB requested" in \
            server.fault["details"]
        assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())


async def test_batch_that_does_not_fit_fails_whole_and_holds_nothing(tmp_path: Path) -> None:
    # 1000 MB at the default RAM ratio 1.5 holds two m1.tiny (512 MB), not three.
    async with running_cloud(tmp_path, fake_hosts(1, memory_mb=1000)) as h:
        await h.client.request("POST", "/v2.1/servers", json={"server": {
            "name": "batch", "imageRef": h.image_id, "flavorRef": h.flavors["m1.tiny"],
            "min_count": 3, "max_count": 3}})
        servers = await h.client.list_servers(name="^batch")
        assert len(servers) == 3
        done = await asyncio.gather(*(h.client.wait_for_status(s.id, {"ACTIVE", "ERROR"})
                                      for s in servers))
        assert {s.status for s in done} == {"ERROR"}
        assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())


async def test_delete_while_spawning_leaves_no_guest_and_no_allocation(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1, spawn_delay=1.0)) as h:
        server_id = await h.client.create_server("doomed", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])

        async def spawning() -> bool:
            return (await h.client.get_server(server_id)).task_state == "spawning"

        await wait_until(spawning)
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
        await asyncio.sleep(1.5)  # let the spawn finish: it must not resurrect the server
        assert (await h.client.list_servers()) == []
        assert await h.driver("h1").list_instances() == []
        assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())
        stored = await h.cloud.db.instances.get(InstanceId(server_id), include_deleted=True)
        assert stored.deleted and stored.vm_state == "deleted"


async def test_delete_right_after_create_races_the_scheduler_cleanly(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2, spawn_delay=0.2)) as h:
        ids = await asyncio.gather(*(
            h.client.create_server(f"race-{i}", image=h.image_id, flavor=h.flavors["m1.tiny"])
            for i in range(10)))
        await asyncio.gather(*(h.client.delete_server(i) for i in ids))
        await asyncio.gather(*(h.client.wait_for_status(i, {"DELETED"}) for i in ids))
        await asyncio.sleep(0.5)
        assert await h.client.list_servers() == []
        for host in ("h1", "h2"):
            assert await h.driver(host).list_instances() == []
        assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())


async def test_retryable_spawn_failure_reschedules_to_another_host(tmp_path: Path) -> None:
    hosts = fake_hosts(1, prefix="bad", fail_names=frozenset({"flaky"})) + fake_hosts(1)
    async with running_cloud(tmp_path, hosts) as h:
        server_id = await h.client.create_server("flaky", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"],
                                                 availability_zone="nova")
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        # Either the scheduler chose h1 at once, or bad1 failed and it was rescheduled.
        assert server.status == "ACTIVE" and server.host == "h1"
        assert await h.driver("bad1").list_instances() == []
        usage = {u.host: u.used for u in await h.cloud.db.nodes.usages()}
        assert usage[HostName("bad1")] == Resources() and usage[HostName("h1")].memory_mb == 512


async def test_reschedule_gives_up_after_max_attempts(tmp_path: Path) -> None:
    hosts = fake_hosts(4, fail_names=frozenset({"cursed"}))
    async with running_cloud(tmp_path, hosts) as h:
        server_id = await h.client.create_server("cursed", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ERROR" and server.fault is not None
        assert "Exceeded maximum number of retries (3)" in server.fault["message"]
        spawned = sum(h.driver(f"h{i}").statistics().failed for i in range(1, 5))
        assert spawned == 3
        assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())
        # The retry history: one failed build event per host tried, each naming its host.
        [create] = (await h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions")).json()["instanceActions"]
        action = (await h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{create['request_id']}",
            headers={"X-Strato-Action-Extras": "1"})).json()["instanceAction"]
        builds = [e for e in action["events"]
                  if e["event"] == "compute__do_build_and_run_instance"]
        assert [e["result"] for e in builds] == ["Error"] * 3
        assert len({e["host"] for e in builds}) == 3


async def test_non_retryable_failure_is_error_with_fault_at_once(tmp_path: Path) -> None:
    hosts = fake_hosts(3, fail_names=frozenset({"broken"}), fail_retryable=False)
    async with running_cloud(tmp_path, hosts) as h:
        server_id = await h.client.create_server("broken", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ERROR"
        assert server.fault is not None and "injected spawn failure" in server.fault["message"]
        assert sum(h.driver(f"h{i}").statistics().failed for i in range(1, 4)) == 1
        assert all(u.used == Resources() for u in await h.cloud.db.nodes.usages())


@pytest.mark.parametrize("builds", [1, 3])
async def test_max_concurrent_builds_bounds_spawns_per_host(tmp_path: Path,
                                                            builds: int) -> None:
    async with running_cloud(tmp_path, fake_hosts(1, spawn_delay=0.3),
                             compute={"report_interval": 0.5,
                                      "max_concurrent_builds": builds}) as h:
        driver = h.driver("h1")
        peak = 0

        async def watch() -> None:
            nonlocal peak
            while True:
                peak = max(peak, driver.statistics().spawned - driver.statistics().running)
                await asyncio.sleep(0.01)

        ids = [await h.client.create_server(f"c{i}", image=h.image_id,
                                            flavor=h.flavors["m1.tiny"]) for i in range(6)]
        async with asyncio.TaskGroup() as tg:
            watcher = tg.create_task(watch())
            await asyncio.gather(*(h.client.wait_for_status(i, {"ACTIVE"}) for i in ids))
            watcher.cancel()
        assert peak == builds


async def test_service_token_is_a_private_random_secret(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        # No service token configured: a random one was made once, readable by root only.
        secret = tmp_path / "service-token"
        assert secret.stat().st_mode & 0o777 == 0o600
        token = secret.read_text().strip()
        assert len(token) >= 40
        service = ApiClient("http://strato", token,
                                transport=httpx.ASGITransport(app=h.cloud.app))
        async with service:
            # It reads images (what computes need) and is no admin.
            resp = await service.request("GET", f"/image/v2/images/{h.image_id}")
            assert resp.json()["id"] == h.image_id
            with pytest.raises(ApiError) as refused:
                await service.request("GET", "/v2.1/os-hypervisors")
            assert refused.value.status == 403
        # Neither a made-up token nor the well-known defaults of earlier versions pass.
        for guess in ("not-a-token", "strato-service", "strato-admin"):
            stranger = ApiClient("http://strato", guess,
                                     transport=httpx.ASGITransport(app=h.cloud.app))
            async with stranger:
                with pytest.raises(ApiError) as exc:
                    await stranger.request("GET", "/v2.1/os-hypervisors")
                assert exc.value.status == 401
