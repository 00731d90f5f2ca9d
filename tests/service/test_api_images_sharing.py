"""Who sees which image: visibility, members (``/v2/images/{id}/members``) and the
isolation of two projects (alice in project-a, bob in project-b)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    IMAGE_ID,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_images import (
    IMAGES,
    active_image,
    assert_fault,
    create,
    listed,
    patch,
    show,
    upload,
)


async def share(api: Api, image_id: str, member: str = "project-b",
                token: str = ALICE) -> Any:
    return await api.request("POST", f"{IMAGES}/{image_id}/members", token=token,
                             json={"member": member})


async def answer(api: Api, image_id: str, status: str, token: str = BOB,
                 member: str = "project-b") -> Any:
    return await api.request("PUT", f"{IMAGES}/{image_id}/members/{member}", token=token,
                             json={"status": status})


async def test_nothing_of_a_private_image_leaks(api: Api) -> None:
    image_id = await active_image(api, b"mine", visibility="private", os_distro="x")
    rename = [{"op": "replace", "path": "/name", "value": "bob's"}]
    attempts: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "", {}), ("DELETE", "", {}), ("GET", "/file", {}),
        ("PUT", "/file", {"content": b"x",
                          "headers": {"Content-Type": "application/octet-stream"}}),
        ("PATCH", "", {"json": rename, "headers": {
            "Content-Type": "application/openstack-images-v2.1-json-patch"}}),
        ("POST", "/actions/deactivate", {}), ("PUT", "/tags/t", {}),
        ("DELETE", "/tags/t", {}), ("GET", "/members", {}),
        ("GET", "/members/project-b", {}),
        ("POST", "/members", {"json": {"member": "project-b"}}),
    ]
    for method, path, kwargs in attempts:
        response = await api.request(method, f"{IMAGES}/{image_id}{path}", token=BOB,
                                     **kwargs)
        assert_fault(response, 404, "")
        assert "project-a" not in response.text and "cirros" not in response.text
    for query in ("", "?visibility=private", "?visibility=all", "?member_status=all",
                  "?os_distro=x", "?owner=project-a", f"?id={image_id}"):
        assert image_id not in await listed(api, query, token=BOB)
    # Its id as a marker is as unknown to bob as any other.
    assert_fault(await api.request("GET", f"{IMAGES}?marker={image_id}", token=BOB), 400)
    assert (await show(api, image_id))["name"] == "cirros"
    assert (await api.request("GET", f"{IMAGES}/{image_id}/file")).content == b"mine"


async def test_default_lists_per_project(api: Api) -> None:
    mine = (await create(api, visibility="private"))["id"]
    community = (await create(api, visibility="community"))["id"]
    shared = (await create(api, visibility="shared"))["id"]
    bobs = (await create(api, BOB, visibility="private"))["id"]
    assert await listed(api) == [shared, community, mine, IMAGE_ID]
    assert await listed(api, token=BOB) == [bobs, IMAGE_ID]
    assert await listed(api, token=ADMIN) == [bobs, shared, community, mine, IMAGE_ID]
    assert await listed(api, "?visibility=community", token=BOB) == [community]
    assert await listed(api, "?visibility=all", token=BOB) == [bobs, community, IMAGE_ID]
    assert await listed(api, "?visibility=private") == [mine]
    assert await listed(api, "?visibility=private", token=ADMIN) == [bobs, mine]
    assert await listed(api, "?visibility=shared") == [shared]
    assert await listed(api, "?visibility=shared", token=BOB) == []


async def test_community_images_are_readable_by_id(api: Api) -> None:
    image_id = await active_image(api, b"for all", visibility="community")
    assert (await show(api, image_id, token=BOB))["visibility"] == "community"
    assert (await api.request("GET", f"{IMAGES}/{image_id}/file", token=BOB)).content == \
        b"for all"
    assert (await api.create_server(token=BOB, imageRef=image_id)).status_code == 202


async def test_sharing_lifecycle(api: Api) -> None:
    image_id = await active_image(api, b"shared bytes", visibility="shared")
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}", token=BOB), 404)

    response = await share(api, image_id)
    assert response.status_code == 200, response.text
    member = response.json()
    assert member == {"image_id": image_id, "member_id": "project-b", "status": "pending",
                      "created_at": member["created_at"], "updated_at": member["updated_at"],
                      "schema": "/v2/schemas/member"}
    # Pending: readable by id, in no default list until accepted.
    assert (await show(api, image_id, token=BOB))["id"] == image_id
    assert (await api.request("GET", f"{IMAGES}/{image_id}/file", token=BOB)).content == \
        b"shared bytes"
    assert image_id not in await listed(api, token=BOB)
    # member_status picks the shared images; public ones are listed as ever.
    assert await listed(api, "?member_status=pending", token=BOB) == [image_id, IMAGE_ID]
    assert await listed(api, "?member_status=all", token=BOB) == [image_id, IMAGE_ID]

    assert (await answer(api, image_id, "accepted")).json()["status"] == "accepted"
    assert await listed(api, token=BOB) == [image_id, IMAGE_ID]
    assert await listed(api, "?visibility=shared", token=BOB) == [image_id]
    assert await listed(api, "?member_status=pending", token=BOB) == [IMAGE_ID]
    assert (await api.create_server(token=BOB, imageRef=image_id)).status_code in (202, 400)

    assert (await answer(api, image_id, "rejected")).json()["status"] == "rejected"
    assert await listed(api, token=BOB) == [IMAGE_ID]
    assert (await show(api, image_id, token=BOB))["id"] == image_id

    # A member reads, but does not change the image.
    rename = [{"op": "replace", "path": "/name", "value": "bob's"}]
    assert_fault(await patch(api, image_id, rename, token=BOB), 403)
    assert_fault(await api.request("DELETE", f"{IMAGES}/{image_id}", token=BOB), 403)
    assert_fault(await share(api, image_id, "project-c", token=BOB), 403)
    assert_fault(await upload(api, image_id, b"x", token=BOB), 403)

    # Removing the member ends its access.
    path = f"{IMAGES}/{image_id}/members/project-b"
    assert (await api.request("DELETE", path)).status_code == 204
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}", token=BOB), 404)
    assert_fault(await api.request("DELETE", path), 404)


async def test_member_views(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    await share(api, image_id, "project-b")
    await share(api, image_id, "project-c")
    owner_view = (await api.request("GET", f"{IMAGES}/{image_id}/members")).json()
    assert owner_view["schema"] == "/v2/schemas/members"
    assert [m["member_id"] for m in owner_view["members"]] == ["project-b", "project-c"]
    bob_view = (await api.request("GET", f"{IMAGES}/{image_id}/members", token=BOB)).json()
    assert [m["member_id"] for m in bob_view["members"]] == ["project-b"]
    one = await api.request("GET", f"{IMAGES}/{image_id}/members/project-b", token=BOB)
    assert one.json()["member_id"] == "project-b"
    other = await api.request("GET", f"{IMAGES}/{image_id}/members/project-c", token=BOB)
    assert_fault(other, 404)
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}/members/nobody"), 404)


async def test_only_the_member_answers(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    await share(api, image_id)
    assert_fault(await answer(api, image_id, "accepted", token=ALICE), 403)
    assert (await answer(api, image_id, "accepted", token=ADMIN)).status_code == 200
    assert (await answer(api, image_id, "pending")).json()["status"] == "pending"
    assert_fault(await answer(api, image_id, "accepted", member="project-c"), 404)


async def test_only_a_member_may_leave_by_asking_the_owner(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    await share(api, image_id)
    path = f"{IMAGES}/{image_id}/members/project-b"
    assert_fault(await api.request("DELETE", path, token=BOB), 403)
    assert (await api.request("DELETE", path, token=ADMIN)).status_code == 204


@pytest.mark.parametrize("visibility", ["private", "public", "community"])
async def test_only_shared_images_have_members(api: Api, visibility: str) -> None:
    token = ADMIN if visibility == "public" else ALICE
    image_id = (await create(api, token, visibility=visibility))["id"]
    assert_fault(await share(api, image_id, token=token), 403, "shared")
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}/members", token=token), 403)


async def test_leaving_shared_visibility_hides_the_image_from_members(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    await share(api, image_id)
    await answer(api, image_id, "accepted")
    await patch(api, image_id, [{"op": "replace", "path": "/visibility", "value": "private"}])
    assert_fault(await api.request("GET", f"{IMAGES}/{image_id}", token=BOB), 404)
    assert image_id not in await listed(api, token=BOB)
    await patch(api, image_id, [{"op": "replace", "path": "/visibility", "value": "shared"}])
    assert image_id in await listed(api, token=BOB)


@pytest.mark.parametrize(("body", "status"), [
    ({}, 400), ({"member": 5}, 400), ({"member": ""}, 400), ([], 400),
    ({"member": "m" * 256}, 400), ({"member": "a\0b"}, 400),
])
async def test_bad_member_bodies(api: Api, body: object, status: int) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    response = await api.request("POST", f"{IMAGES}/{image_id}/members", json=body)
    assert_fault(response, status)


async def test_duplicate_members_and_bad_answers(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    assert (await share(api, image_id)).status_code == 200
    assert_fault(await share(api, image_id), 409, "already")
    bad_answers: tuple[object, ...] = ({"status": "maybe"}, {}, [], {"status": 1})
    for body in bad_answers:
        response = await api.request("PUT", f"{IMAGES}/{image_id}/members/project-b",
                                     token=BOB, json=body)
        assert_fault(response, 400)


async def test_member_quota(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    for n in range(128):
        assert (await share(api, image_id, f"p{n}")).status_code == 200
    assert_fault(await share(api, image_id, "one-more"), 403)


async def test_deleting_an_image_drops_its_members(api: Api) -> None:
    image_id = (await create(api, visibility="shared"))["id"]
    await share(api, image_id)
    assert (await api.request("DELETE", f"{IMAGES}/{image_id}")).status_code == 204
    assert await api.db.images.list_members(image_id) == []


async def test_a_member_project_may_boot_a_shared_image_and_others_may_not(api: Api) -> None:
    image_id = await active_image(api, b"shared-disk", visibility="shared")
    stranger = await api.create_server(BOB, imageRef=image_id)
    assert stranger.status_code == 400
    assert "Can not find requested image" in stranger.json()["badRequest"]["message"]
    assert (await share(api, image_id)).status_code == 200
    member = await api.create_server(BOB, imageRef=image_id)
    assert member.status_code == 202


async def test_version_discovery_needs_no_token(api: Api) -> None:
    for path in ("/image", "/image/", "/image/versions"):
        response = await api.request("GET", path, token=None)
        assert response.status_code in (200, 300), path
        assert "versions" in response.json()
