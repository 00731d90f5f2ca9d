"""200 creates at once against hosts with room for exactly 50: exactly 50 become ACTIVE,
the other 150 go to ERROR with an explanation, and no node's usage ever goes past its
limit — neither in the database nor in a compute's own tracker nor in its driver."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strato.domain.ids import NodeName
from tests.cloud_fixtures import fake_hosts, running_cloud

HOSTS = 5
PER_HOST = 10
# m1.tiny is 512 MB; at the default RAM ratio 1.5, floor(3414 * 1.5) = 5121 MB holds 10.
MEMORY_MB = 3414
CREATES = 200


async def test_200_concurrent_creates_fill_exactly_the_room_for_50(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(HOSTS, memory_mb=MEMORY_MB, vcpus=64),
                             rpc={"call_timeout": 120.0}) as h:
        overdrawn: list[str] = []
        samples = 0
        done = asyncio.Event()

        async def watch() -> None:
            # "Usage never above capacity at any point": sample every view of usage
            # while the creates run, and record any sample past a limit.
            nonlocal samples
            while not done.is_set():
                for usage in await h.cloud.db.nodes.usages():
                    limit = usage.capacity.limit
                    if (usage.used.memory_mb > limit.memory_mb or usage.instances > PER_HOST):
                        overdrawn.append(f"db {usage.host}: {usage.used}")
                for host, compute in h.cloud.computes.items():
                    held = compute.tracker.usage(NodeName(host))
                    if held.instances > PER_HOST:
                        overdrawn.append(f"tracker {host}: {held.instances}")
                    running = h.driver(host).statistics().running
                    if running > PER_HOST:
                        overdrawn.append(f"driver {host}: {running} running")
                samples += 1
                await asyncio.sleep(0.01)

        watcher = asyncio.create_task(watch())
        ids = await asyncio.gather(*(
            h.client.create_server(f"race-{i}", image=h.image_id,
                                   flavor=h.flavors["m1.tiny"])
            for i in range(CREATES)))
        # One listing per poll: 200 pollers of their own would load this process more
        # than the creates do.
        async with asyncio.timeout(300):
            while True:
                servers = await h.client.list_servers(name="^race-")
                if len(servers) == CREATES and all(s.status != "BUILD" for s in servers):
                    break
                await asyncio.sleep(0.25)
        assert {s.id for s in servers} == set(ids)
        done.set()
        await watcher

        assert overdrawn == [] and samples > 0
        active = [s for s in servers if s.status == "ACTIVE"]
        failed = [s for s in servers if s.status == "ERROR"]
        assert (len(active), len(failed)) == (HOSTS * PER_HOST, CREATES - HOSTS * PER_HOST)
        per_host = {f"h{i + 1}": 0 for i in range(HOSTS)}
        for server in active:
            assert server.host is not None
            per_host[server.host] += 1
        assert set(per_host.values()) == {PER_HOST}
        for server in failed:
            assert server.fault is not None
            assert server.fault["message"] == (
                f"No valid host was found. {HOSTS} hosts: {HOSTS} removed by RamFilter "
                "(free RAM 1 MB < 512 MB requested).")
        for usage in await h.cloud.db.nodes.usages():
            assert usage.instances == PER_HOST
