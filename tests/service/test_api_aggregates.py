"""``/v2.1/os-aggregates`` and ``/v2.1/os-availability-zone`` through the real app:
admin-only policy, the CRUD round trip, Nova's 400/404/409 answers, the one-zone-per-
host rule, ``updated_at`` moving with every change, failed requests changing nothing,
and the zone listings (available or not; the detailed one with the internal zone)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import create_engine
from strato.domain.ids import HostName
from strato.rpc.bus import Target
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

AGGREGATES = "/v2.1/os-aggregates"
ISO_MICRO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}$")


async def computes(api: Api, *hosts: str) -> None:
    for host in hosts:
        await api.db.services.heartbeat(binary="strato-compute", host=HostName(host),
                                        topic="compute")


async def create(api: Api, name: str, zone: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if zone is not None:
        body["availability_zone"] = zone
    resp = await api.request("POST", AGGREGATES, token=ADMIN, json={"aggregate": body})
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["aggregate"])


async def action(api: Api, aggregate_id: int | str, body: Any, *,
                 token: str = ADMIN) -> Any:
    return await api.request("POST", f"{AGGREGATES}/{aggregate_id}/action", token=token,
                             json=body)


async def show(api: Api, aggregate_id: int) -> dict[str, Any]:
    resp = await api.request("GET", f"{AGGREGATES}/{aggregate_id}", token=ADMIN)
    assert resp.status_code == 200, resp.text
    return dict(resp.json()["aggregate"])


async def listed(api: Api) -> list[dict[str, Any]]:
    resp = await api.request("GET", AGGREGATES, token=ADMIN)
    assert resp.status_code == 200, resp.text
    return list(resp.json()["aggregates"])


def fault(resp: Any, status: int, name: str) -> str:
    """The fault's message, after checking the status and Nova's body shape."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert list(body) == [name] and body[name]["code"] == status
    return str(body[name]["message"])


# ---- policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "path", "body", "policy"), [
    ("GET", AGGREGATES, None, "os-aggregates:index"),
    ("POST", AGGREGATES, {"aggregate": {"name": "x"}}, "os-aggregates:create"),
    ("GET", f"{AGGREGATES}/1", None, "os-aggregates:show"),
    ("PUT", f"{AGGREGATES}/1", {"aggregate": {"name": "y"}}, "os-aggregates:update"),
    ("DELETE", f"{AGGREGATES}/1", None, "os-aggregates:delete"),
    ("POST", f"{AGGREGATES}/1/action", {"add_host": {"host": "h1"}},
     "os-aggregates:add_host"),
    ("POST", f"{AGGREGATES}/1/action", {"remove_host": {"host": "h1"}},
     "os-aggregates:remove_host"),
    ("POST", f"{AGGREGATES}/1/action", {"set_metadata": {"metadata": {}}},
     "os-aggregates:set_metadata"),
    # An unreadable body: refused by the rule of the actions the caller may not do.
    ("POST", f"{AGGREGATES}/1/action", {"bogus": {}}, "os-aggregates:add_host"),
    ("GET", "/v2.1/os-availability-zone/detail", None, "os-availability-zone:detail"),
])
async def test_members_are_refused(api: Api, method: str, path: str, body: Any,
                                   policy: str) -> None:
    await computes(api, "h1")
    aggregate = await create(api, "rack")
    await action(api, aggregate["id"], {"add_host": {"host": "h1"}})
    resp = await api.request(method, path, token=ALICE, json=body)
    assert fault(resp, 403, "forbidden") == (
        f"Policy doesn't allow os_compute_api:{policy} to be performed.")
    # Nothing changed.
    assert await listed(api) == [await show(api, aggregate["id"])]
    assert (await show(api, aggregate["id"]))["hosts"] == ["h1"]


async def test_zone_list_is_open_to_members(api: Api) -> None:
    resp = await api.request("GET", "/v2.1/os-availability-zone", token=ALICE)
    assert resp.status_code == 200
    assert resp.json() == {"availabilityZoneInfo": []}
    resp = await api.request("GET", "/v2.1/os-availability-zone", token=None)
    assert resp.status_code == 401


# ---- CRUD ------------------------------------------------------------------------------


async def test_crud_round_trip(api: Api) -> None:
    created = await create(api, "rack1", "az1")
    assert created == {"availability_zone": "az1", "created_at": created["created_at"],
                       "deleted": False, "deleted_at": None, "hosts": [],
                       "id": created["id"], "metadata": {"availability_zone": "az1"},
                       "name": "rack1", "updated_at": created["created_at"]}
    assert isinstance(created["id"], int) and ISO_MICRO.match(created["created_at"])
    plain = await create(api, "rack2")
    assert (plain["availability_zone"], plain["metadata"]) == (None, {})
    assert await show(api, created["id"]) == created
    assert await listed(api) == [created, plain]

    resp = await api.request("PUT", f"{AGGREGATES}/{created['id']}", token=ADMIN,
                             json={"aggregate": {"name": "rack1b", "availability_zone": "az2"}})
    assert resp.status_code == 200, resp.text
    updated = resp.json()["aggregate"]
    assert (updated["name"], updated["availability_zone"], updated["metadata"]) == (
        "rack1b", "az2", {"availability_zone": "az2"})
    assert ISO_MICRO.match(updated["updated_at"])
    assert updated["updated_at"] > created["updated_at"]
    assert await show(api, created["id"]) == updated

    resp = await api.request("DELETE", f"{AGGREGATES}/{created['id']}", token=ADMIN)
    assert (resp.status_code, resp.content) == (200, b"")
    assert fault(await api.request("GET", f"{AGGREGATES}/{created['id']}", token=ADMIN),
                 404, "itemNotFound") == f"Aggregate {created['id']} could not be found."
    assert await listed(api) == [plain]


async def test_put_null_zone_leaves_the_zone(api: Api) -> None:
    aggregate = await create(api, "rack", "az1")
    resp = await api.request("PUT", f"{AGGREGATES}/{aggregate['id']}", token=ADMIN,
                             json={"aggregate": {"availability_zone": None}})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["aggregate"]["availability_zone"],
            resp.json()["aggregate"]["metadata"]) == (None, {})
    resp = await api.request("PUT", f"{AGGREGATES}/{aggregate['id']}", token=ADMIN,
                             json={"aggregate": {"name": "renamed",
                                                 "availability_zone": "az2"}})
    assert resp.json()["aggregate"]["availability_zone"] == "az2"
    resp = await api.request("PUT", f"{AGGREGATES}/{aggregate['id']}", token=ADMIN,
                             json={"aggregate": {"name": "again", "availability_zone": None}})
    assert resp.status_code == 200, resp.text
    assert (resp.json()["aggregate"]["name"],
            resp.json()["aggregate"]["availability_zone"]) == ("again", None)


@pytest.mark.parametrize("body", [
    {},
    {"aggregate": {}},
    {"aggregate": {"name": ""}},
    {"aggregate": {"name": "x" * 256}},
    {"aggregate": {"name": " padded"}},
    {"aggregate": {"name": 5}},
    {"aggregate": {"name": None}},
    {"aggregate": {"name": "x", "availability_zone": ""}},
    {"aggregate": {"name": "x", "availability_zone": "a:b"}},
    {"aggregate": {"name": "x", "availability_zone": "z" * 256}},
    {"aggregate": {"name": "x", "availability_zone": 3}},
    {"aggregate": {"name": "x", "availability_zone": "internal"}},
    {"aggregate": {"name": "x", "hosts": []}},
    {"aggregate": {"name": "x"}, "extra": 1},
    ["aggregate"],
])
async def test_create_rejects_bad_bodies(api: Api, body: Any) -> None:
    resp = await api.request("POST", AGGREGATES, token=ADMIN, json=body)
    fault(resp, 400, "badRequest")
    assert await listed(api) == []


async def test_create_rejects_malformed_json(api: Api) -> None:
    resp = await api.request("POST", AGGREGATES, token=ADMIN, content=b"{nope",
                             headers={"Content-Type": "application/json"})
    fault(resp, 400, "badRequest")


async def test_duplicate_name_is_409_and_creates_nothing(api: Api) -> None:
    first = await create(api, "rack", "az1")
    resp = await api.request("POST", AGGREGATES, token=ADMIN,
                             json={"aggregate": {"name": "rack", "availability_zone": "az2"}})
    assert fault(resp, 409, "conflictingRequest") == "Aggregate rack already exists."
    assert await listed(api) == [first]


async def test_ids(api: Api) -> None:
    for bad in ("abc", "1.5", "1e3", "0x1"):
        for method in ("GET", "DELETE"):
            resp = await api.request(method, f"{AGGREGATES}/{bad}", token=ADMIN)
            assert fault(resp, 400, "badRequest") == (
                "Invalid input received: id must be an integer")
    for unknown in ("1", "0", "-4", str(2**40)):
        resp = await api.request("GET", f"{AGGREGATES}/{unknown}", token=ADMIN)
        fault(resp, 404, "itemNotFound")
        resp = await api.request("PUT", f"{AGGREGATES}/{unknown}", token=ADMIN,
                                 json={"aggregate": {"name": "x"}})
        fault(resp, 404, "itemNotFound")
        fault(await action(api, unknown, {"set_metadata": {"metadata": {"k": "v"}}}),
              404, "itemNotFound")
        fault(await api.request("DELETE", f"{AGGREGATES}/{unknown}", token=ADMIN),
              404, "itemNotFound")


@pytest.mark.parametrize("body", [
    {"aggregate": {}},
    {"aggregate": {"name": None}},
    {"aggregate": {"name": ""}},
    {"aggregate": {"availability_zone": ""}},
    {"aggregate": {"availability_zone": "a:b"}},
    {"aggregate": {"uuid": "x"}},
    {"name": "x"},
])
async def test_update_rejects_bad_bodies(api: Api, body: Any) -> None:
    aggregate = await create(api, "rack", "az1")
    resp = await api.request("PUT", f"{AGGREGATES}/{aggregate['id']}", token=ADMIN, json=body)
    fault(resp, 400, "badRequest")
    assert await show(api, aggregate["id"]) == aggregate


async def test_rename_to_a_taken_name_is_409(api: Api) -> None:
    await create(api, "a")
    b = await create(api, "b")
    resp = await api.request("PUT", f"{AGGREGATES}/{b['id']}", token=ADMIN,
                             json={"aggregate": {"name": "a", "availability_zone": "az1"}})
    assert fault(resp, 409, "conflictingRequest") == "Aggregate a already exists."
    assert await show(api, b["id"]) == b


# ---- hosts and metadata ----------------------------------------------------------------


async def test_add_and_remove_hosts(api: Api) -> None:
    await computes(api, "h1", "h2")
    aggregate = await create(api, "rack", "az1")
    resp = await action(api, aggregate["id"], {"add_host": {"host": "h1"}})
    assert resp.status_code == 200, resp.text
    added = resp.json()["aggregate"]
    assert added["hosts"] == ["h1"] and ISO_MICRO.match(added["updated_at"])
    assert added["updated_at"] > aggregate["updated_at"]
    resp = await action(api, aggregate["id"], {"add_host": {"host": "h2"}})
    second = resp.json()["aggregate"]
    assert second["hosts"] == ["h1", "h2"] and second["updated_at"] > added["updated_at"]
    resp = await action(api, aggregate["id"], {"remove_host": {"host": "h1"}})
    assert resp.status_code == 200, resp.text
    removed = resp.json()["aggregate"]
    assert removed["hosts"] == ["h2"] and removed["updated_at"] > second["updated_at"]
    assert await show(api, aggregate["id"]) == removed


async def test_host_errors(api: Api) -> None:
    await computes(api, "h1", "h2")
    await api.db.services.heartbeat(binary="strato-conductor", host=HostName("ctl"),
                                    topic="conductor")
    aggregate = await create(api, "rack")
    member = (await action(api, aggregate["id"],
                           {"add_host": {"host": "h1"}})).json()["aggregate"]
    for host in ("nowhere", "ctl"):   # no compute service there
        assert fault(await action(api, aggregate["id"], {"add_host": {"host": host}}),
                     404, "itemNotFound") == f"Compute host {host} could not be found."
    assert fault(await action(api, aggregate["id"], {"add_host": {"host": "h1"}}),
                 409, "conflictingRequest") == (
        f"Aggregate {aggregate['id']} already has host h1.")
    assert fault(await action(api, aggregate["id"], {"remove_host": {"host": "h2"}}),
                 404, "itemNotFound") == f"Aggregate {aggregate['id']} has no host h2."
    fault(await action(api, 999, {"add_host": {"host": "h1"}}), 404, "itemNotFound")
    assert await show(api, aggregate["id"]) == member


async def test_zone_conflicts_are_400_and_change_nothing(api: Api) -> None:
    await computes(api, "h1", "h2")
    az1 = await create(api, "az1-hosts", "az1")
    az2 = await create(api, "az2-hosts", "az2")
    plain = await create(api, "gpu")
    await action(api, az1["id"], {"add_host": {"host": "h1"}})
    await action(api, plain["id"], {"add_host": {"host": "h1"}})       # no zone: fine
    await action(api, plain["id"], {"add_host": {"host": "h2"}})
    az2 = (await action(api, az2["id"], {"add_host": {"host": "h2"}})).json()["aggregate"]
    plain = await show(api, plain["id"])

    message = fault(await action(api, az2["id"], {"add_host": {"host": "h1"}}),
                    400, "badRequest")
    assert message.startswith(f"Cannot add host to aggregate {az2['id']}. Reason: One or "
                              "more hosts already in availability zone(s) ['az1']")
    assert await show(api, az2["id"]) == az2

    message = fault(await action(api, plain["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az2", "ssd": "true"}}}), 400, "badRequest")
    assert "h1 is in az1" in message and "h2" not in message
    resp = await api.request("PUT", f"{AGGREGATES}/{plain['id']}", token=ADMIN,
                             json={"aggregate": {"name": "renamed", "availability_zone": "az3"}})
    assert "already in availability zone(s)" in fault(resp, 400, "badRequest")
    assert await show(api, plain["id"]) == plain              # neither renamed nor tagged

    # An empty zone through the metadata is refused too.
    fault(await action(api, plain["id"], {"set_metadata": {"metadata": {
        "availability_zone": ""}}}), 400, "badRequest")
    assert await show(api, plain["id"]) == plain


async def test_set_metadata(api: Api) -> None:
    aggregate = await create(api, "rack", "az1")
    resp = await action(api, aggregate["id"], {"set_metadata": {"metadata": {
        "ssd": "true", "tier": "gold", "note": ""}}})
    assert resp.status_code == 200, resp.text
    first = resp.json()["aggregate"]
    assert first["metadata"] == {"availability_zone": "az1", "ssd": "true", "tier": "gold",
                                 "note": ""}
    assert first["updated_at"] > aggregate["updated_at"]
    resp = await action(api, aggregate["id"], {"set_metadata": {"metadata": {
        "tier": None, "missing": None, "availability_zone": "az9"}}})
    second = resp.json()["aggregate"]
    assert second["metadata"] == {"availability_zone": "az9", "ssd": "true", "note": ""}
    assert second["availability_zone"] == "az9"
    assert second["updated_at"] > first["updated_at"]
    assert await show(api, aggregate["id"]) == second


@pytest.mark.parametrize("body", [
    {},
    {"add_host": {"host": "h1"}, "remove_host": {"host": "h1"}},
    {"reboot": {}},
    {"add_host": {}},
    {"add_host": {"host": ""}},
    {"add_host": {"host": 1}},
    {"add_host": {"host": "h1", "extra": 1}},
    {"add_host": "h1"},
    {"remove_host": {"hostname": "h1"}},
    {"set_metadata": {}},
    {"set_metadata": {"metadata": {"bad/key": "v"}}},
    {"set_metadata": {"metadata": {"": "v"}}},
    {"set_metadata": {"metadata": {"k": "v" * 256}}},
    {"set_metadata": {"metadata": {"k": 1}}},
    {"set_metadata": {"metadata": ["k"]}},
    ["add_host"],
])
async def test_actions_reject_bad_bodies(api: Api, body: Any) -> None:
    await computes(api, "h1")
    aggregate = await create(api, "rack")
    fault(await action(api, aggregate["id"], body), 400, "badRequest")
    assert await show(api, aggregate["id"]) == aggregate


async def test_delete_with_hosts_is_400(api: Api) -> None:
    await computes(api, "h1")
    aggregate = await create(api, "rack", "az1")
    member = (await action(api, aggregate["id"],
                           {"add_host": {"host": "h1"}})).json()["aggregate"]
    resp = await api.request("DELETE", f"{AGGREGATES}/{aggregate['id']}", token=ADMIN)
    assert "not empty" in fault(resp, 400, "badRequest")
    assert await show(api, aggregate["id"]) == member
    await action(api, aggregate["id"], {"remove_host": {"host": "h1"}})
    resp = await api.request("DELETE", f"{AGGREGATES}/{aggregate['id']}", token=ADMIN)
    assert resp.status_code == 200
    assert await listed(api) == []


# ---- availability zones ----------------------------------------------------------------


async def age_service(tmp_path: Path, host: str, seconds: float) -> None:
    """Make the services of ``host`` look silent for ``seconds`` (so down)."""
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'strato.db'}")
    try:
        async with engine.begin() as conn:
            await conn.execute(sa.update(t.services).where(t.services.c.host == host)
                               .values(last_seen=datetime.now(UTC) - timedelta(seconds=seconds)))
    finally:
        await engine.dispose()


async def disable(api: Api, host: str) -> None:
    resp = await api.request("PUT", "/v2.1/os-services/disable", token=ADMIN,
                             json={"host": host, "binary": "strato-compute"})
    assert resp.status_code == 200, resp.text


async def zone_setup(api: Api, tmp_path: Path) -> None:
    """az1: h1 (up) and h5 (down); nova: h2 (no aggregate); az3: h3 (disabled);
    az4: h4 (down); internal: a conductor and a scheduler on ctl."""
    await computes(api, "h1", "h2", "h3", "h4", "h5")
    for binary in ("strato-conductor", "strato-scheduler"):
        await api.db.services.heartbeat(binary=binary, host=HostName("ctl"),
                                        topic=binary.removeprefix("strato-"))
    for zone, hosts in (("az1", ("h1", "h5")), ("az3", ("h3",)), ("az4", ("h4",))):
        aggregate = await create(api, f"{zone}-hosts", zone)
        for host in hosts:
            await action(api, aggregate["id"], {"add_host": {"host": host}})
    plain = await create(api, "no-zone")
    await action(api, plain["id"], {"add_host": {"host": "h2"}})
    await disable(api, "h3")
    await age_service(tmp_path, "h4", 3600)
    await age_service(tmp_path, "h5", 3600)


async def test_zone_list(api: Api, tmp_path: Path) -> None:
    await zone_setup(api, tmp_path)
    resp = await api.request("GET", "/v2.1/os-availability-zone", token=ALICE)
    assert resp.status_code == 200, resp.text
    assert resp.json() == {"availabilityZoneInfo": [
        {"zoneName": "az1", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "nova", "zoneState": {"available": True}, "hosts": None},
        {"zoneName": "az3", "zoneState": {"available": False}, "hosts": None},
        {"zoneName": "az4", "zoneState": {"available": False}, "hosts": None},
    ]}


async def test_zone_detail(api: Api, tmp_path: Path) -> None:
    await zone_setup(api, tmp_path)
    resp = await api.request("GET", "/v2.1/os-availability-zone/detail", token=ADMIN)
    assert resp.status_code == 200, resp.text
    zones = resp.json()["availabilityZoneInfo"]
    assert [(z["zoneName"], z["zoneState"]["available"]) for z in zones] == [
        ("az1", True), ("internal", True), ("nova", True), ("az3", False), ("az4", False)]
    by_name = {z["zoneName"]: z["hosts"] for z in zones}

    def state(hosts: dict[str, Any]) -> dict[str, dict[str, tuple[bool, bool]]]:
        for services in hosts.values():
            for service in services.values():
                assert ISO_MICRO.match(service["updated_at"])
        return {host: {binary: (s["available"], s["active"]) for binary, s in services.items()}
                for host, services in hosts.items()}

    assert state(by_name["az1"]) == {"h1": {"strato-compute": (True, True)},
                                     "h5": {"strato-compute": (False, True)}}
    assert state(by_name["nova"]) == {"h2": {"strato-compute": (True, True)}}
    assert state(by_name["az3"]) == {"h3": {"strato-compute": (True, False)}}
    assert state(by_name["az4"]) == {"h4": {"strato-compute": (False, True)}}
    assert state(by_name["internal"]) == {"ctl": {"strato-conductor": (True, True),
                                                  "strato-scheduler": (True, True)}}


async def test_zones_follow_the_aggregates(api: Api) -> None:
    await computes(api, "h1")

    async def zones() -> list[str]:
        resp = await api.request("GET", "/v2.1/os-availability-zone", token=ALICE)
        return [z["zoneName"] for z in resp.json()["availabilityZoneInfo"]]

    assert await zones() == ["nova"]
    aggregate = await create(api, "rack", "az1")
    assert await zones() == ["nova"]                    # a zone without hosts is no zone
    await action(api, aggregate["id"], {"add_host": {"host": "h1"}})
    assert await zones() == ["az1"]
    await action(api, aggregate["id"], {"set_metadata": {"metadata": {
        "availability_zone": "az2"}}})
    assert await zones() == ["az2"]
    await action(api, aggregate["id"], {"remove_host": {"host": "h1"}})
    assert await zones() == ["nova"]


async def test_os_services_shows_each_computes_zone_and_changes_reach_the_schedulers(
        api: Api) -> None:
    await computes(api, "h1", "h2")
    aggregate = await create(api, "az1-hosts", "az1")
    await action(api, aggregate["id"], {"add_host": {"host": "h1"}})
    services = (await api.request("GET", "/v2.1/os-services", token=ADMIN)).json()["services"]
    assert {s["host"]: s["zone"] for s in services} == {"h1": "az1", "h2": "nova"}
    # Every change was published to the schedulers' fanout topic, so they read the
    # hosts again before their next decision.
    published = [s.message for s in api.bus.sent
                 if s.kind == "publish" and s.target == Target("scheduler_fanout")]
    assert [m.reason for m in published] == [  # type: ignore[attr-defined]
        f"aggregate {aggregate['id']} created", f"host h1 joined aggregate {aggregate['id']}"]
