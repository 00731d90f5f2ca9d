"""Issue 15, images: a boot's kernel and ramdisk are checked with the user's own rights;
the Image API refuses non-UUID image references; uploads are bounded by the image size
cap and the project's image storage quota (413, Glance's format, nothing kept); an image
store is private (0700/0600) whatever the umask; a DELETE removes a dead upload's
temporary file."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest

from strato.config import ApiSettings
from strato.domain.ids import ImageId, ProjectId, new_uuid
from strato.domain.images import Image, ImageStatus
from strato.rpc.contracts.conductor import BuildInstances
from tests.api_fixtures import (
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_images import IMAGES, MIB, OCTETS, create, patch, show, upload
from tests.service.test_api_servers import place


async def _stored_image(api: Api, *, owner: str, visibility: str = "private",
                        status: ImageStatus = ImageStatus.ACTIVE,
                        **properties: str) -> str:
    """An image written straight to the database (as any API version may have left it)."""
    image_id = ImageId(new_uuid())
    now = datetime.now(UTC)
    await api.db.images.create(Image(
        id=image_id, name="img", disk_format="qcow2", container_format="bare",
        visibility=visibility, owner=ProjectId(owner), created_at=now, updated_at=now,
        properties=dict(properties)))
    if status is not ImageStatus.QUEUED:
        await api.db.images.set_status(image_id, status, size=1024, checksum="0" * 32)
    return image_id


def _boot_requests(api: Api) -> list[Any]:
    return [r for cast in api.bus.casts if isinstance(cast.message, BuildInstances)
            for r in cast.message.requests]


async def _assert_refused(api: Api, image_id: str, message: str) -> None:
    response = await api.create_server(imageRef=image_id)
    assert response.status_code == 400, response.text
    assert message in response.json()["badRequest"]["message"]
    assert await api.instances() == [] and _boot_requests(api) == []


# ---- kernel_id / ramdisk_id ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["kernel_id", "ramdisk_id"])
async def test_another_projects_private_image_is_no_kernel_or_ramdisk(api: Api,
                                                                      kind: str) -> None:
    secret = await _stored_image(api, owner="project-b")  # bob's, private
    ami = await _stored_image(api, owner="project-a", status=ImageStatus.ACTIVE,
                              **{kind: secret})
    await _assert_refused(api, ami, f"Image {secret} could not be found.")


async def test_a_kernel_shared_but_not_with_the_user_is_refused(api: Api) -> None:
    shared = await _stored_image(api, owner="project-b", visibility="shared")
    ami = await _stored_image(api, owner="project-a", kernel_id=shared)
    await _assert_refused(api, ami, f"Image {shared} could not be found.")


@pytest.mark.parametrize("ref", ["../x?y", "vmlinuz", "1" * 40])
async def test_a_kernel_id_that_is_no_uuid_is_a_400(api: Api, ref: str) -> None:
    ami = await _stored_image(api, owner="project-a", kernel_id=ref)
    await _assert_refused(api, ami, "is not an image UUID")


async def test_an_inactive_kernel_is_refused(api: Api) -> None:
    queued = await _stored_image(api, owner="project-a", status=ImageStatus.QUEUED)
    ami = await _stored_image(api, owner="project-a", kernel_id=queued)
    await _assert_refused(api, ami, f"Image {queued} is not active.")


async def test_visible_kernel_and_ramdisk_go_down_in_the_boot_request(api: Api) -> None:
    kernel = await _stored_image(api, owner="project-a")                 # the user's own
    ramdisk = await _stored_image(api, owner="project-b", visibility="public")
    ami = await _stored_image(api, owner="project-a", kernel_id=kernel, ramdisk_id=ramdisk)
    response = await api.create_server(imageRef=ami)
    assert response.status_code == 202, response.text
    [request] = _boot_requests(api)
    assert (request.kernel_id, request.ramdisk_id) == (kernel, ramdisk)


async def test_rebuild_checks_the_kernel_too(api: Api) -> None:
    response = await api.create_server()
    assert response.status_code == 202
    server_id = response.json()["server"]["id"]
    await place(api, server_id)
    casts = len(api.bus.casts)
    secret = await _stored_image(api, owner="project-b")
    ami = await _stored_image(api, owner="project-a", kernel_id=secret)
    rebuilt = await api.request("POST", f"/v2.1/servers/{server_id}/action",
                                json={"rebuild": {"imageRef": ami}})
    assert rebuilt.status_code == 400, rebuilt.text
    assert f"Image {secret} could not be found." in rebuilt.json()["badRequest"]["message"]
    assert len(api.bus.casts) == casts


@pytest.mark.parametrize("kind", ["kernel_id", "ramdisk_id"])
async def test_image_api_refuses_image_references_that_are_no_uuid(api: Api,
                                                                  kind: str) -> None:
    response = await api.request("POST", IMAGES, json={
        "name": "ami", "disk_format": "qcow2", "container_format": "bare", kind: "../x"})
    assert response.status_code == 400, response.text
    assert kind in response.json()["message"]
    image = await create(api)
    refused = await patch(api, image["id"], [{"op": "add", "path": f"/{kind}",
                                              "value": "not-a-uuid"}])
    assert refused.status_code == 400
    good = await patch(api, image["id"], [{"op": "add", "path": f"/{kind}",
                                           "value": new_uuid()}])
    assert good.status_code == 200, good.text
    schema = (await api.request("GET", "/image/v2/schemas/image")).json()
    assert "pattern" in schema["properties"][kind]


# ---- size cap and quota -------------------------------------------------------------------


def _configure(api: Api, **image: Any) -> None:
    """Run the app with these image settings from now on."""
    deps = api.app.state.deps
    settings = ApiSettings.model_validate({**deps.settings.model_dump(), "image": image})
    api.app.state.deps = dataclasses.replace(deps, settings=settings)


def _files(api: Api) -> list[str]:
    directory = api.store.directory
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


async def _chunked(data: bytes, size: int = 65536) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


def _assert_413(response: Any, message: str) -> None:
    assert response.status_code == 413, response.text
    assert response.json() == {"code": "413 Request Entity Too Large",
                               "title": "Request Entity Too Large",
                               "message": response.json()["message"]}
    assert message in response.json()["message"]


@pytest.mark.parametrize("chunked", [False, True])
async def test_an_upload_past_the_size_cap_is_cut_off(api: Api, chunked: bool) -> None:
    _configure(api, image_size_cap=MIB)
    image_id = (await create(api, disk_format="raw"))["id"]
    data = os.urandom(MIB + 1)
    content = _chunked(data) if chunked else data
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=content,
                                 headers=OCTETS)
    _assert_413(response, f"the image size cap is {MIB} bytes")
    assert (await show(api, image_id))["status"] == "queued"
    assert _files(api) == []
    # Exactly the cap fits.
    assert (await upload(api, image_id, data[:MIB])).status_code == 204


async def test_the_project_image_quota_is_checked_before_and_during_uploads(api: Api) -> None:
    _configure(api, image_size_total=-1, project_image_size_total={"project-a": 2})
    first = (await create(api, disk_format="raw"))["id"]
    assert (await upload(api, first, os.urandom(MIB + MIB // 2))).status_code == 204
    # Declared too large: refused before a byte is stored.
    second = (await create(api, disk_format="raw"))["id"]
    response = await upload(api, second, os.urandom(MIB))
    _assert_413(response, "Project project-a is over a limit for [Resource "
                          "image_size_total is over limit of 2 due to current usage 1 and "
                          "delta 1]")
    # Chunked, without a length: cut off once past the quota.
    response = await api.request("PUT", f"{IMAGES}/{second}/file",
                                 content=_chunked(os.urandom(MIB)), headers=OCTETS)
    _assert_413(response, "image_size_total is over limit of 2")
    assert (await show(api, second))["status"] == "queued"
    assert _files(api) == [first]
    # What is left still fits; another project is not bound by project-a's quota.
    assert (await upload(api, second, os.urandom(MIB // 2))).status_code == 204
    bobs = (await create(api, token=BOB, disk_format="raw"))["id"]
    assert (await upload(api, bobs, os.urandom(3 * MIB), token=BOB)).status_code == 204


async def test_a_project_over_its_quota_uploads_nothing(api: Api) -> None:
    big = (await create(api, disk_format="raw"))["id"]
    assert (await upload(api, big, os.urandom(2 * MIB))).status_code == 204
    _configure(api, image_size_total=1)  # lowered below what the project holds
    small = (await create(api, disk_format="raw"))["id"]
    response = await upload(api, small, b"")
    _assert_413(response, "over limit of 1 due to current usage 2 and delta 0")
    assert (await show(api, small))["status"] == "queued"


# ---- the store's files --------------------------------------------------------------------


@contextmanager
def _umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def _mode(path: os.PathLike[str] | str) -> int:
    return os.stat(path).st_mode & 0o777


async def test_image_files_are_private_whatever_the_umask(api: Api) -> None:
    image_id = (await create(api, disk_format="raw"))["id"]
    seen: dict[str, int] = {}

    async def watched() -> AsyncIterator[bytes]:
        yield b"x" * 4096
        # Mid-upload: the temporary file exists.
        for path in api.store.directory.iterdir():
            seen[path.name] = _mode(path)
        yield b"y" * 4096

    with _umask(0):
        response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=watched(),
                                     headers=OCTETS)
    assert response.status_code == 204
    [(part, mode)] = seen.items()
    assert part.endswith(".part") and mode == 0o600
    assert _mode(api.store.directory) == 0o700
    assert _mode(api.store.path(ImageId(image_id))) == 0o600


async def test_delete_of_a_saving_image_removes_its_dead_upload(api: Api) -> None:
    image_id = (await create(api, disk_format="raw"))["id"]
    await api.db.images.set_status(ImageId(image_id), ImageStatus.SAVING)
    api.store.directory.mkdir()
    # What a killed API leaves: the upload's temporary file, held by nobody.
    part = api.store.directory / f".{image_id}.{'ab' * 16}.part"
    part.write_bytes(b"half an image")
    response = await api.request("DELETE", f"{IMAGES}/{image_id}")
    assert response.status_code == 204
    assert _files(api) == []
