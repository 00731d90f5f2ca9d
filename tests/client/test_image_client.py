"""strato.image.client.ImageClient: integrity checks against a fake Image API (an httpx
MockTransport serving chosen bytes), and round trips against a real ``strato up``."""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strato.domain.errors import Conflict, Forbidden, Invalid, NotFound, Unavailable
from strato.image.client import ImageClient
from strato.testing.cluster import free_port
from tests.client.server_fixtures import (
    MIB,
    SERVICE_TOKEN,
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

IMAGE_ID = "5c9a1bd6-53a3-4ad5-9f2e-6d8f4d8a0c11"


def fake_api(served: bytes, record: dict[str, Any]) -> httpx.MockTransport:
    """An Image API that shows ``record`` and serves ``served`` as the image's data."""
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == f"/image/v2/images/{IMAGE_ID}":
            return httpx.Response(200, json=record)
        if request.url.path == f"/image/v2/images/{IMAGE_ID}/file":
            return httpx.Response(200, content=served)
        return httpx.Response(404, json={"itemNotFound": {"code": 404, "message": "gone"}})
    return httpx.MockTransport(handle)


def names(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def record_of(data: bytes, **overrides: Any) -> dict[str, Any]:
    return {"id": IMAGE_ID, "status": "active", "size": len(data),
            "os_hash_algo": "sha512", "os_hash_value": hashlib.sha512(data).hexdigest(),
            **overrides}


async def download(transport: httpx.MockTransport, dest: Path, **kwargs: Any) -> Any:
    async with ImageClient("http://strato", "token", transport=transport) as client:
        return await client.download_to(IMAGE_ID, dest, **kwargs)


async def test_download_verifies_and_renames_into_place(tmp_path: Path) -> None:
    data = os.urandom(3 * MIB + 5)
    image = await download(fake_api(data, record_of(data)), tmp_path / "disk")
    assert image["id"] == IMAGE_ID
    assert (tmp_path / "disk").read_bytes() == data
    assert names(tmp_path) == ["disk"]


async def test_corrupt_data_is_refused_and_removed(tmp_path: Path) -> None:
    data = os.urandom(MIB)
    corrupt = data[:-1] + bytes([data[-1] ^ 1])
    with pytest.raises(Invalid, match="SHA-512 mismatch"):
        await download(fake_api(corrupt, record_of(data)), tmp_path / "disk")
    assert names(tmp_path) == []


async def test_short_data_is_refused(tmp_path: Path) -> None:
    data = os.urandom(MIB)
    with pytest.raises(Invalid, match="downloaded"):
        await download(fake_api(data[:-10], record_of(data)), tmp_path / "disk")
    assert names(tmp_path) == []


async def test_expected_sha512_wins_over_the_record(tmp_path: Path) -> None:
    data = os.urandom(4096)
    dest = tmp_path / "disk"
    dest.write_bytes(b"previous")
    with pytest.raises(Invalid):
        await download(fake_api(data, record_of(data)), dest,
                       expected_sha512=hashlib.sha512(b"other").hexdigest())
    assert dest.read_bytes() == b"previous"  # a failed download leaves the old file
    await download(fake_api(data, record_of(data, os_hash_value=None)), dest,
                   expected_sha512=hashlib.sha512(data).hexdigest().upper())
    assert dest.read_bytes() == data


async def test_errors_are_domain_errors() -> None:
    transport = fake_api(b"", record_of(b""))
    async with ImageClient("http://strato", "token", transport=transport) as client:
        with pytest.raises(NotFound, match="404 gone"):
            await client.get("missing")
    async with ImageClient(f"http://127.0.0.1:{free_port()}", "token") as client:
        with pytest.raises(Unavailable):
            await client.list()


# -- against the real API -----------------------------------------------------------------


async def _chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start:start + size]


async def test_upload_path_and_download_round_trip(api: RunningApi, tmp_path: Path) -> None:
    data = os.urandom(5 * MIB + 3)
    source = tmp_path / "source.raw"
    source.write_bytes(data)
    async with ImageClient(api.url, api.token) as client:
        image = await client.create(name="client-path", disk_format="raw",
                                    container_format="bare", os_distro="debian")
        assert image["status"] == "queued"
        await client.upload(image["id"], source)
        shown = await client.download_to(image["id"], tmp_path / "copy.raw")
    assert (tmp_path / "copy.raw").read_bytes() == data
    assert (shown["status"], shown["size"], shown["os_distro"]) == (
        "active", len(data), "debian")
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    assert shown["checksum"] == hashlib.md5(data).hexdigest()


async def test_upload_chunked_iterator_without_size(api: RunningApi) -> None:
    data = os.urandom(2 * MIB + 77)
    async with ImageClient(api.url, api.token) as client:
        image = await client.create(name="client-chunked", disk_format="raw",
                                    container_format="bare")
        await client.upload(image["id"], _chunks(data, 65536))
        shown = await client.get(image["id"])
        with pytest.raises(Conflict):
            await client.upload(image["id"], _chunks(b"again", 5))
    assert (shown["size"], shown["os_hash_value"]) == (
        len(data), hashlib.sha512(data).hexdigest())


async def test_list_filters_and_pages(api: RunningApi) -> None:
    async with ImageClient(api.url, api.token) as client:
        ids = {(await client.create(name="client-list", disk_format="raw",
                                    container_format="bare"))["id"] for _ in range(3)}
        assert {i["id"] for i in await client.list(name="client-list")} == ids
        assert {i["id"] for i in await client.list(name="client-list", limit=1)} == ids
        assert not ids & {i["id"] for i in await client.list(status="active")}


async def test_queued_image_has_nothing_to_download(api: RunningApi, tmp_path: Path) -> None:
    async with ImageClient(api.url, api.token) as client:
        image = await client.create(name="client-queued", disk_format="raw",
                                    container_format="bare")
        with pytest.raises(Conflict, match="no data"):
            await client.download_to(image["id"], tmp_path / "nothing")
        await client.delete(image["id"])
        with pytest.raises(NotFound):
            await client.get(image["id"])
        with pytest.raises(NotFound):
            await client.delete(image["id"])
    assert names(tmp_path) == []


async def test_service_token_downloads_a_private_image(api: RunningApi,
                                                      tmp_path: Path) -> None:
    data = os.urandom(MIB)
    async with ImageClient(api.url, api.token) as admin:
        image = await admin.create(name="client-private", disk_format="raw",
                                   container_format="bare", visibility="private")
        await admin.upload(image["id"], _chunks(data, 65536), size=len(data))
    async with ImageClient(api.url, SERVICE_TOKEN) as service:
        await service.download_to(image["id"], tmp_path / "base")
    assert (tmp_path / "base").read_bytes() == data


async def test_bad_token_is_forbidden(api: RunningApi) -> None:
    async with ImageClient(api.url, "not-a-token") as client:
        with pytest.raises(Forbidden):
            await client.list()


async def test_bad_request_is_invalid(api: RunningApi) -> None:
    async with ImageClient(api.url, api.token) as client:
        with pytest.raises(Invalid):
            await client.create(name="client-bad", disk_format="floppy")
