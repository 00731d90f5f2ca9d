"""``/v2.1/servers/{id}/metadata`` (Nova's server-metadata API, 2.1): list, replace,
merge, show, set and delete items, with Nova's bodies, status codes and messages; writes
refuse a locked server (non-admins) or one that is building or busy (409), and keep to
the project's ``metadata_items`` quota (403)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from strato.domain.ids import InstanceId
from strato.domain.instances import TaskState
from tests.api_fixtures import (
    ADMIN,
    BOB,
    MAX_METADATA,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_servers import create_one, place

NOT_FOUND = "Metadata item was not found"


async def active(api: Api, **fields: Any) -> str:
    """An ACTIVE server (placed on a host, no task running)."""
    server = await create_one(api, **fields)
    await place(api, server)
    return server


def meta_url(server: str, key: str | None = None) -> str:
    return f"/v2.1/servers/{server}/metadata" + (f"/{key}" if key is not None else "")


async def call(api: Api, method: str, server: str, key: str | None = None, *,
               token: str | None = None, body: Any = None) -> httpx.Response:
    kwargs: dict[str, Any] = {} if token is None else {"token": token}
    if body is not None:
        kwargs["json"] = body
    return await api.request(method, meta_url(server, key), **kwargs)


async def server_metadata(api: Api, server: str) -> dict[str, str]:
    response = await api.request("GET", f"/v2.1/servers/{server}")
    assert response.status_code == 200, response.text
    found: dict[str, str] = response.json()["server"]["metadata"]
    return found


def fault(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text
    [body] = response.json().values()
    message: str = body["message"]
    return message


async def test_list_and_show(api: Api) -> None:
    server = await create_one(api, metadata={"a": "1", "b": "2"})
    listed = await call(api, "GET", server)
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"metadata": {"a": "1", "b": "2"}}
    one = await call(api, "GET", server, "b")
    assert one.status_code == 200, one.text
    assert one.json() == {"meta": {"b": "2"}}
    assert fault(await call(api, "GET", server, "zz"), 404) == NOT_FOUND


async def test_merge_replace_set_and_delete(api: Api) -> None:
    server = await active(api, metadata={"a": "1", "b": "2"})
    merged = await call(api, "POST", server, body={"metadata": {"b": "two", "c": "3"}})
    assert merged.status_code == 200, merged.text
    assert merged.json() == {"metadata": {"a": "1", "b": "two", "c": "3"}}
    assert await server_metadata(api, server) == {"a": "1", "b": "two", "c": "3"}

    replaced = await call(api, "PUT", server, body={"metadata": {"x": "9"}})
    assert replaced.status_code == 200, replaced.text
    assert replaced.json() == {"metadata": {"x": "9"}}
    assert await server_metadata(api, server) == {"x": "9"}

    item = await call(api, "PUT", server, "y", body={"meta": {"y": "10"}})
    assert item.status_code == 200, item.text
    assert item.json() == {"meta": {"y": "10"}}
    assert await server_metadata(api, server) == {"x": "9", "y": "10"}

    deleted = await call(api, "DELETE", server, "x")
    assert deleted.status_code == 204, deleted.text
    assert deleted.content == b""
    assert await server_metadata(api, server) == {"y": "10"}
    assert fault(await call(api, "DELETE", server, "x"), 404) == NOT_FOUND

    cleared = await call(api, "PUT", server, body={"metadata": {}})
    assert cleared.status_code == 200, cleared.text
    assert await server_metadata(api, server) == {}


@pytest.mark.parametrize("body", [
    {"meta": {"other": "v"}},            # the URL's key is "k"
])
async def test_item_key_must_be_the_urls(api: Api, body: Any) -> None:
    server = await active(api)
    response = await call(api, "PUT", server, "k", body=body)
    assert fault(response, 400) == "Request body and URI mismatch"
    assert await server_metadata(api, server) == {}


@pytest.mark.parametrize(("method", "key", "body"), [
    ("PUT", "k", {"meta": {"k": "v", "j": "w"}}),      # exactly one item
    ("PUT", "k", {"meta": {}}),
    ("PUT", "k", {"meta": {"k": 1}}),
    ("PUT", "k", {"metadata": {"k": "v"}}),
    ("PUT", "k", {"meta": {"k": "v"}, "extra": 1}),
    ("PUT", None, {"meta": {"k": "v"}}),
    ("PUT", None, {}),
    ("POST", None, {"metadata": {"k": "x" * 256}}),    # values up to 255 characters
    ("POST", None, {"metadata": {"bad/key": "v"}}),    # keys as at create
    ("POST", None, {"metadata": {"": "v"}}),
    ("POST", None, {"metadata": {"k": None}}),
    ("POST", None, {"metadata": ["k"]}),
    ("POST", None, []),
])
async def test_malformed_bodies_are_400s(api: Api, method: str, key: str | None,
                                         body: Any) -> None:
    server = await active(api, metadata={"keep": "me"})
    response = await call(api, method, server, key, body=body)
    assert response.status_code == 400, response.text
    assert "badRequest" in response.json()
    assert await server_metadata(api, server) == {"keep": "me"}


async def test_the_metadata_items_quota_applies_to_writes(api: Api) -> None:
    server = await active(api, metadata={f"k{i}": "v" for i in range(MAX_METADATA - 1)})
    one_more = await call(api, "PUT", server, "last", body={"meta": {"last": "v"}})
    assert one_more.status_code == 200, one_more.text
    over = f"Maximum number of metadata items exceeds {MAX_METADATA}"
    assert fault(await call(api, "PUT", server, "over", body={"meta": {"over": "v"}}),
                 403) == over
    assert fault(await call(api, "POST", server, body={"metadata": {"over": "v"}}),
                 403) == over
    # Changing an existing key adds nothing; replacing counts only the new items.
    assert (await call(api, "POST", server, body={"metadata": {"k0": "w"}})).status_code == 200
    too_many = {f"n{i}": "v" for i in range(MAX_METADATA + 1)}
    assert fault(await call(api, "PUT", server, body={"metadata": too_many}), 403) == over
    assert len(await server_metadata(api, server)) == MAX_METADATA
    # The project's own quota, when an admin set one.
    quota = await api.request("PUT", "/v2.1/os-quota-sets/project-a", token=ADMIN,
                              json={"quota_set": {"metadata_items": 2}})
    assert quota.status_code == 200, quota.text
    assert fault(await call(api, "PUT", server, body={"metadata": {"a": "1", "b": "2",
                                                                  "c": "3"}}),
                 403) == "Maximum number of metadata items exceeds 2"
    assert (await call(api, "PUT", server, body={"metadata": {"a": "1"}})).status_code == 200


async def test_writes_refuse_a_locked_server_but_admins(api: Api) -> None:
    server = await active(api, metadata={"a": "1"})
    locked = await api.request("POST", f"/v2.1/servers/{server}/action", json={"lock": None})
    assert locked.status_code == 202, locked.text
    message = f"Instance {server} is locked"
    assert fault(await call(api, "POST", server, body={"metadata": {"b": "2"}}), 409) == message
    assert fault(await call(api, "PUT", server, body={"metadata": {}}), 409) == message
    assert fault(await call(api, "PUT", server, "b", body={"meta": {"b": "2"}}), 409) == message
    assert fault(await call(api, "DELETE", server, "a"), 409) == message
    # Reads still work, and a missing key is a 404 before the lock is looked at (Nova).
    assert (await call(api, "GET", server)).status_code == 200
    assert fault(await call(api, "DELETE", server, "zz"), 404) == NOT_FOUND
    by_admin = await call(api, "POST", server, token=ADMIN, body={"metadata": {"b": "2"}})
    assert by_admin.status_code == 200, by_admin.text
    assert await server_metadata(api, server) == {"a": "1", "b": "2"}


async def test_writes_refuse_a_building_or_busy_server(api: Api) -> None:
    building = await create_one(api, metadata={"a": "1"})
    assert fault(await call(api, "POST", building, body={"metadata": {"b": "2"}}), 409) == (
        f"Cannot 'update metadata' instance {building} while it is in vm_state building")
    assert fault(await call(api, "DELETE", building, "a"), 409) == (
        f"Cannot 'delete metadata' instance {building} while it is in vm_state building")
    busy = await active(api)
    await api.db.instances.update(InstanceId(busy), {"task_state": TaskState.REBOOTING},
                                  expected_task_state=(None,))
    assert fault(await call(api, "PUT", busy, "k", body={"meta": {"k": "v"}}), 409) == (
        f"Cannot 'update metadata' instance {busy} while it is in task_state rebooting")
    assert await server_metadata(api, building) == {"a": "1"}


async def test_another_projects_server_is_a_404(api: Api) -> None:
    server = await active(api, metadata={"a": "1"})
    for method, key, body in (("GET", None, None), ("GET", "a", None),
                              ("POST", None, {"metadata": {"b": "2"}}),
                              ("PUT", None, {"metadata": {}}),
                              ("PUT", "a", {"meta": {"a": "2"}}), ("DELETE", "a", None)):
        response = await call(api, method, server, key, token=BOB, body=body)
        assert fault(response, 404) == f"Instance {server} could not be found.", method
    assert await server_metadata(api, server) == {"a": "1"}
