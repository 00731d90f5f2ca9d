"""A reply lost on the bus is not a failed build. When the broker restarts between the
conductor storing a change and its answer reaching the compute, the compute sees
``Unavailable`` for a change that landed. For the last step of a build (the move to
ACTIVE, made while the guest already runs) the compute finds out which it was: the server
stays ACTIVE with its guest, ports and allocation (the fixture checks the books balance at
teardown). A move that never landed is tried again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strato.domain.ids import InstanceId
from strato.domain.instances import VmState
from strato.rpc.bus import Target
from strato.rpc.contracts.conductor import UpdateInstance
from tests.cloud_fixtures import Harness, fake_hosts
from tests.fakes.lossy_bus import lossy_cloud


def _to_active(_target: Target, message: object) -> bool:
    return (isinstance(message, UpdateInstance)
            and message.changes.get("vm_state") == VmState.ACTIVE)


async def _build_done(h: Harness) -> None:
    """Until no build holds an instance's lock on the host."""
    async with asyncio.timeout(30):
        while len(h.cloud.computes["h1"].locks):
            await asyncio.sleep(0.02)


async def test_lost_reply_to_the_move_to_active_keeps_the_server(tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(1)) as (h, bus):
        bus.lose_reply(_to_active, times=1)
        server_id = await h.client.create_server("lost", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=30)
        # The compute tries again, finds the move landed and keeps what it built.
        await _build_done(h)
        assert [m.kind for m in bus.dropped] == ["reply"]
        assert len([s for s in bus.finished if _to_active(s.target, s.message)]) == 2
        server = await h.client.get_server(server_id)
        assert server.status == "ACTIVE", server
        iid = InstanceId(server_id)
        assert [a.host for a in await h.cloud.db.nodes.allocations(iid)] == ["h1"]
        assert h.cloud.computes["h1"].tracker.holds(iid)
        assert (await h.cloud.computes["h1"].driver.get_info(iid)).power_state.value == 1


async def test_unreachable_conductor_at_the_move_to_active_is_tried_again(
        tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(1)) as (h, bus):
        bus.drop(_to_active, times=2)
        server_id = await h.client.create_server("late", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=30)
        assert [m.kind for m in bus.dropped] == ["call", "call"]
        assert server.status == "ACTIVE", server
        assert h.cloud.computes["h1"].tracker.holds(InstanceId(server_id))
