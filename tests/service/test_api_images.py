"""The Image API's metadata side (``/image/v2/images``): create, show, list, update,
delete, actions, tags, version discovery and schemas. Data: test_api_images_data.py;
sharing and isolation: test_api_images_sharing.py; fuzzing: test_api_images_fuzz.py.

The helpers at the top are imported by those modules too.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from strato.domain.ids import ImageId
from strato.domain.images import ImageStatus
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    IMAGE_ID,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

IMAGES = "/image/v2/images"
OCTETS = {"Content-Type": "application/octet-stream"}
PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}
MIB = 1024 * 1024


async def create(api: Api, token: str = ALICE, **fields: object) -> dict[str, Any]:
    """Create an image (raw, bare unless ``fields`` say otherwise); its record."""
    body = {"name": "cirros", "disk_format": "raw", "container_format": "bare", **fields}
    response = await api.request("POST", IMAGES, token=token, json=body)
    assert response.status_code == 201, response.text
    image: dict[str, Any] = response.json()
    return image


async def show(api: Api, image_id: str, token: str = ALICE) -> dict[str, Any]:
    response = await api.request("GET", f"{IMAGES}/{image_id}", token=token)
    assert response.status_code == 200, response.text
    image: dict[str, Any] = response.json()
    return image


async def patch(api: Api, image_id: str, ops: object, token: str = ALICE,
                headers: dict[str, str] | None = None) -> Any:
    return await api.request("PATCH", f"{IMAGES}/{image_id}", token=token, json=ops,
                             headers=headers or PATCH)


async def upload(api: Api, image_id: str, data: bytes, token: str = ALICE) -> Any:
    return await api.request("PUT", f"{IMAGES}/{image_id}/file", token=token, content=data,
                             headers=OCTETS)


async def active_image(api: Api, data: bytes = b"x" * 1000, token: str = ALICE,
                       **fields: object) -> str:
    """A created and uploaded (active) raw image; its id."""
    image_id = (await create(api, token, **fields))["id"]
    response = await upload(api, image_id, data, token)
    assert response.status_code == 204, response.text
    return str(image_id)


async def listed(api: Api, query: str = "", token: str = ALICE) -> list[str]:
    """The ids a list request returns (one page)."""
    response = await api.request("GET", f"{IMAGES}{query}", token=token)
    assert response.status_code == 200, response.text
    return [i["id"] for i in response.json()["images"]]


def qcow2(virtual_size: int = 16 * MIB, *, backing_file: str = "",
          data_file: bool = False, length: int = 2 * 65536) -> bytes:
    """A qcow2 v3 header (64 KiB clusters) padded to ``length`` bytes, optionally naming
    a backing file or flagging an external data file."""
    backing = backing_file.encode()
    header = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 512 if backing else 0,
                         len(backing), 16, virtual_size, 0, 1, 3 * 65536, 65536, 1, 0, 0,
                         4 if data_file else 0, 0, 0, 4, 104)
    return (header.ljust(512, b"\0") + backing).ljust(length, b"\0")


def assert_fault(response: Any, status: int, fragment: str = "") -> None:
    """A Glance (webob) error body: {"code": "404 Not Found", "title", "message"}."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == f"{status} {body['title']}", body
    assert fragment in body["message"], body


async def assert_only_seed_image(api: Api) -> None:
    assert [i["id"] for i in (await api.request("GET", IMAGES, token=ADMIN)).json()[
        "images"]] == [IMAGE_ID]


# ---- create and show ---------------------------------------------------------------------


async def test_create_answers_glances_shape(api: Api) -> None:
    response = await api.request("POST", IMAGES, json={
        "name": "cirros", "disk_format": "qcow2", "container_format": "bare",
        "visibility": "private", "min_ram": 64, "min_disk": 1, "protected": False,
        "tags": ["b", "a", "b"], "os_distro": "cirros", "hw_disk_bus": "virtio"})
    assert response.status_code == 201, response.text
    image = response.json()
    image_id = image["id"]
    assert response.headers["location"] == f"http://strato.test{IMAGES}/{image_id}"
    assert image == {
        "id": image_id, "name": "cirros", "status": "queued", "visibility": "private",
        "protected": False, "os_hidden": False, "tags": ["a", "b"], "disk_format": "qcow2",
        "container_format": "bare", "size": None, "virtual_size": None, "checksum": None,
        "os_hash_algo": None, "os_hash_value": None, "min_disk": 1, "min_ram": 64,
        "owner": "project-a", "created_at": image["created_at"],
        "updated_at": image["updated_at"], "self": f"/v2/images/{image_id}",
        "file": f"/v2/images/{image_id}/file", "schema": "/v2/schemas/image",
        # Extra properties sit at the top level, as in Glance.
        "os_distro": "cirros", "hw_disk_bus": "virtio"}
    assert image["created_at"].endswith("Z")
    assert await show(api, image_id) == image


async def test_create_defaults_and_an_empty_body(api: Api) -> None:
    response = await api.request("POST", IMAGES, json={})
    assert response.status_code == 201
    image = response.json()
    assert (image["name"], image["visibility"], image["disk_format"], image["min_ram"]) == (
        None, "shared", None, 0)


async def test_create_with_an_id_and_a_duplicate(api: Api) -> None:
    image_id = "0e7b6d8c-5a3b-4c2d-8e1f-9a0b1c2d3e4f"
    assert (await create(api, id=image_id))["id"] == image_id
    again = await api.request("POST", IMAGES, json={"id": image_id})
    assert_fault(again, 409, "exists")


async def test_admin_may_publicize_and_give_an_image_away(api: Api) -> None:
    image = await create(api, ADMIN, visibility="public", owner="project-b")
    assert (image["visibility"], image["owner"]) == ("public", "project-b")
    # The new owner may change it; its creator's project no longer owns it.
    assert (await patch(api, image["id"], [{"op": "replace", "path": "/name",
                                            "value": "b's"}], token=BOB)).status_code == 200


@pytest.mark.parametrize(("body", "status"), [
    ({"disk_format": "floppy"}, 400), ({"container_format": "zip"}, 400),
    ({"visibility": "everyone"}, 400), ({"min_disk": -1}, 400), ({"min_ram": "1"}, 400),
    ({"min_ram": True}, 400), ({"min_ram": 2**31}, 400), ({"id": "not-a-uuid"}, 400),
    ({"id": 5}, 400), ({"custom": 5}, 400), ({"custom": None}, 400), ({"": "x"}, 400),
    ({"k" * 256: "x"}, 400), ({"name": "n" * 256}, 400), ({"name": 7}, 400),
    ({"name": "a\0b"}, 400), ({"protected": "yes"}, 400), ({"os_hidden": 1}, 400),
    ({"tags": "x"}, 400), ({"tags": [1]}, 400), ({"tags": [""]}, 400),
    ({"tags": ["t" * 256]}, 400), ({"tags": [f"t{i}" for i in range(129)]}, 403),
    ({f"p{i}": "v" for i in range(129)}, 403),
    ({"status": "active"}, 403), ({"size": 1}, 403), ({"checksum": "0"}, 403),
    ({"os_hash_value": "0"}, 403), ({"virtual_size": 1}, 403), ({"created_at": "x"}, 403),
    ({"self": "/x"}, 403), ({"file": "/x"}, 403), ({"schema": "/x"}, 403),
    ({"direct_url": "x"}, 403), ({"locations": []}, 403), ({"deleted": "x"}, 403),
    ({"os_glance_import_task": "x"}, 403), ({"visibility": "public"}, 403),
    ({"owner": "project-b"}, 403),
])
async def test_bad_create_bodies(api: Api, body: dict[str, object], status: int) -> None:
    response = await api.request("POST", IMAGES, json=body)
    assert response.status_code == status, response.text
    await assert_only_seed_image(api)


@pytest.mark.parametrize("raw", [b"[]", b"42", b"{", b"", b'{"name": "\\ud800"}',
                                 b'{"x\\udfff": "y"}', b'{"tags": ["\\udc00"]}'])
async def test_malformed_create_bodies_are_400s(api: Api, raw: bytes) -> None:
    response = await api.request("POST", IMAGES, content=raw,
                                 headers={"Content-Type": "application/json"})
    assert_fault(response, 400)
    await assert_only_seed_image(api)


async def test_show_unknown_or_odd_ids_is_a_404(api: Api) -> None:
    for image_id in ("3c1b0d2e-0000-4000-8000-000000000000", "nope", "..", "%00"):
        assert_fault(await api.request("GET", f"{IMAGES}/{image_id}"), 404)


# ---- list --------------------------------------------------------------------------------


async def test_list_shape_and_paging(api: Api) -> None:
    ids = [(await create(api, name=f"i{n}"))["id"] for n in range(3)]
    page = (await api.request("GET", f"{IMAGES}?limit=2")).json()
    assert page["first"] == "/v2/images?limit=2" and page["schema"] == "/v2/schemas/images"
    assert [i["id"] for i in page["images"]] == [ids[2], ids[1]]
    assert page["next"] == f"/v2/images?limit=2&marker={ids[1]}"
    rest = (await api.request("GET", "/image" + page["next"])).json()
    assert [i["id"] for i in rest["images"]] == [ids[0], IMAGE_ID]
    # A full page always links on, as in Glance; the page after it is empty, no link.
    last = (await api.request("GET", "/image" + rest["next"])).json()
    assert last["images"] == [] and "next" not in last
    assert (await api.request("GET", IMAGES)).json()["first"] == "/v2/images"


async def test_next_link_keeps_the_filters(api: Api) -> None:
    for n in range(3):
        await create(api, name=f"i{n}", tags=["keep"])
    await create(api, name="other")
    seen: list[str] = []
    url = f"{IMAGES}?tag=keep&sort=name:asc&limit=1"
    while url:
        page = (await api.request("GET", url)).json()
        seen += [i["name"] for i in page["images"]]
        url = "/image" + page["next"] if "next" in page else ""
    assert seen == ["i0", "i1", "i2"]


async def test_sorting(api: Api) -> None:
    big = await active_image(api, b"x" * 300, name="b")
    small = await active_image(api, b"x" * 100, name="c")
    queued = (await create(api, name="a"))["id"]
    assert await listed(api, "?sort=name:asc") == [queued, big, small, IMAGE_ID]
    assert await listed(api, "?sort=name:desc") == [IMAGE_ID, small, big, queued]
    assert await listed(api, "?sort=name") == [IMAGE_ID, small, big, queued]  # desc default
    assert await listed(api, "?sort_key=name&sort_dir=asc") == [queued, big, small, IMAGE_ID]
    assert await listed(api, "?sort_key=size&sort_dir=asc") == [queued, small, big, IMAGE_ID]
    # The seed image is active, 1024 bytes, named "cirros".
    assert await listed(api, "?sort=status:asc,size:desc") == [
        IMAGE_ID, big, small, queued]
    assert await listed(api, "?sort_key=status&sort_key=name&sort_dir=asc&sort_dir=desc") == [
        IMAGE_ID, small, big, queued]


async def test_paging_under_every_sort_visits_each_image_once(api: Api) -> None:
    for n in range(7):
        await create(api, name=f"n{n % 3}", disk_format=None if n % 2 else "raw")
    expected = set(await listed(api, "?limit=100"))
    for sort in ("name:asc", "name:desc", "disk_format:asc,name:desc", "size", "id:asc",
                 "status:asc,created_at:asc", "updated_at:asc"):
        seen: list[str] = []
        marker = ""
        while True:
            page = await listed(api, f"?sort={sort}&limit=2{marker}")
            if not page:
                break
            seen += page
            marker = f"&marker={page[-1]}"
        assert sorted(seen) == sorted(expected), sort


async def test_filters(api: Api) -> None:
    a = await active_image(api, b"x" * 10, name="a", tags=["x86", "gold"], os_distro="deb")
    b = (await create(api, name="b", tags=["x86"], protected=True, os_distro="rh"))["id"]
    hidden = (await create(api, name="h", os_hidden=True))["id"]
    assert await listed(api, "?name=a") == [a]
    assert await listed(api, "?status=queued") == [b]
    assert await listed(api, "?status=active") == [a, IMAGE_ID]
    assert await listed(api, "?tag=x86") == [b, a]
    assert await listed(api, "?tag=x86&tag=gold") == [a]
    assert await listed(api, "?tag=x86&tag=silver") == []
    assert await listed(api, "?protected=true") == [b]
    assert await listed(api, "?protected=false") == [a, IMAGE_ID]
    assert await listed(api, "?os_hidden=true") == [hidden]
    assert await listed(api, "?owner=admin") == [IMAGE_ID]
    assert await listed(api, "?size_min=11") == [IMAGE_ID]
    assert await listed(api, "?size_max=10") == [a]
    assert await listed(api, "?os_distro=rh") == [b]
    assert await listed(api, f"?id={a}") == [a]
    assert await listed(api, "?visibility=public") == [IMAGE_ID]
    assert await listed(api, "?disk_format=raw&container_format=bare") == [b, a]


async def test_in_filters(api: Api) -> None:
    """``in:`` lists as python-openstackclient's ``server list`` sends them
    (``id=in:<a>,<b>``), on every attribute Glance takes them on, with quoted values."""
    a = (await create(api, name="a,b"))["id"]
    b = (await create(api, name="plain", disk_format="qcow2", container_format="ovf"))["id"]
    c = (await create(api, name="c"))["id"]
    assert set(await listed(api, f"?id=in:{a},{b}")) == {a, b}
    assert await listed(api, f"?id=in:{c}") == [c]
    assert await listed(api, f"?id=eq:{c}") == [c]
    assert set(await listed(api, '?name=in:"a,b",plain')) == {a, b}
    assert await listed(api, '?name=in:"a,b"') == [a]
    assert await listed(api, "?name=in:a,b") == []
    assert await listed(api, "?name=eq:c") == [c]
    assert set(await listed(api, "?status=in:queued,killed")) == {a, b, c}
    assert await listed(api, "?status=in:active") == [IMAGE_ID]
    assert await listed(api, "?disk_format=in:qcow2,vmdk") == [b, IMAGE_ID]
    assert await listed(api, "?disk_format=in:vmdk,iso") == []
    assert await listed(api, "?container_format=in:ovf&name=in:plain,c") == [b]
    assert await listed(api, "?name=2020-01-01T00:00:00") == []


@pytest.mark.parametrize("query", [
    "id=gt:3c1b0d2e-0000-4000-8000-000000000000", "name=a:b", "status=neq:active",
    'name=in:"a', 'name=in:x"a"', 'name=in:"a"x', "disk_format=lt:raw",
])
async def test_bad_filter_operators_are_400s(api: Api, query: str) -> None:
    assert_fault(await api.request("GET", f"{IMAGES}?{query}"), 400)


@pytest.mark.parametrize("query", [
    "limit=-1", "limit=abc", "limit=1.5", "marker=3c1b0d2e-0000-4000-8000-000000000000",
    "sort=size:up", "sort=bogus", "sort=name&sort_key=name", "sort_key=checksum",
    "sort_key=name&sort_key=size&sort_dir=asc&sort_dir=desc&sort_dir=asc",
    "member_status=maybe", "visibility=friends", "protected=yes", "os_hidden=2",
    "size_min=-1", "size_max=1e3", "created_at=gt:2020-01-01T00:00:00Z", "changes-since=x",
])
async def test_bad_list_queries_are_400s(api: Api, query: str) -> None:
    assert_fault(await api.request("GET", f"{IMAGES}?{query}"), 400)


async def test_limit_is_capped(api: Api) -> None:
    response = await api.request("GET", f"{IMAGES}?limit=100000")
    assert response.status_code == 200 and len(response.json()["images"]) == 1


# ---- update (JSON patch) -----------------------------------------------------------------


async def test_patch_core_attributes_and_properties(api: Api) -> None:
    image_id = (await create(api, os_distro="deb", arch="x86"))["id"]
    response = await patch(api, image_id, [
        {"op": "replace", "path": "/name", "value": "renamed"},
        {"op": "add", "path": "/min_disk", "value": 2},
        {"op": "replace", "path": "/min_ram", "value": 512},
        {"op": "replace", "path": "/protected", "value": True},
        {"op": "replace", "path": "/visibility", "value": "community"},
        {"op": "add", "path": "/os_hidden", "value": True},
        {"op": "replace", "path": "/disk_format", "value": "qcow2"},
        {"op": "add", "path": "/tags", "value": ["t2", "t1"]},
        {"op": "add", "path": "/hw_disk_bus", "value": "scsi"},
        {"op": "add", "path": "/os_distro", "value": "ubuntu"},  # add overwrites
        {"op": "remove", "path": "/arch"},
        {"op": "add", "path": "/a~1b~0c", "value": "escaped"},
    ])
    assert response.status_code == 200, response.text
    image = response.json()
    assert image == await show(api, image_id)
    assert (image["name"], image["min_disk"], image["min_ram"], image["protected"],
            image["visibility"], image["os_hidden"], image["disk_format"], image["tags"]) == (
        "renamed", 2, 512, True, "community", True, "qcow2", ["t1", "t2"])
    assert (image["hw_disk_bus"], image["os_distro"], image["a/b~c"]) == (
        "scsi", "ubuntu", "escaped")
    assert "arch" not in image
    assert image["updated_at"] >= image["created_at"]


async def test_patch_with_the_draft_4_media_type(api: Api) -> None:
    image_id = (await create(api))["id"]
    response = await patch(api, image_id, [{"replace": "/name", "value": "old-style"}],
                           headers={"Content-Type":
                                    "application/openstack-images-v2.0-json-patch"})
    assert response.status_code == 200 and response.json()["name"] == "old-style"


async def test_patch_needs_the_json_patch_media_type(api: Api) -> None:
    image_id = (await create(api))["id"]
    for content_type in ("application/json", "application/json-patch+json", ""):
        response = await patch(api, image_id, [], headers={"Content-Type": content_type})
        assert_fault(response, 415)
        assert "openstack-images-v2.1-json-patch" in response.headers["accept-patch"]


async def test_admin_may_change_the_owner(api: Api) -> None:
    image_id = (await create(api))["id"]
    response = await patch(api, image_id, [{"op": "replace", "path": "/owner",
                                            "value": "project-b"}], token=ADMIN)
    assert response.json()["owner"] == "project-b"
    assert (await api.request("GET", f"{IMAGES}/{image_id}")).status_code == 404


@pytest.mark.parametrize(("ops", "status"), [
    # Read-only and reserved attributes: 403, as in Glance.
    *[([{"op": op, "path": f"/{name}", "value": "x"}], 403)
      for name in ("id", "status", "size", "virtual_size", "checksum", "os_hash_algo",
                   "os_hash_value", "created_at", "updated_at", "self", "file", "schema",
                   "direct_url", "locations", "location", "deleted", "os_glance_x")
      for op in ("add", "replace")],
    ([{"op": "remove", "path": "/status"}], 403),
    ([{"op": "replace", "path": "/owner", "value": "project-b"}], 403),
    ([{"op": "replace", "path": "/visibility", "value": "public"}], 403),
    ([{"op": "remove", "path": "/name"}], 403),
    ([{"op": "remove", "path": "/tags"}], 403),
    ([{"op": "remove", "path": "/nope"}], 409),
    ([{"op": "replace", "path": "/nope", "value": "x"}], 409),
    ([{"op": "move", "path": "/name", "from": "/x"}], 400),
    ([{"op": "test", "path": "/name", "value": "x"}], 400),
    ([{"path": "/name", "value": "x"}], 400),
    ([{"op": "add", "value": "x"}], 400),
    ([{"op": "add", "path": "/name"}], 400),
    ([{"op": "add", "path": "name", "value": "x"}], 400),
    ([{"op": "add", "path": "/a/b", "value": "x"}], 400),
    ([{"op": "add", "path": "/", "value": "x"}], 400),
    ([{"op": "add", "path": "/name/", "value": "x"}], 400),
    ([{"op": "add", "path": "/~2", "value": "x"}], 400),
    ([{"op": "add", "path": 7, "value": "x"}], 400),
    ([{"op": "add", "path": "/min_ram", "value": -5}], 400),
    ([{"op": "add", "path": "/protected", "value": "true"}], 400),
    ([{"op": "add", "path": "/disk_format", "value": "floppy"}], 400),
    ([{"op": "add", "path": "/custom", "value": 1}], 400),
    ([{"op": "add", "path": "/tags", "value": "x"}], 400),
    (["add"], 400), ({"op": "add"}, 400), ([[]], 400),
])
async def test_bad_patches(api: Api, ops: object, status: int) -> None:
    image_id = (await create(api, custom="kept"))["id"]
    before = await show(api, image_id)
    response = await patch(api, image_id, ops)
    assert response.status_code == status, response.text
    assert await show(api, image_id) == before


async def test_a_patch_applies_all_or_nothing(api: Api) -> None:
    image_id = (await create(api))["id"]
    before = await show(api, image_id)
    response = await patch(api, image_id, [
        {"op": "replace", "path": "/name", "value": "changed"},
        {"op": "replace", "path": "/status", "value": "active"}])
    assert_fault(response, 403, "read-only")
    assert await show(api, image_id) == before


async def test_formats_change_only_while_queued(api: Api) -> None:
    image_id = await active_image(api)
    change = [{"op": "replace", "path": "/disk_format", "value": "qcow2"}]
    assert_fault(await patch(api, image_id, change), 403, "queued")
    same = [{"op": "replace", "path": "/disk_format", "value": "raw"}]
    assert (await patch(api, image_id, same)).status_code == 200


async def test_only_the_owner_or_an_admin_patches(api: Api) -> None:
    rename = [{"op": "replace", "path": "/name", "value": "mine now"}]
    assert_fault(await patch(api, IMAGE_ID, rename), 403)  # public, owned by admin
    private = (await create(api, visibility="private"))["id"]
    assert_fault(await patch(api, private, rename, token=BOB), 404)
    assert (await patch(api, private, rename, token=ADMIN)).status_code == 200


# ---- delete, actions, tags ---------------------------------------------------------------


async def test_delete_removes_record_and_data(api: Api) -> None:
    image_id = await active_image(api, visibility="community")
    assert [p.name for p in api.store.directory.iterdir()] == [image_id]
    assert_fault(await api.request("DELETE", f"{IMAGES}/{image_id}", token=BOB), 403)
    assert (await api.request("DELETE", f"{IMAGES}/{image_id}")).status_code == 204
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}"), 404)
    assert_fault(await api.request("DELETE", f"{IMAGES}/{image_id}"), 404)
    assert list(api.store.directory.iterdir()) == []


async def test_a_protected_image_is_not_deleted(api: Api) -> None:
    image_id = (await create(api, protected=True))["id"]
    assert_fault(await api.request("DELETE", f"{IMAGES}/{image_id}"), 403, "protected")
    await patch(api, image_id, [{"op": "replace", "path": "/protected", "value": False}])
    assert (await api.request("DELETE", f"{IMAGES}/{image_id}")).status_code == 204


async def test_deactivate_and_reactivate(api: Api) -> None:
    image_id = await active_image(api, b"secret")
    file = f"{IMAGES}/{image_id}/file"
    deactivate = f"{IMAGES}/{image_id}/actions/deactivate"
    reactivate = f"{IMAGES}/{image_id}/actions/reactivate"
    assert (await api.request("POST", deactivate)).status_code == 204
    assert (await api.request("POST", deactivate)).status_code == 204  # idempotent
    assert (await show(api, image_id))["status"] == "deactivated"
    assert_fault(await api.request("GET", file), 403, "deactivated")
    admin = await api.request("GET", file, token=ADMIN)
    assert (admin.status_code, admin.content) == (200, b"secret")
    assert (await api.request("POST", reactivate)).status_code == 204
    assert (await api.request("POST", reactivate)).status_code == 204
    assert (await show(api, image_id))["status"] == "active"
    assert (await api.request("GET", file)).content == b"secret"


async def test_actions_need_an_active_image_and_its_owner(api: Api) -> None:
    queued = (await create(api))["id"]
    for action in ("deactivate", "reactivate"):
        path = f"{IMAGES}/{queued}/actions/{action}"
        assert_fault(await api.request("POST", path), 403, "status 'queued'")
    assert_fault(await api.request("POST", f"{IMAGES}/{IMAGE_ID}/actions/deactivate"), 403)
    assert (await show(api, IMAGE_ID))["status"] == "active"
    assert (await api.request("POST", f"{IMAGES}/{IMAGE_ID}/actions/deactivate",
                              token=ADMIN)).status_code == 204
    # A deactivated image cannot boot: the compute API refuses it like any inactive one.
    assert (await api.create_server()).status_code == 400


async def test_tags(api: Api) -> None:
    image_id = (await create(api))["id"]
    for tag in ("gold", "x86", "gold", "with space"):
        response = await api.request("PUT", f"{IMAGES}/{image_id}/tags/{tag}")
        assert response.status_code == 204
    assert (await show(api, image_id))["tags"] == ["gold", "with space", "x86"]
    assert (await api.request("DELETE", f"{IMAGES}/{image_id}/tags/gold")).status_code == 204
    assert_fault(await api.request("DELETE", f"{IMAGES}/{image_id}/tags/gold"), 404)
    assert (await show(api, image_id))["tags"] == ["with space", "x86"]
    assert_fault(await api.request("PUT", f"{IMAGES}/{image_id}/tags/{'t' * 256}"), 400)
    assert_fault(await api.request("PUT", f"{IMAGES}/{IMAGE_ID}/tags/mine"), 403)
    assert_fault(await api.request("PUT", f"{IMAGES}/{image_id}/tags/x", token=BOB), 404)


async def test_tag_quota(api: Api) -> None:
    image_id = (await create(api, tags=[f"t{i}" for i in range(128)]))["id"]
    assert_fault(await api.request("PUT", f"{IMAGES}/{image_id}/tags/one-more"), 403)
    assert (await api.request("PUT", f"{IMAGES}/{image_id}/tags/t0")).status_code == 204


# ---- discovery, schemas, aliases ---------------------------------------------------------


@pytest.mark.parametrize(("path", "status"), [("/image", 300), ("/image/", 300),
                                              ("/image/versions", 200)])
async def test_version_document(api: Api, path: str, status: int) -> None:
    response = await api.request("GET", path)
    assert response.status_code == status
    versions = response.json()["versions"]
    assert versions[0] == {"id": "v2.7", "status": "CURRENT", "links": [
        {"rel": "self", "href": "http://strato.test/image/v2/"}]}
    assert [v["id"] for v in versions] == [f"v2.{n}" for n in range(7, -1, -1)]
    assert {v["status"] for v in versions[1:]} == {"SUPPORTED"}
    # The API root is still the Compute API's.
    assert "v2.1" in {v["id"] for v in (await api.request("GET", "/")).json()["versions"]}


async def test_schemas(api: Api) -> None:
    image_id = (await create(api, os_distro="deb", tags=["t"]))["id"]
    schema = (await api.request("GET", "/image/v2/schemas/image")).json()
    assert schema["name"] == "image"
    assert schema["additionalProperties"] == {"type": "string"}
    assert {"rel": "enclosure", "href": "{file}"} in schema["links"]
    read_only = {k for k, v in schema["properties"].items() if v.get("readOnly")}
    assert {"status", "size", "checksum", "os_hash_value", "self", "file"} <= read_only
    assert schema["properties"]["disk_format"]["enum"][0] is None
    # Every attribute an image shows is described, and its JSON type fits.
    image = await show(api, image_id)
    kinds = {"string": str, "integer": int, "boolean": bool, "array": list, "null": type(None)}
    for key, value in image.items():
        described = schema["properties"].get(key, schema["additionalProperties"])
        allowed = described["type"] if isinstance(described["type"], list) else [
            described["type"]]
        assert any(isinstance(value, kinds[k]) for k in allowed), (key, value)
    images = (await api.request("GET", "/image/v2/schemas/images")).json()
    assert images["properties"]["images"]["items"] == schema
    member = (await api.request("GET", "/image/v2/schemas/member")).json()
    assert member["properties"]["status"]["enum"] == ["pending", "accepted", "rejected"]
    members = (await api.request("GET", "/image/v2/schemas/members")).json()
    assert members["properties"]["members"]["items"] == member


async def test_old_paths_still_work(api: Api) -> None:
    created = await api.request("POST", "/v2/images", json={"name": "legacy"})
    assert created.status_code == 201
    assert (await api.request("GET", f"/v2/images/{created.json()['id']}")).status_code == 200
    assert (await api.request("GET", "/v2/schemas/image")).status_code == 200


async def test_the_image_api_needs_a_token_and_has_request_ids(api: Api) -> None:
    assert_fault(await api.request("GET", IMAGES, token=None), 401)
    response = await api.request("GET", IMAGES)
    assert response.headers["x-openstack-request-id"].startswith("req-")
    assert "x-compute-request-id" not in response.headers


async def test_repository_round_trips_the_new_fields(api: Api) -> None:
    image_id = await active_image(api, b"abc", tags=["t"], os_hidden=True)
    stored = await api.db.images.get(ImageId(image_id))
    assert (stored.status, stored.tags, stored.os_hidden, stored.os_hash_algo) == (
        ImageStatus.ACTIVE, ("t",), True, "sha512")
