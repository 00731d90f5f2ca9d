"""Server groups through the Compute API (``/v2.1/os-server-groups``, microversion 2.1):
create, list, show and delete, project isolation, the admin's view, every refused body
and query, the ``server_groups`` quota, and members that stop being members when their
instance is deleted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import create_engine
from strato.domain.ids import GroupId
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

GROUPS = "/v2.1/os-server-groups"
POLICIES = ["affinity", "anti-affinity", "soft-affinity", "soft-anti-affinity"]
UNKNOWN = "5a1c3f0e-8e6b-4f3e-9a55-6d2c2b1f0a77"


def assert_fault(response: httpx.Response, status: int, name: str, message: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    assert message in body[name]["message"], body[name]["message"]


async def create(api: Api, token: str = ALICE, name: str = "web",
                 policy: str = "anti-affinity") -> httpx.Response:
    return await api.request("POST", GROUPS, token=token,
                             json={"server_group": {"name": name, "policies": [policy]}})


async def create_one(api: Api, token: str = ALICE, name: str = "web",
                     policy: str = "anti-affinity") -> dict[str, Any]:
    response = await create(api, token, name, policy)
    assert response.status_code == 200, response.text
    group: dict[str, Any] = response.json()["server_group"]
    return group


async def listed(api: Api, token: str = ALICE, query: str = "") -> list[str]:
    response = await api.request("GET", f"{GROUPS}{query}", token=token)
    assert response.status_code == 200, response.text
    return [g["name"] for g in response.json()["server_groups"]]


async def every_group(api: Api) -> list[str]:
    """Every group's name, straight from the database."""
    return [g.name for g in await api.db.groups.list()]


async def create_server(api: Api, name: str = "web") -> str:
    response = await api.create_server(ALICE, name=name)
    assert response.status_code == 202, response.text
    server_id: str = response.json()["server"]["id"]
    return server_id


async def add_members(tmp_path: Path, group_id: str, *instance_ids: str) -> None:
    """Insert member rows as the instance creation transaction would."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'strato.db'}")
    try:
        async with engine.begin() as conn:
            pk = (await conn.execute(sa.select(t.server_groups.c.id)
                                     .where(t.server_groups.c.uuid == group_id))).scalar_one()
            await conn.execute(t.server_group_members.insert(), [
                {"group_id": pk, "instance_uuid": instance_id, "created_at": datetime.now(UTC)}
                for instance_id in instance_ids])
    finally:
        await engine.dispose()


async def member_rows(tmp_path: Path) -> int:
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'strato.db'}")
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count())
                                           .select_from(t.server_group_members))).scalar_one())
    finally:
        await engine.dispose()


# --- create, show, list, delete --------------------------------------------------------------

async def test_create_show_list_delete_round_trip(api: Api) -> None:
    response = await create(api, name="db tier", policy="anti-affinity")
    assert response.status_code == 200, response.text
    group = response.json()["server_group"]
    assert set(group) == {"id", "name", "policies", "members", "metadata"}
    assert group["name"] == "db tier"
    assert group["policies"] == ["anti-affinity"]
    assert group["members"] == []
    assert group["metadata"] == {}
    # 2.1 shows neither the owner (2.13) nor policy/rules (2.64).
    assert "project_id" not in group and "user_id" not in group and "rules" not in group

    shown = await api.request("GET", f"{GROUPS}/{group['id']}")
    assert shown.status_code == 200
    assert shown.json() == {"server_group": group}

    everything = await api.request("GET", GROUPS)
    assert everything.json() == {"server_groups": [group]}

    deleted = await api.request("DELETE", f"{GROUPS}/{group['id']}")
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert_fault(await api.request("GET", f"{GROUPS}/{group['id']}"), 404, "itemNotFound",
                 f"Instance group {group['id']} could not be found.")
    assert_fault(await api.request("DELETE", f"{GROUPS}/{group['id']}"), 404, "itemNotFound")
    assert await listed(api) == []


async def test_the_group_belongs_to_the_caller(api: Api) -> None:
    group = await create_one(api, ALICE)
    stored = await api.db.groups.get(GroupId(group["id"]))
    assert (stored.project_id, stored.user_id) == ("project-a", "alice")
    assert stored.created_at is not None


@pytest.mark.parametrize("policy", POLICIES)
async def test_every_policy_is_accepted(api: Api, policy: str) -> None:
    # Nova takes the soft policies only from 2.15; strato takes them at 2.1.
    group = await create_one(api, policy=policy)
    assert group["policies"] == [policy]
    stored = await api.db.groups.get(GroupId(group["id"]))
    assert stored.policy.value == policy


async def test_microversions_past_2_1_are_refused(api: Api) -> None:
    # Clients asking 2.15 for the soft policies get 406: strato speaks 2.1 only.
    response = await api.request(
        "POST", GROUPS, headers={"OpenStack-API-Version": "compute 2.15"},
        json={"server_group": {"name": "web", "policies": ["soft-affinity"]}})
    assert response.status_code == 406, response.text
    assert await every_group(api) == []


async def test_a_name_of_255_characters_is_accepted(api: Api) -> None:
    group = await create_one(api, name="é" * 255)
    assert group["name"] == "é" * 255


async def test_names_need_not_be_unique(api: Api) -> None:
    first = await create_one(api, name="same")
    second = await create_one(api, name="same")
    assert first["id"] != second["id"]
    assert await listed(api) == ["same", "same"]


async def test_unknown_ids_are_404(api: Api) -> None:
    for method in ("GET", "DELETE"):
        assert_fault(await api.request(method, f"{GROUPS}/{UNKNOWN}"), 404, "itemNotFound",
                     f"Instance group {UNKNOWN} could not be found.")
        assert_fault(await api.request(method, f"{GROUPS}/not-a-uuid"), 404, "itemNotFound")


async def test_a_request_needs_a_token(api: Api) -> None:
    assert (await api.request("GET", GROUPS, token=None)).status_code == 401
    assert (await create(api, token="wrong")).status_code == 401
    assert await every_group(api) == []


# --- projects and the admin ------------------------------------------------------------------

async def test_projects_do_not_see_each_others_groups(api: Api) -> None:
    alices = await create_one(api, ALICE, name="alice's")
    bobs = await create_one(api, BOB, name="bob's")
    assert await listed(api, ALICE) == ["alice's"]
    assert await listed(api, BOB) == ["bob's"]
    for method in ("GET", "DELETE"):
        assert_fault(await api.request(method, f"{GROUPS}/{alices['id']}", token=BOB),
                     404, "itemNotFound", f"Instance group {alices['id']} could not be found.")
        assert_fault(await api.request(method, f"{GROUPS}/{bobs['id']}", token=ALICE),
                     404, "itemNotFound")
    # Bob's failed delete left Alice's group alone.
    assert (await api.request("GET", f"{GROUPS}/{alices['id']}")).status_code == 200


async def test_all_projects_is_ignored_for_members(api: Api) -> None:
    await create_one(api, ALICE, name="alice's")
    await create_one(api, BOB, name="bob's")
    assert await listed(api, ALICE, "?all_projects=True") == ["alice's"]
    assert await listed(api, BOB, "?all_projects=1") == ["bob's"]


async def test_an_admin_lists_every_project_with_all_projects(api: Api) -> None:
    await create_one(api, ALICE, name="alice's")
    await create_one(api, BOB, name="bob's")
    await create_one(api, ADMIN, name="admin's")
    assert await listed(api, ADMIN) == ["admin's"]
    assert await listed(api, ADMIN, "?all_projects=True") == ["alice's", "bob's", "admin's"]
    # Nova looks only at whether the parameter is there; an explicit "no" is respected.
    assert await listed(api, ADMIN, "?all_projects") == ["alice's", "bob's", "admin's"]
    assert await listed(api, ADMIN, "?all_projects=False") == ["admin's"]
    assert await listed(api, ADMIN, "?all_projects=0") == ["admin's"]


async def test_an_admin_shows_and_deletes_any_projects_group(api: Api) -> None:
    group = await create_one(api, ALICE)
    shown = await api.request("GET", f"{GROUPS}/{group['id']}", token=ADMIN)
    assert shown.status_code == 200
    assert shown.json() == {"server_group": group}
    assert (await api.request("DELETE", f"{GROUPS}/{group['id']}", token=ADMIN)).status_code \
        == 204
    assert await listed(api, ALICE) == []


# --- paging ---------------------------------------------------------------------------------

async def test_limit_and_offset_page_the_list_oldest_first(api: Api) -> None:
    for n in range(5):
        await create_one(api, name=f"g{n}")
    await create_one(api, BOB, name="other")
    assert await listed(api) == ["g0", "g1", "g2", "g3", "g4"]
    assert await listed(api, query="?limit=2") == ["g0", "g1"]
    assert await listed(api, query="?limit=2&offset=2") == ["g2", "g3"]
    assert await listed(api, query="?offset=4") == ["g4"]
    assert await listed(api, query="?offset=5") == []
    assert await listed(api, query=f"?offset={10**30}") == []
    # Nova's common.limited: a limit of 0 means "as many as the API returns at most".
    assert await listed(api, query="?limit=0") == ["g0", "g1", "g2", "g3", "g4"]
    assert await listed(api, query="?limit=100000") == ["g0", "g1", "g2", "g3", "g4"]
    assert await listed(api, ADMIN, "?all_projects=1&offset=4&limit=1") == ["g4"]
    assert await listed(api, ADMIN, "?all_projects=1&offset=5") == ["other"]


@pytest.mark.parametrize("query", ["limit=-1", "limit=abc", "limit=1.5", "limit=",
                                   "offset=-1", "offset=x", "offset=٣", "limit=%201"])
async def test_bad_limit_or_offset_is_a_400(api: Api, query: str) -> None:
    await create_one(api)
    name = query.split("=")[0]
    assert_fault(await api.request("GET", f"{GROUPS}?{query}"), 400, "badRequest",
                 f"'{name}' must be a non-negative integer")


# --- refused bodies -------------------------------------------------------------------------

GOOD = {"name": "web", "policies": ["affinity"]}


@pytest.mark.parametrize(("body", "message"), [
    ({}, "'server_group' is a required property"),
    ({"server_group": GOOD, "extra": 1},
     "Additional properties are not allowed ('extra' was unexpected)"),
    ({"server_group": {**GOOD, "metadata": {}}},
     "Additional properties are not allowed ('metadata' was unexpected)"),
    ({"server_group": {**GOOD, "rules": {"max_server_per_host": 2}}},
     "Additional properties are not allowed ('rules' was unexpected)"),
    ({"server_group": {**GOOD, "policy": "affinity"}},
     "Additional properties are not allowed ('policy' was unexpected)"),
    ({"server_group": None}, "server_group"),
    ({"server_group": "web"}, "server_group"),
    ({"server_group": {"policies": ["affinity"]}}, "'name' is a required property"),
    ({"server_group": {"name": "web"}}, "'policies' is a required property"),
    ({"server_group": {**GOOD, "name": ""}}, "server_group.name"),
    ({"server_group": {**GOOD, "name": "x" * 256}}, "server_group.name"),
    ({"server_group": {**GOOD, "name": " web"}}, "Leading or trailing whitespace"),
    ({"server_group": {**GOOD, "name": "web\t"}}, "Leading or trailing whitespace"),
    ({"server_group": {**GOOD, "name": "   "}}, "Leading or trailing whitespace"),
    ({"server_group": {**GOOD, "name": "we\x00b"}}, "Control characters"),
    ({"server_group": {**GOOD, "name": 5}}, "server_group.name"),
    ({"server_group": {**GOOD, "name": None}}, "server_group.name"),
    ({"server_group": {**GOOD, "policies": "affinity"}}, "server_group.policies"),
    ({"server_group": {**GOOD, "policies": {"affinity": 1}}}, "server_group.policies"),
    ({"server_group": {**GOOD, "policies": None}}, "server_group.policies"),
    ({"server_group": {**GOOD, "policies": []}}, "Exactly one policy is required"),
    ({"server_group": {**GOOD, "policies": ["affinity", "anti-affinity"]}},
     "Exactly one policy is required"),
    ({"server_group": {**GOOD, "policies": ["affinity", "affinity"]}},
     "Exactly one policy is required"),
    ({"server_group": {**GOOD, "policies": ["spread"]}},
     "'spread' is not one of ['affinity', 'anti-affinity', 'soft-affinity', "
     "'soft-anti-affinity']"),
    ({"server_group": {**GOOD, "policies": ["Affinity"]}}, "'Affinity' is not one of"),
    ({"server_group": {**GOOD, "policies": [""]}}, "'' is not one of"),
    ({"server_group": {**GOOD, "policies": [1]}}, "server_group.policies.0"),
    ({"server_group": {**GOOD, "policies": [None]}}, "server_group.policies.0"),
    ({"server_group": {**GOOD, "policies": [["affinity"]]}}, "server_group.policies.0"),
    ([GOOD], "The request body must be a JSON object."),
    ("server_group", "The request body must be a JSON object."),
])
async def test_bad_bodies_are_400_and_create_nothing(api: Api, body: Any, message: str) -> None:
    response = await api.request("POST", GROUPS, json=body)
    assert_fault(response, 400, "badRequest", message)
    assert await every_group(api) == []


@pytest.mark.parametrize(("raw", "message"), [
    (b"", "the body is empty"),
    (b"{", "Malformed request body"),
    (b"\xff\xfe", "Malformed request body"),
])
async def test_unreadable_bodies_are_400(api: Api, raw: bytes, message: str) -> None:
    response = await api.request("POST", GROUPS, content=raw,
                                 headers={"Content-Type": "application/json"})
    assert_fault(response, 400, "badRequest", message)
    assert await every_group(api) == []


# --- quota ----------------------------------------------------------------------------------

async def set_quota(api: Api, project: str, limit: int) -> None:
    response = await api.request("PUT", f"/v2.1/os-quota-sets/{project}", token=ADMIN,
                                 json={"quota_set": {"server_groups": limit}})
    assert response.status_code == 200, response.text
    assert response.json()["quota_set"]["server_groups"] == limit


async def test_the_server_groups_quota_is_enforced(api: Api) -> None:
    await set_quota(api, "project-a", 1)
    await create_one(api, name="first")
    refused = await create(api, name="second")
    assert_fault(refused, 403, "forbidden", "Quota exceeded, too many server groups.")
    assert await every_group(api) == ["first"]
    # Another project's quota is its own.
    await create_one(api, BOB, name="bob's")
    # Deleting a group makes room again.
    [group] = (await api.request("GET", GROUPS)).json()["server_groups"]
    assert (await api.request("DELETE", f"{GROUPS}/{group['id']}")).status_code == 204
    await create_one(api, name="again")
    assert sorted(await every_group(api)) == ["again", "bob's"]


async def test_a_zero_quota_refuses_the_first_group(api: Api) -> None:
    await set_quota(api, "project-a", 0)
    assert_fault(await create(api), 403, "forbidden", "too many server groups")
    assert await every_group(api) == []


async def test_an_unlimited_quota_is_no_limit(api: Api) -> None:
    await set_quota(api, "project-a", -1)
    for n in range(12):  # past the default of 10
        await create_one(api, name=f"g{n}")
    assert len(await every_group(api)) == 12


async def test_the_default_quota_is_ten_groups(api: Api) -> None:
    for n in range(10):
        await create_one(api, name=f"g{n}")
    assert_fault(await create(api), 403, "forbidden", "Quota exceeded, too many server groups.")
    assert len(await every_group(api)) == 10


async def test_a_bad_body_is_refused_before_the_quota(api: Api) -> None:
    await set_quota(api, "project-a", 0)
    response = await api.request("POST", GROUPS, json={"server_group": {"name": "web"}})
    assert_fault(response, 400, "badRequest", "'policies' is a required property")


# --- members --------------------------------------------------------------------------------

async def test_members_are_the_live_instances_in_joining_order(api: Api,
                                                               tmp_path: Path) -> None:
    group = await create_one(api)
    first, second, third = [await create_server(api, f"vm{n}") for n in range(3)]
    # Joined in this order; one member row names an instance that never existed.
    await add_members(tmp_path, group["id"], third, first, UNKNOWN, second)
    shown = await api.request("GET", f"{GROUPS}/{group['id']}")
    assert shown.json()["server_group"]["members"] == [third, first, second]

    assert (await api.request("DELETE", f"/v2.1/servers/{first}")).status_code == 204
    shown = await api.request("GET", f"{GROUPS}/{group['id']}")
    assert shown.json()["server_group"]["members"] == [third, second]
    [in_list] = (await api.request("GET", GROUPS)).json()["server_groups"]
    assert in_list["members"] == [third, second]
    [admin_view] = (await api.request("GET", f"{GROUPS}?all_projects=1",
                                      token=ADMIN)).json()["server_groups"]
    assert admin_view["members"] == [third, second]


async def test_members_stay_with_their_own_group(api: Api, tmp_path: Path) -> None:
    one = await create_one(api, name="one")
    two = await create_one(api, name="two", policy="affinity")
    a, b = await create_server(api, "a"), await create_server(api, "b")
    await add_members(tmp_path, one["id"], a)
    await add_members(tmp_path, two["id"], b)
    groups = (await api.request("GET", GROUPS)).json()["server_groups"]
    assert [(g["name"], g["members"]) for g in groups] == [("one", [a]), ("two", [b])]


async def test_deleting_a_group_keeps_its_instances(api: Api, tmp_path: Path) -> None:
    group = await create_one(api)
    server = await create_server(api)
    await add_members(tmp_path, group["id"], server)
    assert (await api.request("DELETE", f"{GROUPS}/{group['id']}")).status_code == 204
    assert await member_rows(tmp_path) == 0
    assert (await api.request("GET", f"/v2.1/servers/{server}")).status_code == 200
