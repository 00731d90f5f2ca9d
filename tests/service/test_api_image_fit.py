"""POST /servers refuses images the flavor cannot hold, with Nova's messages, and writes
nothing."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TypedDict, Unpack

import pytest

from strato.domain.ids import ImageId, ProjectId, new_uuid
from strato.domain.images import Image, ImageStatus
from tests.api_fixtures import Api, api_fixture  # noqa: F401 (the fixture is found by name)

GIB = 2**30


class Sizes(TypedDict, total=False):
    """The image fields these tests vary."""

    min_ram: int
    min_disk: int
    size: int
    virtual_size: int


async def _image(api: Api, *, status: ImageStatus = ImageStatus.ACTIVE,
                 **fields: Unpack[Sizes]) -> str:
    image_id = ImageId(new_uuid())
    now = datetime.now(UTC)
    await api.db.images.create(Image(
        id=image_id, name="img", disk_format="qcow2", container_format="bare",
        visibility="public", owner=ProjectId("admin"), created_at=now, updated_at=now,
        **fields))
    if status is ImageStatus.ACTIVE:
        await api.db.images.set_status(image_id, status, size=fields.get("size", 1024),
                                       checksum="0" * 32)
    return image_id


# Flavor "1" in the fixtures: 512 MB RAM, 1 GB root disk.
@pytest.mark.parametrize(("fields", "message"), [
    ({"min_ram": 1024}, "Flavor's memory is too small for requested image."),
    ({"min_disk": 2}, f"Flavor disk is {GIB} bytes, minimum size is {2 * GIB} bytes."),
    ({"size": GIB + 1}, f"Flavor disk is {GIB} bytes, image is {GIB + 1} bytes."),
    ({"virtual_size": 10 * GIB}, f"Flavor disk is {GIB} bytes, image is {10 * GIB} bytes."),
])
async def test_image_too_big_for_the_flavor_is_a_400(api: Api, fields: Sizes,
                                                     message: str) -> None:
    image_id = await _image(api, **fields)
    response = await api.create_server(imageRef=image_id)
    assert response.status_code == 400
    assert message in response.json()["badRequest"]["message"]
    assert await api.instances() == [] and api.bus.casts == []


async def test_image_that_fits_exactly_is_accepted(api: Api) -> None:
    image_id = await _image(api, min_ram=512, min_disk=1, virtual_size=GIB)
    response = await api.create_server(imageRef=image_id)
    assert response.status_code == 202


async def test_queued_image_is_not_active(api: Api) -> None:
    image_id = await _image(api, status=ImageStatus.QUEUED)
    response = await api.create_server(imageRef=image_id)
    assert response.status_code == 400
    assert response.json()["badRequest"]["message"] == f"Image {image_id} is not active."
