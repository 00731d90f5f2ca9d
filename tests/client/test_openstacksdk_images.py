"""openstacksdk's image calls against a real strato API (``strato up`` as an OS process).

The SDK connects without Keystone: keystoneauth's ``admin_token`` plugin sends the static
admin token, and ``image_endpoint_override`` points the image proxy at ``<api>/image``,
where it discovers the v2 API from the version document like it does on Glance.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import os
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
from openstack import exceptions as sdk_exceptions
from openstack import warnings as sdk_warnings
from openstack.connection import Connection
from openstack.image.v2._proxy import Proxy as ImageProxy

from strato.image.client import ImageClient
from tests.client.server_fixtures import (
    MIB,
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
    build_qcow2,
    make_qcow2,
    vm_status,
)

# openstacksdk 4.22 warns against itself on every call, about things no caller can change
# (its config loader always hands the connection an InfluxDB section; every resource it
# builds calls its own deprecated Resource._compute_attributes; its proxy passes its own
# deprecated service_type argument). Its removal-schedule warnings are ignored here; its
# other warnings (an unsupported service version, a legacy API) still fail a test.
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]


def connect(api: RunningApi) -> Connection:
    """An SDK connection to strato's Image API, with no Keystone and no clouds.yaml."""
    connection: Connection = openstack.connect(
        auth_type="admin_token", auth={"endpoint": api.url, "token": api.token},
        image_endpoint_override=api.image_url, image_api_version="2",
        load_yaml_config=False, load_envvars=False)
    return connection


@pytest.fixture(scope="module")
def glance(api: RunningApi) -> Iterator[ImageProxy]:
    """The connection's image proxy: the SDK must have picked the v2 API."""
    connection = connect(api)
    try:
        assert isinstance(connection.image, ImageProxy)
        yield connection.image
    finally:
        connection.close()


@pytest.fixture
def qcow2(tmp_path: Path) -> tuple[Path, bytes]:
    path = tmp_path / "tiny.qcow2"
    return path, make_qcow2(path)


def raw_bytes(size: int = MIB + 12345) -> bytes:
    return os.urandom(size)


def create(glance: ImageProxy, name: str, data: bytes, disk_format: str = "raw",
           **kwargs: Any) -> Any:
    """``create_image`` with ``data``; returns the image as the server shows it now."""
    image = glance.create_image(name, data=data, disk_format=disk_format,
                                container_format="bare", allow_duplicates=True,
                                **kwargs)
    return glance.get_image(image.id)


def test_create_from_file_uploads_and_hashes(glance: ImageProxy,
                                             qcow2: tuple[Path, bytes]) -> None:
    path, data = qcow2
    with path.open("rb") as handle:
        image = glance.create_image("sdk-qcow2", data=handle, disk_format="qcow2",
                                    container_format="bare", allow_duplicates=True,
                                    wait=True)
    shown = glance.get_image(image.id)
    assert (shown.status, shown.disk_format, shown.container_format) == (
        "active", "qcow2", "bare")
    assert shown.size == len(data)
    assert shown.virtual_size == 16 * MIB
    assert shown.checksum == hashlib.md5(data).hexdigest()
    assert (shown.hash_algo, shown.hash_value) == ("sha512", hashlib.sha512(data).hexdigest())
    assert glance.download_image(shown).content == data


def test_create_from_filename(glance: ImageProxy, tmp_path: Path) -> None:
    path = tmp_path / "disk.raw"
    data = raw_bytes()
    path.write_bytes(data)
    image = glance.create_image("sdk-filename", filename=str(path), disk_format="raw",
                                container_format="bare", allow_duplicates=True)
    assert image.data is not None
    image.data.close()  # the SDK opens the file and leaves it open on the resource
    shown = glance.get_image(image.id)
    assert (shown.status, shown.size, shown.virtual_size) == ("active", len(data), len(data))
    # The SDK records where the image came from as extra properties; the server kept them.
    assert shown.properties["owner_specified.openstack.object"] == "images/sdk-filename"


def test_download_whole_stream_and_to_file(glance: ImageProxy, tmp_path: Path) -> None:
    data = raw_bytes(3 * MIB + 7)
    image = create(glance, "sdk-download", data)
    # Whole: the SDK checks os_hash_value (sha512) itself and raises on a mismatch.
    assert glance.download_image(image).content == data
    response = glance.download_image(image, stream=True)
    digest = hashlib.sha512()
    received = 0
    for chunk in response.iter_content(chunk_size=256 * 1024):
        digest.update(chunk)
        received += len(chunk)
    response.close()
    assert (received, digest.hexdigest()) == (len(data), image.hash_value)
    target = tmp_path / "out.raw"
    glance.download_image(image, output=str(target))
    assert target.read_bytes() == data


def test_download_range(glance: ImageProxy) -> None:
    data = raw_bytes(MIB)
    image = create(glance, "sdk-range", data)
    response = glance.get(f"/images/{image.id}/file",
                          headers={"Range": "bytes=100-199"})
    assert response.status_code == 206
    assert response.content == data[100:200]
    assert response.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    tail = glance.get(f"/images/{image.id}/file", headers={"Range": "bytes=-10"})
    assert (tail.status_code, tail.content) == (206, data[-10:])


def test_deprecated_upload_image(glance: ImageProxy) -> None:
    data = raw_bytes(4096)
    with pytest.warns(sdk_warnings.RemovedInSDK50Warning):
        image = glance.upload_image(container_format="bare", disk_format="raw",
                                    data=data, name="sdk-upload-image")
    shown = glance.get_image(image.id)
    assert (shown.status, shown.size) == ("active", len(data))


def test_list_with_filters_and_pages(glance: ImageProxy) -> None:
    tag = f"batch-{time.monotonic_ns()}"
    ids = {create(glance, f"sdk-list-{i}", raw_bytes(1024), tags=[tag]).id for i in range(3)}
    queued = glance.create_image("sdk-list-queued", disk_format="raw",
                                 container_format="bare", allow_duplicates=True)
    assert {i.id for i in glance.images(tag=tag)} == ids
    assert [i.id for i in glance.images(name="sdk-list-1")] == [
        next(i.id for i in glance.images(tag=tag) if i.name == "sdk-list-1")]
    assert queued.id in {i.id for i in glance.images(status="queued")}
    assert not ids & {i.id for i in glance.images(status="queued")}
    # limit=1: the SDK follows the "next" links page by page and finds every image.
    assert {i.id for i in glance.images(tag=tag, limit=1)} == ids
    assert [i.name for i in glance.images(tag=tag, sort="name:desc")] == [
        "sdk-list-2", "sdk-list-1", "sdk-list-0"]
    # As python-openstackclient's ``server list`` resolves its Image column.
    two = sorted(ids)[:2]
    assert {i.id for i in glance.images(id=f"in:{','.join(two)}")} == set(two)


def test_update_name_min_disk_and_property(glance: ImageProxy) -> None:
    image = create(glance, "sdk-update", raw_bytes(2048))
    glance.update_image(image, name="sdk-updated", min_disk=2, os_distro="debian")
    shown = glance.get_image(image.id)
    assert (shown.name, shown.min_disk) == ("sdk-updated", 2)
    assert shown.os_distro == "debian"


def test_tags(glance: ImageProxy) -> None:
    image = create(glance, "sdk-tags", raw_bytes(2048))
    glance.add_tag(image, "gold")
    glance.add_tag(image, "x86")
    assert sorted(glance.get_image(image.id).tags) == ["gold", "x86"]
    glance.remove_tag(image, "gold")
    assert glance.get_image(image.id).tags == ["x86"]


def test_deactivate_and_reactivate(glance: ImageProxy) -> None:
    image = create(glance, "sdk-deactivate", raw_bytes(2048))
    glance.deactivate_image(image)
    assert glance.get_image(image.id).status == "deactivated"
    glance.reactivate_image(image)
    assert glance.get_image(image.id).status == "active"


def test_delete_then_get_is_not_found(glance: ImageProxy) -> None:
    image = create(glance, "sdk-delete", raw_bytes(2048))
    glance.delete_image(image, ignore_missing=False)
    with pytest.raises(sdk_exceptions.NotFoundException):
        glance.get_image(image.id)
    with pytest.raises(sdk_exceptions.NotFoundException):
        glance.delete_image(image.id, ignore_missing=False)


def test_second_upload_is_a_conflict(glance: ImageProxy) -> None:
    image = create(glance, "sdk-twice", raw_bytes(2048))
    response = image.upload(glance, data=b"again")
    with pytest.raises(sdk_exceptions.ConflictException):
        sdk_exceptions.raise_from_response(response)
    shown = glance.get_image(image.id)
    assert (shown.status, shown.size) == ("active", 2048)


def test_qcow2_declared_raw_is_a_bad_request(glance: ImageProxy,
                                             qcow2: tuple[Path, bytes]) -> None:
    _, data = qcow2
    before = {i.id for i in glance.images()}
    with pytest.raises(sdk_exceptions.BadRequestException):
        glance.create_image("sdk-liar", data=data, disk_format="raw",
                            container_format="bare", allow_duplicates=True)
    # The SDK deletes the image whose upload failed: nothing is left over.
    assert {i.id for i in glance.images()} == before


def test_bad_disk_format_is_a_bad_request(glance: ImageProxy) -> None:
    with pytest.raises(sdk_exceptions.BadRequestException):
        glance.create_image("sdk-bad-format", disk_format="floppy",
                            container_format="bare", allow_duplicates=True)


def test_qcow2_with_backing_file_is_refused(glance: ImageProxy) -> None:
    data = build_qcow2(16 * MIB, backing_file="/etc/shadow")
    with pytest.raises(sdk_exceptions.BadRequestException):
        glance.create_image("sdk-backing", data=data, disk_format="qcow2",
                            container_format="bare", allow_duplicates=True)


# -- a 2 GiB upload through httpx: the API's memory stays flat ----------------------------

GIB = 1024 * MIB
RSS_BUDGET = 64 * MIB


async def _chunks(total: int, digest: Any) -> AsyncIterator[bytes]:
    """``total`` bytes in 1 MiB chunks of one random block, hashed as they go out."""
    block = os.urandom(MIB)
    for _ in range(total // MIB):
        digest.update(block)
        yield block
        await asyncio.sleep(0)


async def _watch_rss(pid: int, peak: list[int], stop: asyncio.Event) -> None:
    while not stop.is_set():
        peak[0] = max(peak[0], vm_status(pid)["VmRSS"])
        await asyncio.sleep(0.1)


@pytest.mark.slow
async def test_two_gib_streamed_upload_keeps_api_rss_flat(api: RunningApi) -> None:
    async with ImageClient(api.url, api.token) as client:
        image = await client.create(name="big", disk_format="raw", container_format="bare")
        before = vm_status(api.pid)["VmRSS"]
        peak, stop, digest = [before], asyncio.Event(), hashlib.sha512()
        watcher = asyncio.create_task(_watch_rss(api.pid, peak, stop))
        started = time.monotonic()
        await client.upload(image["id"], _chunks(2 * GIB, digest), size=2 * GIB)
        elapsed = time.monotonic() - started
        stop.set()
        await watcher
        shown = await client.get(image["id"])
        await client.delete(image["id"])
    print(f"2 GiB upload: {2 * GIB / MIB / elapsed:.0f} MiB/s, API RSS {before / MIB:.0f}"
          f" -> peak {peak[0] / MIB:.0f} MiB")
    assert (shown["status"], shown["size"]) == ("active", 2 * GIB)
    assert shown["os_hash_value"] == digest.hexdigest()
    assert peak[0] - before < RSS_BUDGET


def test_sdk_whole_file_upload_from_buffer(glance: ImageProxy) -> None:
    data = raw_bytes(2 * MIB)
    image = glance.create_image("sdk-buffer", data=io.BytesIO(data), disk_format="raw",
                                container_format="bare", allow_duplicates=True)
    assert glance.get_image(image.id).checksum == hashlib.md5(data).hexdigest()
