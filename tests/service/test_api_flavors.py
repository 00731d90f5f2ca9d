"""``/v2.1/flavors``: Nova's views, visibility, paging, and admin-only management."""

from __future__ import annotations

from typing import Any

import pytest

from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)


async def test_detail_view_has_novas_fields(api: Api) -> None:
    response = await api.request("GET", "/v2.1/flavors/1")
    assert response.status_code == 200
    assert response.json()["flavor"] == {
        "id": "1", "name": "m1.small", "ram": 512, "vcpus": 1, "disk": 1,
        "OS-FLV-EXT-DATA:ephemeral": 0, "swap": "", "rxtx_factor": 1.0,
        "os-flavor-access:is_public": True, "OS-FLV-DISABLED:disabled": False,
        "links": [{"rel": "self", "href": "http://strato.test/v2.1/flavors/1"},
                  {"rel": "bookmark", "href": "http://strato.test/flavors/1"}]}


async def test_members_see_public_enabled_flavors_only(api: Api) -> None:
    listed = (await api.request("GET", "/v2.1/flavors")).json()["flavors"]
    assert [(f["id"], f["name"]) for f in listed] == [("1", "m1.small")]
    assert set(listed[0]) == {"id", "name", "links"}
    assert (await api.request("GET", "/v2.1/flavors/2")).status_code == 404


@pytest.mark.parametrize(("query", "ids"), [
    ("", ["1", "3"]), ("?is_public=none", ["1", "2", "3"]), ("?is_public=false", ["2"]),
    ("?minRam=1024&is_public=none", ["2"]), ("?minDisk=10&is_public=none", ["2"]),
])
async def test_admin_filters(api: Api, query: str, ids: list[str]) -> None:
    listed = (await api.request("GET", f"/v2.1/flavors/detail{query}", token=ADMIN)).json()
    assert [f["id"] for f in listed["flavors"]] == ids


async def test_paging(api: Api) -> None:
    page = (await api.request("GET", "/v2.1/flavors?is_public=none&limit=2",
                              token=ADMIN)).json()
    assert [f["id"] for f in page["flavors"]] == ["1", "2"]
    assert page["flavors_links"][0]["href"].endswith("marker=2")
    rest = (await api.request("GET", "/v2.1/flavors?is_public=none&limit=2&marker=2",
                              token=ADMIN)).json()
    assert [f["id"] for f in rest["flavors"]] == ["3"] and "flavors_links" not in rest


@pytest.mark.parametrize("query", ["limit=x", "marker=nope", "minRam=-1", "minDisk=a",
                                   "is_public=perhaps"])
async def test_bad_list_queries(api: Api, query: str) -> None:
    response = await api.request("GET", f"/v2.1/flavors?{query}", token=ADMIN)
    assert response.status_code == 400, response.text
    assert "badRequest" in response.json()


async def test_admin_creates_and_deletes(api: Api) -> None:
    body = {"flavor": {"name": "m1.big", "ram": "4096", "vcpus": 4, "disk": 40, "id": 10,
                       "swap": "", "OS-FLV-EXT-DATA:ephemeral": 5, "rxtx_factor": "2.0",
                       "os-flavor-access:is_public": "false"}}
    created = await api.request("POST", "/v2.1/flavors", token=ADMIN, json=body)
    assert created.status_code == 200, created.text
    flavor = created.json()["flavor"]
    assert (flavor["id"], flavor["ram"], flavor["swap"], flavor["rxtx_factor"]) == (
        "10", 4096, "", 2.0)
    assert flavor["OS-FLV-EXT-DATA:ephemeral"] == 5
    assert flavor["os-flavor-access:is_public"] is False
    again = await api.request("POST", "/v2.1/flavors", token=ADMIN, json=body)
    assert again.status_code == 409 and "conflictingRequest" in again.json()
    assert (await api.request("DELETE", "/v2.1/flavors/10", token=ADMIN)).status_code == 202
    assert (await api.request("GET", "/v2.1/flavors/10", token=ADMIN)).status_code == 404


async def test_create_without_id_gets_a_uuid_and_swap_in_mb(api: Api) -> None:
    body = {"flavor": {"name": "m1.swap", "ram": 512, "vcpus": 1, "disk": 1, "swap": 512}}
    flavor = (await api.request("POST", "/v2.1/flavors", token=ADMIN, json=body)).json()["flavor"]
    assert len(flavor["id"]) == 36 and flavor["swap"] == 512


async def test_members_cannot_manage_flavors(api: Api) -> None:
    body = {"flavor": {"name": "x", "ram": 1, "vcpus": 1, "disk": 0}}
    created = await api.request("POST", "/v2.1/flavors", token=ALICE, json=body)
    assert created.status_code == 403 and "forbidden" in created.json()
    assert (await api.request("DELETE", "/v2.1/flavors/1", token=ALICE)).status_code == 403


BAD_FLAVORS: list[dict[str, Any]] = [
    {"ram": 1, "vcpus": 1, "disk": 0},                       # no name
    {"name": " x", "ram": 1, "vcpus": 1, "disk": 0},         # whitespace
    {"name": "x", "ram": 0, "vcpus": 1, "disk": 0},          # ram < 1
    {"name": "x", "ram": 1, "vcpus": 1, "disk": -1},
    {"name": "x", "ram": 2**31, "vcpus": 1, "disk": 0},      # beyond the DB's integers
    {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "swap": "lots"},
    {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "rxtx_factor": 0},
    {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "id": "bad/id"},
    {"name": "x", "ram": 1, "vcpus": 1, "disk": 0, "extra": 1},
    {"name": "x", "ram": True, "vcpus": 1, "disk": 0},
]


@pytest.mark.parametrize("flavor", BAD_FLAVORS)
async def test_bad_flavor_bodies(api: Api, flavor: dict[str, Any]) -> None:
    response = await api.request("POST", "/v2.1/flavors", token=ADMIN, json={"flavor": flavor})
    assert response.status_code == 400, response.text
    assert "badRequest" in response.json()


async def test_extra_specs_are_listed_and_shown_by_key(api: Api) -> None:
    """What ``openstack flavor show`` reads: ``os-extra_specs`` and one key of it."""
    await api.db.flavors.create(Flavor(id=FlavorId("specs"), name="m1.specs", vcpus=1,
                                       memory_mb=512, root_gb=1,
                                       extra_specs={"hw:cpu_policy": "shared"}))
    listed = await api.request("GET", "/v2.1/flavors/specs/os-extra_specs")
    assert listed.status_code == 200, listed.text
    assert listed.json() == {"extra_specs": {"hw:cpu_policy": "shared"}}
    one = await api.request("GET", "/v2.1/flavors/specs/os-extra_specs/hw:cpu_policy")
    assert one.json() == {"hw:cpu_policy": "shared"}
    missing = await api.request("GET", "/v2.1/flavors/specs/os-extra_specs/hw:nope")
    assert missing.status_code == 404
    assert missing.json()["itemNotFound"]["message"] == (
        "Flavor specs has no extra specs with key hw:nope.")
    assert (await api.request("GET", "/v2.1/flavors/1/os-extra_specs")).json() == {
        "extra_specs": {}}
    # A flavor the caller cannot see has no specs to show either.
    assert (await api.request("GET", "/v2.1/flavors/2/os-extra_specs")).status_code == 404
