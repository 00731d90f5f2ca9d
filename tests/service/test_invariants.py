"""The teardown check itself: it must catch books that do not balance."""

from __future__ import annotations

from pathlib import Path

import pytest

from strato.domain.ids import HostName, InstanceId, NodeName
from strato.domain.requests import Destination
from strato.domain.resources import Resources
from tests.cloud_fixtures import fake_hosts, running_cloud
from tests.invariants import assert_books_balance


async def test_an_active_server_without_its_allocation_is_caught(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        server_id = await h.client.create_server("s", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        await h.client.wait_for_status(server_id, {"ACTIVE"})
        await assert_books_balance(h.cloud.db)
        await h.cloud.db.nodes.release(InstanceId(server_id))  # drift behind strato's back
        with pytest.raises(AssertionError, match="not one allocation on its host"):
            await assert_books_balance(h.cloud.db)
        # Put it back, or the fixture's own teardown check fails.
        server = await h.client.get_server(server_id)
        assert server.host
        await h.cloud.db.nodes.claim(InstanceId(server_id),
                                     Destination(host=HostName(server.host),
                                                 node=NodeName(server.host)),
                                     Resources(vcpus=1, memory_mb=512, disk_gb=1))


async def test_an_allocation_of_a_deleted_server_is_caught(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        server_id = await h.client.create_server("s", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE"})
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
        assert server.host
        await h.cloud.db.nodes.claim(InstanceId(server_id),
                                     Destination(host=HostName(server.host),
                                                 node=NodeName(server.host)),
                                     Resources(vcpus=1, memory_mb=512, disk_gb=1))
        with pytest.raises(AssertionError, match="should hold none"):
            await assert_books_balance(h.cloud.db)
        await h.cloud.db.nodes.release(InstanceId(server_id))
