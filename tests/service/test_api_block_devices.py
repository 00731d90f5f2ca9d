"""``block_device_mapping_v2`` at server create: the image as the local root disk (what the
openstack CLI sends with ``--image``) is taken; anything needing volumes is a 400 and
creates nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strato.client import ApiError
from tests.cloud_fixtures import fake_hosts, running_cloud


def _root(image: str, **extra: Any) -> dict[str, Any]:
    return {"uuid": image, "boot_index": 0, "source_type": "image",
            "destination_type": "local", "delete_on_termination": True, **extra}


async def test_the_image_as_local_root_disk_boots_that_image(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        for image_ref in (h.image_id, ""):  # the CLI sends both; a bare mapping suffices
            resp = await h.client.request("POST", "/v2.1/servers", json={"server": {
                "name": "bdm", "imageRef": image_ref, "flavorRef": h.flavors["m1.tiny"],
                "networks": "none", "block_device_mapping_v2": [_root(h.image_id)]}})
            assert resp.status_code == 202, resp.text
            server = await h.client.wait_for_status(resp.json()["server"]["id"],
                                                    {"ACTIVE", "ERROR"})
            assert server.status == "ACTIVE"
            shown = (await h.client.request("GET", f"/v2.1/servers/{server.id}")).json()
            assert shown["server"]["image"]["id"] == h.image_id


@pytest.mark.parametrize("mapping", [
    {"source_type": "volume", "destination_type": "volume"},
    {"source_type": "blank", "destination_type": "local"},
    {"destination_type": "volume"},
    {"boot_index": 1},
    {"volume_size": 10},
    {"uuid": "not-a-uuid"},
])
async def test_mappings_needing_volumes_are_refused(tmp_path: Path,
                                                    mapping: dict[str, Any]) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        with pytest.raises(ApiError) as refused:
            await h.client.request("POST", "/v2.1/servers", json={"server": {
                "name": "bdm", "imageRef": h.image_id, "flavorRef": h.flavors["m1.tiny"],
                "networks": "none",
                "block_device_mapping_v2": [_root(h.image_id, **mapping)]}})
        assert (refused.value.status, refused.value.fault) == (400, "badRequest")
        assert await h.client.list_servers() == []


async def test_a_mapping_of_another_image_than_image_ref_is_refused(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        other = "6f1e0b7a-3c1d-4f0e-9a2b-5c6d7e8f9a0b"
        with pytest.raises(ApiError) as refused:
            await h.client.request("POST", "/v2.1/servers", json={"server": {
                "name": "bdm", "imageRef": h.image_id, "flavorRef": h.flavors["m1.tiny"],
                "networks": "none", "block_device_mapping_v2": [_root(other)]}})
        assert refused.value.status == 400 and "another image" in refused.value.message
        assert await h.client.list_servers() == []
