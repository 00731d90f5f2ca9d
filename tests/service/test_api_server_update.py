"""``PUT /v2.1/servers/{id}`` (Nova 2.1): a new name and access IPs, answered with Nova's
basic server view; and the ``accessIPv4``/``accessIPv6`` a create gives, kept and shown."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from strato.domain.ids import InstanceId
from tests.api_fixtures import (
    ADMIN,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_servers import create_one, place


async def put(api: Api, server_id: str, server: Any, token: str | None = None) -> httpx.Response:
    kwargs: dict[str, Any] = {} if token is None else {"token": token}
    return await api.request("PUT", f"/v2.1/servers/{server_id}", json={"server": server},
                             **kwargs)


async def shown(api: Api, server_id: str) -> dict[str, Any]:
    response = await api.request("GET", f"/v2.1/servers/{server_id}")
    assert response.status_code == 200, response.text
    server: dict[str, Any] = response.json()["server"]
    return server


async def test_create_keeps_the_access_ips(api: Api) -> None:
    server = await create_one(api, accessIPv4="192.0.2.10", accessIPv6="2001:DB8::0:1")
    view = await shown(api, server)
    # The IPv6 address in its canonical form, as Nova stores it.
    assert (view["accessIPv4"], view["accessIPv6"]) == ("192.0.2.10", "2001:db8::1")
    [row] = await api.instances()
    assert (row.access_ip_v4, row.access_ip_v6) == ("192.0.2.10", "2001:db8::1")
    plain = await create_one(api)
    assert ((await shown(api, plain))["accessIPv4"], (await shown(api, plain))["accessIPv6"]) \
        == ("", "")


async def test_update_renames_and_sets_access_ips(api: Api) -> None:
    server = await create_one(api, name="old", metadata={"k": "v"})
    response = await put(api, server, {"name": "new", "accessIPv4": "198.51.100.7",
                                       "accessIPv6": "2001:db8::7"})
    assert response.status_code == 200, response.text
    body = response.json()["server"]
    assert (body["id"], body["name"]) == (server, "new")
    assert (body["accessIPv4"], body["accessIPv6"]) == ("198.51.100.7", "2001:db8::7")
    assert body["metadata"] == {"k": "v"}
    # Nova's basic view: no extension attributes (Tempest's update_server schema).
    assert set(body) == {"id", "name", "links", "status", "tenant_id", "user_id", "metadata",
                         "image", "flavor", "created", "updated", "addresses", "accessIPv4",
                         "accessIPv6", "hostId", "OS-DCF:diskConfig", "progress"}
    view = await shown(api, server)
    assert (view["name"], view["accessIPv4"], view["accessIPv6"]) == (
        "new", "198.51.100.7", "2001:db8::7")
    listed = (await api.request("GET", "/v2.1/servers")).json()["servers"]
    assert [s["name"] for s in listed] == ["new"]


async def test_update_changes_only_what_it_names(api: Api) -> None:
    server = await create_one(api, name="keep", accessIPv4="192.0.2.1")
    assert (await put(api, server, {"accessIPv6": "::1"})).status_code == 200
    view = await shown(api, server)
    assert (view["name"], view["accessIPv4"], view["accessIPv6"]) == ("keep", "192.0.2.1",
                                                                      "::1")
    empty = await put(api, server, {})
    assert empty.status_code == 200, empty.text
    assert empty.json()["server"]["name"] == "keep"
    disk = await put(api, server, {"OS-DCF:diskConfig": "AUTO"})
    assert disk.status_code == 200, disk.text


@pytest.mark.parametrize("server", [
    {"accessIPv4": "2001:db8::1"},
    {"accessIPv4": "not-an-ip"},
    {"accessIPv4": ""},
    {"accessIPv6": "192.0.2.1"},
    {"accessIPv6": None},
    {"name": ""},
    {"name": None},
    {"name": "x" * 256},
    {"name": 5},
    {"hostname": "nope"},
    {"OS-DCF:diskConfig": "SOMETIMES"},
])
async def test_bad_update_is_a_400_and_changes_nothing(api: Api, server: Any) -> None:
    made = await create_one(api, name="same")
    response = await put(api, made, server)
    assert response.status_code == 400, response.text
    assert "badRequest" in response.json()
    assert (await shown(api, made))["name"] == "same"


@pytest.mark.parametrize("body", [{}, {"server": "x"}, {"server": {}, "extra": 1}, []])
async def test_malformed_update_body_is_a_400(api: Api, body: Any) -> None:
    made = await create_one(api)
    response = await api.request("PUT", f"/v2.1/servers/{made}", json=body)
    assert response.status_code == 400, response.text


async def test_update_of_another_projects_server_is_a_404(api: Api) -> None:
    made = await create_one(api, name="mine")
    response = await put(api, made, {"name": "theirs"}, token=BOB)
    assert response.status_code == 404, response.text
    assert response.json()["itemNotFound"]["message"] == f"Instance {made} could not be found."
    missing = await put(api, "5a1c3f0e-8e6b-4f3e-9a55-6d2c2b1f0a77", {"name": "x"})
    assert missing.status_code == 404
    admin = await put(api, made, {"name": "by-admin"}, token=ADMIN)
    assert admin.status_code == 200, admin.text
    assert (await shown(api, made))["name"] == "by-admin"


async def test_a_locked_server_may_still_be_updated(api: Api) -> None:
    # Nova's update_instance checks no lock (only the metadata writes do).
    made = await create_one(api)
    await place(api, made)
    locked = await api.request("POST", f"/v2.1/servers/{made}/action", json={"lock": None})
    assert locked.status_code == 202, locked.text
    assert (await api.db.instances.get(InstanceId(made))).locked
    response = await put(api, made, {"name": "renamed"})
    assert response.status_code == 200, response.text
