"""The minimal image registry (``/v2/images``): create, upload, download, list."""

from __future__ import annotations

import hashlib

import httpx
import pytest
from starlette.types import Message

from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    IMAGE_ID,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

OCTETS = {"Content-Type": "application/octet-stream"}


async def create(api: Api, token: str = ALICE, **fields: object) -> dict[str, object]:
    body = {"name": "cirros", "disk_format": "qcow2", "container_format": "bare", **fields}
    response = await api.request("POST", "/v2/images", token=token, json=body)
    assert response.status_code == 201, response.text
    image: dict[str, object] = response.json()
    return image


async def test_create_answers_glances_shape(api: Api) -> None:
    image = await create(api, visibility="private", min_ram=64, os_distro="cirros")
    image_id = image["id"]
    assert image["status"] == "queued" and image["size"] is None
    assert image["file"] == f"/v2/images/{image_id}/file"
    assert image["self"] == f"/v2/images/{image_id}"
    assert image["schema"] == "/v2/schemas/image"
    assert (image["owner"], image["visibility"], image["min_ram"]) == ("project-a", "private", 64)
    assert image["os_distro"] == "cirros"  # extra properties sit at the top level


async def test_upload_download_round_trip(api: Api) -> None:
    image_id = (await create(api))["id"]
    data = bytes(range(256)) * 5000  # bigger than one write batch
    response = await api.request("PUT", f"/v2/images/{image_id}/file", content=data,
                                 headers=OCTETS)
    assert response.status_code == 204, response.text
    shown = (await api.request("GET", f"/v2/images/{image_id}")).json()
    assert (shown["status"], shown["size"]) == ("active", len(data))
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    download = await api.request("GET", f"/v2/images/{image_id}/file")
    assert download.status_code == 200 and download.content == data
    assert download.headers["content-md5"] == shown["checksum"]
    assert [p.name for p in api.store.directory.iterdir()] == [image_id]
    # An active image can boot a server.
    assert (await api.create_server(imageRef=image_id)).status_code == 202


async def test_second_upload_is_a_409(api: Api) -> None:
    image_id = (await create(api))["id"]
    path = f"/v2/images/{image_id}/file"
    assert (await api.request("PUT", path, content=b"one", headers=OCTETS)).status_code == 204
    again = await api.request("PUT", path, content=b"two", headers=OCTETS)
    assert again.status_code == 409 and "conflictingRequest" in again.json()
    download = await api.request("GET", path)
    assert download.content == b"one"


async def test_broken_upload_kills_the_image_and_leaves_no_file(api: Api) -> None:
    image_id = (await create(api))["id"]
    # Drive the ASGI app directly: the client sends part of the body, then goes away
    # (what a server reports as http.disconnect).
    messages: list[Message] = [
        {"type": "http.request", "body": b"x" * 100, "more_body": True},
        {"type": "http.disconnect"}]
    sent: list[Message] = []

    async def receive() -> Message:
        return messages.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    path = f"/v2/images/{image_id}/file"
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
             "method": "PUT", "scheme": "http", "path": path, "raw_path": path.encode(),
             "query_string": b"", "root_path": "", "server": ("strato.test", 80),
             "client": ("127.0.0.1", 40000),
             "headers": [(b"host", b"strato.test"), (b"x-auth-token", ALICE.encode()),
                         (b"content-type", b"application/octet-stream")]}
    await api.app(scope, receive, send)
    assert sent[0]["status"] == 400
    shown = (await api.request("GET", f"/v2/images/{image_id}")).json()
    assert shown["status"] == "killed"
    assert list(api.store.directory.iterdir()) == []
    again = await api.request("PUT", path, content=b"x", headers=OCTETS)
    assert again.status_code == 409


async def test_upload_needs_octet_stream(api: Api) -> None:
    image_id = (await create(api))["id"]
    response = await api.request("PUT", f"/v2/images/{image_id}/file", content=b"x",
                                 headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert (await api.request("GET", f"/v2/images/{image_id}")).json()["status"] == "queued"


async def test_visibility_between_projects(api: Api) -> None:
    private = (await create(api, ALICE, visibility="private"))["id"]
    assert (await api.request("GET", f"/v2/images/{private}", token=BOB)).status_code == 404
    upload = await api.request("PUT", f"/v2/images/{private}/file", token=BOB,
                               content=b"x", headers=OCTETS)
    assert upload.status_code == 404
    seen_by_bob = (await api.request("GET", "/v2/images", token=BOB)).json()["images"]
    assert [i["id"] for i in seen_by_bob] == [IMAGE_ID]  # the public one only
    seen_by_admin = (await api.request("GET", "/v2/images", token=ADMIN)).json()["images"]
    assert {i["id"] for i in seen_by_admin} == {IMAGE_ID, private}


async def test_list_shape_and_paging(api: Api) -> None:
    ids = [(await create(api, name=f"i{n}"))["id"] for n in range(3)]
    page = (await api.request("GET", "/v2/images?limit=2")).json()
    assert page["first"] == "/v2/images" and page["schema"] == "/v2/schemas/images"
    assert [i["id"] for i in page["images"]] == [ids[2], ids[1]]
    rest = (await api.request("GET", page["next"])).json()
    assert [i["id"] for i in rest["images"]] == [ids[0], IMAGE_ID]
    # A full page always links on, as in Glance; the page after it is empty.
    assert (await api.request("GET", rest["next"])).json()["images"] == []
    bad = await api.request("GET", "/v2/images?marker=nope")
    assert bad.status_code == 400


@pytest.mark.parametrize(("body", "status"), [
    ({"disk_format": "floppy"}, 400), ({"container_format": "zip"}, 400),
    ({"visibility": "everyone"}, 400), ({"min_disk": -1}, 400), ({"id": "not-a-uuid"}, 400),
    ({"custom": 5}, 400), ({"status": "active"}, 403), ({"visibility": "public"}, 403),
    ({"protected": "yes"}, 400),
])
async def test_bad_create_bodies(api: Api, body: dict[str, object], status: int) -> None:
    response = await api.request("POST", "/v2/images", json=body)
    assert response.status_code == status, response.text
    assert (await api.request("GET", "/v2/images", token=ADMIN)).json()["images"][1:] == []


async def test_create_with_an_id_and_duplicate(api: Api) -> None:
    image_id = "0e7b6d8c-5a3b-4c2d-8e1f-9a0b1c2d3e4f"
    assert (await create(api, id=image_id))["id"] == image_id
    again = await api.request("POST", "/v2/images", json={"id": image_id})
    assert again.status_code == 409


async def test_delete(api: Api) -> None:
    image_id = (await create(api))["id"]
    await api.request("PUT", f"/v2/images/{image_id}/file", content=b"abc", headers=OCTETS)
    assert (await api.request("DELETE", f"/v2/images/{image_id}")).status_code == 204
    assert (await api.request("GET", f"/v2/images/{image_id}")).status_code == 404
    assert list(api.store.directory.iterdir()) == []
    protected = (await create(api, protected=True))["id"]
    assert (await api.request("DELETE", f"/v2/images/{protected}")).status_code == 403


async def test_download_of_a_queued_image_is_empty(api: Api) -> None:
    image_id = (await create(api))["id"]
    response: httpx.Response = await api.request("GET", f"/v2/images/{image_id}/file")
    assert response.status_code == 204 and response.content == b""
