"""The compute claims the driver's per-instance overhead on top of the flavor: a host
whose database view says "fits" still refuses a guest its emulator would not fit."""

from __future__ import annotations

from pathlib import Path

from strato.domain.resources import Resources
from tests.cloud_fixtures import fake_hosts, running_cloud


async def test_overhead_counts_in_the_hosts_own_claim(tmp_path: Path) -> None:
    # A 1024 MB host (1536 MB with the RAM ratio of 1.5) and 300 MB overhead per guest.
    hosts = fake_hosts(1, memory_mb=1024, overhead=Resources(memory_mb=300))
    async with running_cloud(tmp_path, hosts) as h:
        ids = [await h.client.create_server(f"s{i}", image=h.image_id,
                                            flavor=h.flavors["m1.tiny"]) for i in range(2)]
        first = await h.client.wait_for_status(ids[0], {"ACTIVE", "ERROR"})
        second = await h.client.wait_for_status(ids[1], {"ACTIVE", "ERROR"})
        # The scheduler placed both (2 x 512 = 1024 <= 1536); the host refused the
        # second (2 x 812 = 1624 > 1536) and, with no other host, it failed.
        assert sorted([first.status, second.status]) == ["ACTIVE", "ERROR"]
        failed = first if first.status == "ERROR" else second
        resp = await h.client.request("GET", f"/v2.1/servers/{failed.id}")
        assert "insufficient resources" in resp.json()["server"]["fault"]["message"] or \
            "No valid host" in resp.json()["server"]["fault"]["message"]
