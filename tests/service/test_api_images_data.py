"""Image data: upload (``PUT .../file``) and download (``GET .../file``), the status
each outcome leaves, the hashes, the header inspection and ``Range`` requests."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from starlette.types import Message

from strato.domain.ids import ImageId
from strato.domain.images import ImageStatus
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_images import (
    IMAGES,
    MIB,
    OCTETS,
    active_image,
    assert_fault,
    create,
    qcow2,
    show,
    upload,
)


def files(api: Api) -> list[str]:
    """Every file in the image store, temporary ones included."""
    if not api.store.directory.exists():
        return []
    return sorted(p.name for p in api.store.directory.iterdir())


async def pieces(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def assert_status(api: Api, image_id: str, status: str) -> dict[str, Any]:
    image = await show(api, image_id)
    assert image["status"] == status, image
    return image


# ---- successful uploads ------------------------------------------------------------------


async def test_upload_records_size_hashes_and_virtual_size(api: Api) -> None:
    image_id = (await create(api))["id"]
    data = os.urandom(3 * MIB + 123)
    response = await upload(api, image_id, data)
    assert (response.status_code, response.content) == (204, b"")
    image = await assert_status(api, image_id, "active")
    assert (image["size"], image["virtual_size"]) == (len(data), len(data))
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert (image["os_hash_algo"], image["os_hash_value"]) == (
        "sha512", hashlib.sha512(data).hexdigest())
    assert files(api) == [image_id]
    download = await api.request("GET", f"{IMAGES}/{image_id}/file")
    assert (download.status_code, download.content) == (200, data)
    assert download.headers["content-md5"] == image["checksum"]
    assert download.headers["content-length"] == str(len(data))
    assert download.headers["content-type"] == "application/octet-stream"
    # An active image boots.
    assert (await api.create_server(imageRef=image_id)).status_code == 202


async def test_chunked_upload_in_odd_pieces(api: Api) -> None:
    image_id = (await create(api))["id"]
    data = os.urandom(9 * MIB + 7)  # several store batches, none aligned
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file",
                                 content=pieces(data, 100_003), headers=OCTETS)
    assert response.status_code == 204, response.text
    image = await assert_status(api, image_id, "active")
    assert (image["size"], image["checksum"], image["os_hash_value"]) == (
        len(data), hashlib.md5(data).hexdigest(), hashlib.sha512(data).hexdigest())
    assert (await api.request("GET", f"{IMAGES}/{image_id}/file")).content == data


async def test_an_empty_upload(api: Api) -> None:
    image_id = (await create(api))["id"]
    assert (await upload(api, image_id, b"")).status_code == 204
    image = await assert_status(api, image_id, "active")
    assert (image["size"], image["virtual_size"], image["checksum"]) == (
        0, 0, hashlib.md5(b"").hexdigest())
    download = await api.request("GET", f"{IMAGES}/{image_id}/file")
    assert (download.status_code, download.content) == (200, b"")


async def test_qcow2_records_its_virtual_size(api: Api) -> None:
    image_id = (await create(api, disk_format="qcow2"))["id"]
    data = qcow2(virtual_size=40 * MIB)
    assert (await upload(api, image_id, data)).status_code == 204
    image = await assert_status(api, image_id, "active")
    assert (image["size"], image["virtual_size"]) == (len(data), 40 * MIB)


async def test_admin_reads_any_image(api: Api) -> None:
    image_id = await active_image(api, b"private bytes", visibility="private")
    response = await api.request("GET", f"{IMAGES}/{image_id}/file", token=ADMIN)
    assert (response.status_code, response.content) == (200, b"private bytes")
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}/file", token=BOB), 404)


# ---- refused uploads: back to queued, nothing kept ---------------------------------------


@pytest.mark.parametrize(("disk_format", "data", "fragment"), [
    ("raw", qcow2(), "qcow2 format"),
    ("qcow2", b"\0" * 200_000, "raw format"),
    ("qcow2", qcow2(backing_file="/etc/shadow"), "backing file"),
    ("qcow2", qcow2(data_file=True), "external data file"),
    ("vmdk", qcow2(), "qcow2 format"),
])
@pytest.mark.parametrize("chunked", [False, True], ids=["length", "chunked"])
async def test_refused_data_leaves_the_image_queued(api: Api, disk_format: str, data: bytes,
                                                    fragment: str, chunked: bool) -> None:
    image_id = (await create(api, disk_format=disk_format))["id"]
    body = pieces(data, 10_000) if chunked else data
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=body,
                                 headers=OCTETS)
    assert_fault(response, 400, fragment)
    image = await assert_status(api, image_id, "queued")
    assert (image["size"], image["checksum"], image["os_hash_value"]) == (None, None, None)
    assert files(api) == []
    # Queued again: the owner may fix the format and upload again.
    if disk_format == "raw":
        await api.request("PATCH", f"{IMAGES}/{image_id}", json=[
            {"op": "replace", "path": "/disk_format", "value": "qcow2"}],
            headers={"Content-Type": "application/openstack-images-v2.1-json-patch"})
        assert (await upload(api, image_id, data)).status_code == 204
        assert files(api) == [image_id]


async def test_refusal_comes_before_the_rest_is_stored(api: Api) -> None:
    """With a Content-Length the header is judged as soon as it has arrived."""
    image_id = (await create(api))["id"]
    sent = 0

    async def body() -> AsyncIterator[bytes]:
        nonlocal sent
        for piece in (qcow2()[:65536], b"\0" * MIB, b"\0" * MIB):
            sent += 1
            yield piece

    size = 65536 + 2 * MIB
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=body(),
                                 headers={**OCTETS, "Content-Length": str(size)})
    assert_fault(response, 400, "qcow2")
    assert sent == 1


@pytest.mark.parametrize(("declared", "actual"), [(100, 50), (50, 100), (0, 1)])
async def test_a_length_that_does_not_match_is_refused(api: Api, declared: int,
                                                       actual: int) -> None:
    image_id = (await create(api))["id"]
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file",
                                 content=pieces(b"x" * actual, 30),
                                 headers={**OCTETS, "Content-Length": str(declared)})
    assert_fault(response, 400, "declared")
    await assert_status(api, image_id, "queued")
    assert files(api) == []


async def test_upload_needs_both_formats(api: Api) -> None:
    for fields in ({"disk_format": None}, {"container_format": None}):
        image_id = (await create(api, token=ALICE, **fields))["id"]
        assert_fault(await upload(api, image_id, b"data"), 400, "must be set")
        await assert_status(api, image_id, "queued")
    assert files(api) == []


@pytest.mark.parametrize("content_type", ["text/plain", "application/json", None])
async def test_upload_needs_octet_stream(api: Api, content_type: str | None) -> None:
    image_id = (await create(api))["id"]
    headers = {"Content-Type": content_type} if content_type else {}
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=b"x",
                                 headers=headers)
    assert_fault(response, 415)
    await assert_status(api, image_id, "queued")


async def test_a_bad_content_length_is_a_400(api: Api) -> None:
    image_id = (await create(api))["id"]
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=b"x",
                                 headers={**OCTETS, "Content-Length": "1x"})
    assert_fault(response, 400, "Content-Length")


# ---- uploads in the wrong state or by the wrong caller -----------------------------------


async def test_data_is_uploaded_once(api: Api) -> None:
    image_id = await active_image(api, b"one")
    assert_fault(await upload(api, image_id, b"two"), 409, "only once")
    assert (await api.request("GET", f"{IMAGES}/{image_id}/file")).content == b"one"
    await api.db.images.set_status(ImageId(image_id), ImageStatus.SAVING)
    assert_fault(await upload(api, image_id, b"two"), 409)


async def test_only_the_owner_uploads(api: Api) -> None:
    hidden = (await create(api, visibility="private"))["id"]
    assert_fault(await upload(api, hidden, b"x", token=BOB), 404)
    community = (await create(api, visibility="community"))["id"]
    assert_fault(await upload(api, community, b"x", token=BOB), 403)
    await assert_status(api, community, "queued")
    assert (await upload(api, community, b"x", token=ADMIN)).status_code == 204


# ---- broken uploads: killed, nothing kept ------------------------------------------------


async def test_a_client_that_goes_away_kills_the_image(api: Api) -> None:
    image_id = (await create(api))["id"]
    # Drive the ASGI app directly: the client sends part of the body, then goes away
    # (what a server reports as http.disconnect).
    messages: list[Message] = [
        {"type": "http.request", "body": b"x" * 300_000, "more_body": True},
        {"type": "http.request", "body": b"x" * 5 * MIB, "more_body": True},
        {"type": "http.disconnect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    path = f"{IMAGES}/{image_id}/file"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "PUT", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("strato.test", 80),
             "client": ("127.0.0.1", 40000),
             "headers": [(b"host", b"strato.test"), (b"x-auth-token", ALICE.encode()),
                         (b"content-type", b"application/octet-stream")]}
    await api.app(scope, receive, send)
    assert sent[0]["status"] == 400
    await assert_status(api, image_id, "killed")
    assert files(api) == []
    assert_fault(await upload(api, image_id, b"x"), 409)
    assert (await api.request("GET", path)).status_code == 204


async def test_a_body_stream_that_breaks_kills_the_image(api: Api) -> None:
    image_id = (await create(api))["id"]

    async def broken() -> AsyncIterator[bytes]:
        yield b"\0" * (6 * MIB)
        raise ConnectionResetError("the client went away")

    try:
        response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=broken(),
                                     headers=OCTETS)
    except ConnectionResetError:
        pass  # the in-process transport may hand the error back to the client
    else:
        assert response.status_code >= 400
    await assert_status(api, image_id, "killed")
    assert files(api) == []


async def test_a_store_that_cannot_write_kills_the_image(api: Api) -> None:
    image_id = (await create(api))["id"]
    api.store.directory.write_bytes(b"")  # a file where the directory should be
    assert_fault(await upload(api, image_id, b"data"), 503, "image store")
    await assert_status(api, image_id, "killed")


async def test_deleting_during_an_upload_keeps_no_data(api: Api) -> None:
    image_id = (await create(api))["id"]

    async def body() -> AsyncIterator[bytes]:
        yield b"x" * MIB
        assert (await api.request("DELETE", f"{IMAGES}/{image_id}")).status_code == 204
        yield b"y" * MIB

    response = await api.request("PUT", f"{IMAGES}/{image_id}/file", content=body(),
                                 headers=OCTETS)
    assert_fault(response, 404)
    assert files(api) == []


# ---- downloads ---------------------------------------------------------------------------


async def test_download_without_data_is_empty(api: Api) -> None:
    image_id = (await create(api))["id"]
    response = await api.request("GET", f"{IMAGES}/{image_id}/file")
    assert (response.status_code, response.content) == (204, b"")


@pytest.mark.parametrize(("header", "start", "end"), [
    ("bytes=0-9", 0, 9), ("bytes=100-199", 100, 199), ("bytes=1000-", 1000, 1023),
    ("bytes=-10", 1014, 1023), ("bytes=-5000", 0, 1023), ("bytes=1020-99999", 1020, 1023),
    ("bytes=1023-1023", 1023, 1023), ("Bytes = 5 - 6", 5, 6),
])
async def test_range_downloads(api: Api, header: str, start: int, end: int) -> None:
    data = os.urandom(1024)
    image_id = await active_image(api, data)
    response = await api.request("GET", f"{IMAGES}/{image_id}/file",
                                 headers={"Range": header})
    assert response.status_code == 206
    assert response.content == data[start:end + 1]
    assert response.headers["content-range"] == f"bytes {start}-{end}/1024"
    assert response.headers["content-length"] == str(end - start + 1)
    assert "content-md5" not in response.headers


async def test_a_range_across_read_chunks(api: Api) -> None:
    data = os.urandom(3 * MIB)
    image_id = await active_image(api, data)
    response = await api.request("GET", f"{IMAGES}/{image_id}/file",
                                 headers={"Range": f"bytes={MIB - 5}-{2 * MIB + 5}"})
    assert response.content == data[MIB - 5:2 * MIB + 6]


@pytest.mark.parametrize("header", ["bytes=abc", "bytes=0-1,3-4", "items=0-1", "bytes=-",
                                    "", "bytes=5-4"])
async def test_unparsable_ranges_are_ignored_and_the_whole_image_served(
        api: Api, header: str) -> None:
    image_id = await active_image(api, b"x" * 1024)
    response = await api.request("GET", f"{IMAGES}/{image_id}/file",
                                 headers={"Range": header})
    assert response.status_code == 200 and response.content == b"x" * 1024


@pytest.mark.parametrize("header", ["bytes=1024-", "bytes=2000-3000", "bytes=-0"])
async def test_unsatisfiable_ranges_are_416s(api: Api, header: str) -> None:
    image_id = await active_image(api, b"x" * 1024)
    response = await api.request("GET", f"{IMAGES}/{image_id}/file",
                                 headers={"Range": header})
    assert_fault(response, 416)
    assert response.headers["content-range"] == "bytes */1024"


async def test_any_range_of_an_empty_image_is_a_416(api: Api) -> None:
    image_id = await active_image(api, b"")
    response = await api.request("GET", f"{IMAGES}/{image_id}/file",
                                 headers={"Range": "bytes=0-"})
    assert_fault(response, 416)
