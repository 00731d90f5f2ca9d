"""Security groups and rules through the Network API (``/networking/v2.0``, Neutron v2):
CRUD round trips, the project's ``default`` group (created once, even under concurrent
first listings, with Neutron's rules), every refused rule with its status and body,
quotas, the default-group and in-use protections, project visibility, and the two
helpers the data plane reads (:meth:`rules_for_ports`, :meth:`members`)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import create_engine
from strato.domain.ids import ProjectId
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

GROUPS = "/networking/v2.0/security-groups"
RULES = "/networking/v2.0/security-group-rules"
UNKNOWN = "5a1c3f0e-8e6b-4f3e-9a55-6d2c2b1f0a77"


def assert_error(response: httpx.Response, status: int, message: str = "",
                 type_: str | None = None) -> None:
    """A Neutron error: ``{"NeutronError": {"type", "message", "detail"}}``."""
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["NeutronError"], body
    error = body["NeutronError"]
    assert set(error) == {"type", "message", "detail"}, error
    assert message in error["message"], error["message"]
    if type_ is not None:
        assert error["type"] == type_, error


async def create_group(api: Api, token: str = ALICE, name: str = "web",
                       **fields: Any) -> dict[str, Any]:
    response = await api.request("POST", GROUPS, token=token,
                                 json={"security_group": {"name": name, **fields}})
    assert response.status_code == 201, response.text
    group: dict[str, Any] = response.json()["security_group"]
    return group


async def post_rule(api: Api, group_id: str, token: str = ALICE,
                    **fields: Any) -> httpx.Response:
    rule = {"security_group_id": group_id, "direction": "ingress", **fields}
    return await api.request("POST", RULES, token=token, json={"security_group_rule": rule})


async def create_rule(api: Api, group_id: str, token: str = ALICE,
                      **fields: Any) -> dict[str, Any]:
    response = await post_rule(api, group_id, token, **fields)
    assert response.status_code == 201, response.text
    rule: dict[str, Any] = response.json()["security_group_rule"]
    return rule


async def groups(api: Api, token: str = ALICE, query: str = "") -> list[dict[str, Any]]:
    response = await api.request("GET", f"{GROUPS}{query}", token=token)
    assert response.status_code == 200, response.text
    listed: list[dict[str, Any]] = response.json()["security_groups"]
    return listed


def rule_shape(rule: dict[str, Any]) -> tuple[Any, ...]:
    return (rule["direction"], rule["ethertype"], rule["protocol"], rule["remote_group_id"],
            rule["remote_ip_prefix"], rule["port_range_min"], rule["port_range_max"])


# --- the default group -------------------------------------------------------------


async def test_listing_creates_the_default_group_with_neutrons_rules(api: Api) -> None:
    [default] = await groups(api)
    assert default["name"] == "default"
    assert default["project_id"] == default["tenant_id"] == "project-a"
    assert default["stateful"] is True and default["tags"] == []
    assert default["revision_number"] == 0
    gid = default["id"]
    assert sorted(rule_shape(r) for r in default["security_group_rules"]) == [
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
        ("ingress", "IPv4", None, gid, None, None, None),
        ("ingress", "IPv6", None, gid, None, None, None),
    ]
    for rule in default["security_group_rules"]:
        assert rule["security_group_id"] == gid
        assert rule["project_id"] == "project-a"
    # Listing again does not make another one.
    assert [g["id"] for g in await groups(api)] == [gid]


async def test_concurrent_first_listings_make_one_default_group(api: Api) -> None:
    results = await asyncio.gather(*(groups(api) for _ in range(10)),
                                   *(api.db.security_groups.ensure_default(
                                       ProjectId("project-a")) for _ in range(5)))
    ids = {g["id"] for listing in results[:10] for g in listing}
    assert len(ids) == 1
    assert {g.id for g in results[10:]} == ids
    stored = await api.db.security_groups.list(project_id=ProjectId("project-a"))
    assert len(stored) == 1 and len(stored[0].rules) == 4


async def test_each_project_gets_its_own_default_group(api: Api) -> None:
    [a] = await groups(api, ALICE)
    [b] = await groups(api, BOB)
    assert a["id"] != b["id"] and b["project_id"] == "project-b"


async def test_default_group_cannot_be_deleted_or_renamed(api: Api) -> None:
    [default] = await groups(api)
    response = await api.request("DELETE", f"{GROUPS}/{default['id']}")
    assert_error(response, 409, "Insufficient rights for removing default security group.")
    response = await api.request("PUT", f"{GROUPS}/{default['id']}",
                                 json={"security_group": {"name": "other"}})
    assert_error(response, 400, "Updating default security group not allowed.")
    # Its description may change, and naming it "default" again is no rename.
    response = await api.request("PUT", f"{GROUPS}/{default['id']}", json={
        "security_group": {"name": "default", "description": "mine"}})
    assert response.status_code == 200, response.text
    assert response.json()["security_group"]["description"] == "mine"
    # No other group may be called default, at creation or by renaming.
    for name in ("default", "Default"):
        response = await api.request("POST", GROUPS,
                                     json={"security_group": {"name": name}})
        assert_error(response, 400, "Default security group already exists.")
    web = await create_group(api)
    response = await api.request("PUT", f"{GROUPS}/{web['id']}",
                                 json={"security_group": {"name": "default"}})
    assert_error(response, 400, "Default security group already exists.")


async def test_an_admin_may_delete_a_default_group_and_it_comes_back(api: Api) -> None:
    [default] = await groups(api)
    response = await api.request("DELETE", f"{GROUPS}/{default['id']}", token=ADMIN)
    assert response.status_code == 204, response.text
    [again] = await groups(api)
    assert again["name"] == "default" and again["id"] != default["id"]


# --- group CRUD --------------------------------------------------------------------


async def test_group_round_trip(api: Api) -> None:
    group = await create_group(api, description="web tier")
    assert group["name"] == "web" and group["description"] == "web tier"
    assert group["project_id"] == group["tenant_id"] == "project-a"
    assert group["created_at"].endswith("Z") and group["updated_at"]
    assert sorted(rule_shape(r) for r in group["security_group_rules"]) == [
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
    ]
    rule = group["security_group_rules"][0]
    assert set(rule) == {"id", "security_group_id", "direction", "ethertype", "protocol",
                         "port_range_min", "port_range_max", "remote_ip_prefix",
                         "remote_group_id", "tenant_id", "project_id", "description",
                         "created_at", "updated_at", "revision_number"}
    assert set(group) == {"id", "name", "description", "tenant_id", "project_id",
                          "security_group_rules", "created_at", "updated_at",
                          "revision_number", "tags", "stateful"}

    shown = await api.request("GET", f"{GROUPS}/{group['id']}")
    assert shown.status_code == 200 and shown.json()["security_group"] == group

    response = await api.request("PUT", f"{GROUPS}/{group['id']}", json={
        "security_group": {"name": "db", "description": ""}})
    assert response.status_code == 200, response.text
    updated = response.json()["security_group"]
    assert (updated["name"], updated["description"]) == ("db", "")
    assert updated["security_group_rules"] == group["security_group_rules"]

    # The default group was created too (creating one ensures it, as Neutron).
    assert sorted(g["name"] for g in await groups(api)) == ["db", "default"]
    assert [g["name"] for g in await groups(api, query="?name=db")] == ["db"]
    fields = await groups(api, query="?name=db&fields=id&fields=name")
    assert fields == [{"id": group["id"], "name": "db"}]

    response = await api.request("DELETE", f"{GROUPS}/{group['id']}")
    assert response.status_code == 204, response.text
    assert_error(await api.request("GET", f"{GROUPS}/{group['id']}"), 404,
                 f"Security group {group['id']} does not exist", "SecurityGroupNotFound")
    assert_error(await api.request("DELETE", f"{GROUPS}/{group['id']}"), 404)
    assert_error(await api.request("PUT", f"{GROUPS}/{group['id']}",
                                   json={"security_group": {"name": "x"}}), 404)
    # Its rules went with it.
    response = await api.request("GET", f"{RULES}?security_group_id={group['id']}")
    assert response.json()["security_group_rules"] == []


async def test_deleting_a_group_drops_the_rules_that_name_it(api: Api) -> None:
    web = await create_group(api, name="web")
    db = await create_group(api, name="db")
    await create_rule(api, db["id"], protocol="tcp", port_range_min=5432,
                      port_range_max=5432, remote_group_id=web["id"])
    response = await api.request("DELETE", f"{GROUPS}/{web['id']}")
    assert response.status_code == 204, response.text
    shown = (await api.request("GET", f"{GROUPS}/{db['id']}")).json()["security_group"]
    assert all(r["remote_group_id"] is None for r in shown["security_group_rules"])
    assert len(shown["security_group_rules"]) == 2


@pytest.mark.parametrize(("body", "message"), [
    ({"security_group": {"name": 5}}, "Invalid input for name"),
    ({"security_group": {"name": "x" * 256}}, "exceeds maximum length of 255"),
    ({"security_group": {"description": None}}, "Invalid input for description"),
    ({"security_group": {"name": "a", "color": "red"}}, "Unrecognized attribute(s) 'color'"),
    ({"security_group": {"name": "a", "stateful": False}}, "stateful"),
    ({"security_group": "web"}, "Resource body required"),
    ({"security_groups": {}}, "Resource body required"),
    ({"security_group": {}, "x": 1}, "Unrecognized attribute(s) 'x'"),
    ([], "Resource body required"),
    ({"security_group": {"tenant_id": "a", "project_id": "b"}}, "different values"),
])
async def test_bad_group_bodies_are_400(api: Api, body: Any, message: str) -> None:
    response = await api.request("POST", GROUPS, json=body)
    assert_error(response, 400, message)
    # Nothing was created (the default group is only created after the body parsed).
    assert await api.db.security_groups.list() == []


async def test_malformed_json_is_400(api: Api) -> None:
    response = await api.request("POST", GROUPS, content=b"{nope",
                                 headers={"Content-Type": "application/json"})
    assert_error(response, 400, "Malformed request body")
    group = await create_group(api)
    response = await api.request("PUT", f"{GROUPS}/{group['id']}",
                                 json={"security_group": {"tenant_id": "project-b"}})
    assert_error(response, 400, "Unrecognized attribute(s) 'tenant_id'")


# --- visibility --------------------------------------------------------------------


async def test_other_projects_groups_and_rules_are_404(api: Api) -> None:
    mine = await create_group(api, ALICE)
    rule = await create_rule(api, mine["id"], protocol="tcp", port_range_min=22,
                             port_range_max=22)
    for method, path, body in [
        ("GET", f"{GROUPS}/{mine['id']}", None),
        ("PUT", f"{GROUPS}/{mine['id']}", {"security_group": {"name": "stolen"}}),
        ("DELETE", f"{GROUPS}/{mine['id']}", None),
        ("GET", f"{RULES}/{rule['id']}", None),
        ("DELETE", f"{RULES}/{rule['id']}", None),
    ]:
        assert_error(await api.request(method, path, token=BOB, json=body), 404)
    # Bob cannot add a rule to it, nor name it as a remote group.
    assert_error(await post_rule(api, mine["id"], BOB), 404, "does not exist")
    bobs = await create_group(api, BOB)
    assert_error(await post_rule(api, bobs["id"], BOB, remote_group_id=mine["id"]), 404,
                 f"Security group {mine['id']} does not exist")
    assert {g["project_id"] for g in await groups(api, BOB)} == {"project-b"}
    response = await api.request("GET", RULES, token=BOB)
    assert {r["project_id"] for r in response.json()["security_group_rules"]} == {"project-b"}
    # Bob may not create a group for Alice's project.
    response = await api.request("POST", GROUPS, token=BOB, json={
        "security_group": {"name": "x", "tenant_id": "project-a"}})
    assert_error(response, 403)


async def test_admin_sees_and_manages_every_project(api: Api) -> None:
    mine = await create_group(api, ALICE)
    await create_group(api, BOB)
    listed = await groups(api, ADMIN)
    assert {g["project_id"] for g in listed} == {"project-a", "project-b", "admin"}
    only_a = await groups(api, ADMIN, "?tenant_id=project-a")
    assert {g["name"] for g in only_a} == {"default", "web"}
    rule = await create_rule(api, mine["id"], ADMIN, protocol="icmp")
    assert rule["project_id"] == "project-a"   # rules belong to their group's project
    response = await api.request("GET", f"{RULES}/{rule['id']}")
    assert response.status_code == 200, response.text
    made = await create_group(api, ADMIN, name="ops", tenant_id="project-b")
    assert made["project_id"] == "project-b"
    assert "ops" in {g["name"] for g in await groups(api, BOB)}


# --- rules -------------------------------------------------------------------------


async def test_rule_round_trip(api: Api) -> None:
    group = await create_group(api)
    rule = await create_rule(api, group["id"], ethertype="ipv4", protocol="TCP",
                             port_range_min="22", port_range_max=22,
                             remote_ip_prefix="10.1.2.3/8", description="ssh")
    assert rule_shape(rule) == ("ingress", "IPv4", "tcp", None, "10.0.0.0/8", 22, 22)
    assert rule["description"] == "ssh" and rule["project_id"] == "project-a"
    assert rule["revision_number"] == 0 and rule["updated_at"] == rule["created_at"]
    shown = await api.request("GET", f"{RULES}/{rule['id']}")
    assert shown.status_code == 200 and shown.json()["security_group_rule"] == rule
    group_now = (await api.request("GET", f"{GROUPS}/{group['id']}")).json()
    assert rule in group_now["security_group"]["security_group_rules"]

    listed = await api.request("GET", f"{RULES}?protocol=tcp&port_range_min=22")
    assert [r["id"] for r in listed.json()["security_group_rules"]] == [rule["id"]]

    # Rules are immutable.
    response = await api.request("PUT", f"{RULES}/{rule['id']}",
                                 json={"security_group_rule": {"description": "x"}})
    assert_error(response, 405)
    response = await api.request("DELETE", f"{RULES}/{rule['id']}")
    assert response.status_code == 204, response.text
    assert_error(await api.request("GET", f"{RULES}/{rule['id']}"), 404,
                 f"Security group rule {rule['id']} does not exist")
    assert_error(await api.request("DELETE", f"{RULES}/{rule['id']}"), 404)


@pytest.mark.parametrize("fields", [
    {"protocol": None},
    {"protocol": "any"},
    {"protocol": "udp", "port_range_min": 53, "port_range_max": 53},
    {"protocol": "sctp", "port_range_min": 1, "port_range_max": 65535},
    {"protocol": "6", "port_range_min": 80, "port_range_max": 90},
    {"protocol": 17},
    {"protocol": "icmp", "port_range_min": 8, "port_range_max": 0},
    {"protocol": "icmp", "port_range_min": 8},
    {"protocol": "icmpv6", "ethertype": "IPv6", "port_range_min": 128},
    {"protocol": "gre"},
    {"protocol": "255"},
    {"ethertype": "IPv6", "remote_ip_prefix": "2001:db8::/32"},
    {"remote_ip_prefix": "192.168.0.1"},
    {"direction": "egress", "remote_ip_prefix": "0.0.0.0/0", "protocol": "tcp",
     "port_range_min": 443, "port_range_max": 443},
])
async def test_valid_rules_are_accepted(api: Api, fields: dict[str, Any]) -> None:
    group = await create_group(api)
    await create_rule(api, group["id"], **fields)


@pytest.mark.parametrize(("fields", "message"), [
    ({"direction": "sideways"}, "Invalid input for direction"),
    ({"direction": None}, "Invalid input for direction"),
    ({"ethertype": "IPv5"}, "Invalid input for ethertype"),
    ({"protocol": "tcpx"}, "Security group rule protocol tcpx not supported"),
    ({"protocol": "256"}, "Security group rule protocol 256 not supported"),
    ({"protocol": 256}, "Security group rule protocol 256 not supported"),
    ({"protocol": -1}, "Security group rule protocol -1 not supported"),
    ({"protocol": ["tcp"]}, "not supported"),
    ({"protocol": "icmpv6"}, "Invalid ethertype IPv4 for protocol icmpv6"),
    ({"port_range_min": 22, "port_range_max": 22},
     "Must also specify protocol if port range is given"),
    ({"protocol": "tcp", "port_range_min": 30, "port_range_max": 20},
     "port_range_min must be <= port_range_max"),
    ({"protocol": "tcp", "port_range_min": 30}, "port_range_min must be <= port_range_max"),
    ({"protocol": "tcp", "port_range_min": 0, "port_range_max": 10},
     "Invalid value for port 0"),
    ({"protocol": "udp", "port_range_min": 1, "port_range_max": 65536},
     "Invalid value for port 65536"),
    ({"protocol": "tcp", "port_range_min": "x", "port_range_max": 1},
     "Invalid value for port x"),
    ({"protocol": "tcp", "port_range_min": True, "port_range_max": 1},
     "Invalid value for port True"),
    ({"protocol": "tcp", "port_range_min": -1, "port_range_max": 1},
     "Invalid value for port -1"),
    ({"protocol": "icmp", "port_range_min": 256}, "Invalid value for ICMP type"),
    ({"protocol": "icmp", "port_range_min": 8, "port_range_max": 300},
     "Invalid value for ICMP code"),
    ({"protocol": "icmp", "port_range_max": 0}, "ICMP type (port-range-min) is missing"),
    ({"protocol": "gre", "port_range_min": 1, "port_range_max": 2},
     "Invalid protocol gre for port range"),
    ({"remote_ip_prefix": "10.0.0.0/33"}, "is not a valid IP prefix"),
    ({"remote_ip_prefix": "nonsense"}, "is not a valid IP prefix"),
    ({"remote_ip_prefix": 10}, "Invalid input for remote_ip_prefix"),
    ({"remote_ip_prefix": "2001:db8::/32"}, "Conflicting value ethertype IPv4 for CIDR"),
    ({"ethertype": "IPv6", "remote_ip_prefix": "10.0.0.0/8"},
     "Conflicting value ethertype IPv6 for CIDR"),
    ({"remote_ip_prefix": "10.0.0.0/8", "remote_group_id": UNKNOWN},
     "Only remote_ip_prefix or remote_group_id may be provided"),
    ({"description": "x" * 256}, "exceeds maximum length"),
    ({"port": 22}, "Unrecognized attribute(s) 'port'"),
    ({"security_group_id": None}, "Invalid input for security_group_id"),
])
async def test_bad_rules_are_400(api: Api, fields: dict[str, Any], message: str) -> None:
    group = await create_group(api)
    assert_error(await post_rule(api, group["id"], **fields), 400, message)
    stored = await api.db.security_groups.get(group["id"])
    assert len(stored.rules) == 2


async def test_rule_needs_group_and_direction(api: Api) -> None:
    response = await api.request("POST", RULES, json={"security_group_rule": {
        "direction": "ingress"}})
    assert_error(response, 400, "Required attribute 'security_group_id' not specified")
    group = await create_group(api)
    response = await api.request("POST", RULES, json={"security_group_rule": {
        "security_group_id": group["id"]}})
    assert_error(response, 400, "Required attribute 'direction' not specified")


async def test_unknown_group_or_remote_group_is_404(api: Api) -> None:
    assert_error(await post_rule(api, UNKNOWN), 404,
                 f"Security group {UNKNOWN} does not exist", "SecurityGroupNotFound")
    group = await create_group(api)
    assert_error(await post_rule(api, group["id"], remote_group_id=UNKNOWN), 404,
                 f"Security group {UNKNOWN} does not exist")
    assert_error(await post_rule(api, "x" * 40), 404, "Security group x")
    assert_error(await post_rule(api, "x" * 300), 400, "exceeds maximum length")


async def test_duplicate_rules_are_409(api: Api) -> None:
    group = await create_group(api)
    first = await create_rule(api, group["id"], protocol="tcp", port_range_min=22,
                              port_range_max=22, remote_ip_prefix="10.0.0.0/8")
    same_rules: list[dict[str, Any]] = [
        {"protocol": "tcp", "port_range_min": 22, "port_range_max": 22,
         "remote_ip_prefix": "10.0.0.0/8", "description": "other words"},
        {"protocol": "6", "port_range_min": 22, "port_range_max": 22,
         "remote_ip_prefix": "10.9.9.9/8"},
    ]
    for same in same_rules:
        assert_error(await post_rule(api, group["id"], **same), 409,
                     f"Security group rule already exists. Rule id is {first['id']}.",
                     "SecurityGroupRuleExists")
    # The egress rules the group came with are rules like any other.
    response = await post_rule(api, group["id"], direction="egress",
                               remote_ip_prefix="0.0.0.0/0")
    assert_error(response, 409, "Security group rule already exists")
    # A different port, direction or prefix is another rule.
    await create_rule(api, group["id"], protocol="tcp", port_range_min=23,
                      port_range_max=23, remote_ip_prefix="10.0.0.0/8")
    await create_rule(api, group["id"], direction="egress", protocol="tcp",
                      port_range_min=22, port_range_max=22, remote_ip_prefix="10.0.0.0/8")


async def test_concurrent_identical_rules_make_one(api: Api) -> None:
    group = await create_group(api)
    responses = await asyncio.gather(*(post_rule(api, group["id"], protocol="udp")
                                       for _ in range(8)))
    assert sorted(r.status_code for r in responses) == [201] + [409] * 7
    stored = await api.db.security_groups.get(group["id"])
    assert len(stored.rules) == 3


# --- quotas ------------------------------------------------------------------------


async def test_security_group_quota_counts_the_default_group(api: Api) -> None:
    for n in range(9):
        await create_group(api, name=f"g{n}")
    response = await api.request("POST", GROUPS, json={"security_group": {"name": "g9"}})
    assert_error(response, 409, "Quota exceeded for resources: ['security_group'].",
                 "OverQuota")
    assert len(await groups(api)) == 10
    # Another project is unaffected.
    await create_group(api, BOB)


async def test_rule_quota_and_a_group_create_past_it_creates_nothing(api: Api) -> None:
    group = await create_group(api)          # + default: 6 rules
    for port in range(1, 95):                 # 100 rules
        await create_rule(api, group["id"], protocol="tcp", port_range_min=port,
                          port_range_max=port)
    response = await post_rule(api, group["id"], protocol="tcp", port_range_min=999,
                               port_range_max=999)
    assert_error(response, 409, "Quota exceeded for resources: ['security_group_rule'].")
    # A new group would bring two more rules: refused, and no group is left behind.
    response = await api.request("POST", GROUPS, json={"security_group": {"name": "new"}})
    assert_error(response, 409, "Quota exceeded for resources: ['security_group_rule'].")
    assert sorted(g["name"] for g in await groups(api)) == ["default", "web"]
    # Deleting a rule makes room again.
    victim = (await api.request("GET", f"{RULES}?port_range_min=1")).json()
    await api.request("DELETE", f"{RULES}/{victim['security_group_rules'][0]['id']}")
    await create_rule(api, group["id"], protocol="tcp", port_range_min=999,
                      port_range_max=999)


async def test_concurrent_group_creates_stop_at_the_quota(api: Api) -> None:
    await groups(api)
    responses = await asyncio.gather(*(
        api.request("POST", GROUPS, json={"security_group": {"name": f"g{n}"}})
        for n in range(15)))
    assert sorted(r.status_code for r in responses) == [201] * 9 + [409] * 6
    assert len(await groups(api)) == 10


# --- ports: in use, and what the data plane reads ------------------------------------


async def insert_ports(api: Api, ports: dict[str, tuple[list[str], list[str]]]) -> None:
    """Rows for ports (id -> (security group ids, fixed IPs)) on one network, written
    directly: the port API is another module's."""
    now = datetime.now(UTC)
    engine = create_engine(str(api.db._store.engine.url))
    try:
        async with engine.begin() as conn:
            await conn.execute(t.networks.insert().values(
                id="net-1", name="net", project_id="project-a", description="",
                created_at=now))
            await conn.execute(t.subnets.insert().values(
                id="sub-1", network_id="net-1", project_id="project-a", name="", ip_version=4,
                cidr="10.0.0.0/24", gateway_ip="10.0.0.1", allocation_pools=[],
                dns_nameservers=[], host_routes=[], description="", created_at=now))
            for n, (port_id, (group_ids, ips)) in enumerate(ports.items()):
                await conn.execute(t.ports.insert().values(
                    id=port_id, network_id="net-1", project_id="project-a", name="",
                    mac_address=f"fa:16:3e:00:00:{n:02x}", device_id="", device_owner="",
                    binding_host_id="", binding_vif_details={}, description="",
                    created_at=now))
                for ip in ips:
                    await conn.execute(t.ip_allocations.insert().values(
                        port_id=port_id, subnet_id="sub-1", ip_address=ip))
                for group_id in group_ids:
                    await conn.execute(t.port_security_groups.insert().values(
                        port_id=port_id, security_group_id=group_id))
    finally:
        await engine.dispose()


async def test_a_group_in_use_by_a_port_cannot_be_deleted(api: Api) -> None:
    group = await create_group(api)
    await insert_ports(api, {"port-1": ([group["id"]], ["10.0.0.5"])})
    response = await api.request("DELETE", f"{GROUPS}/{group['id']}")
    assert_error(response, 409, f"Security Group {group['id']} in use.")
    response = await api.request("DELETE", f"{GROUPS}/{group['id']}", token=ADMIN)
    assert_error(response, 409, "in use")
    # Its rules can still change.
    rule = await create_rule(api, group["id"], protocol="tcp", port_range_min=80,
                             port_range_max=80)
    response = await api.request("DELETE", f"{RULES}/{rule['id']}")
    assert response.status_code == 204


async def test_rules_for_ports_and_members(api: Api) -> None:
    [default] = await groups(api)
    web = await create_group(api)
    ssh = await create_rule(api, web["id"], protocol="tcp", port_range_min=22,
                            port_range_max=22)
    await insert_ports(api, {
        "port-1": ([default["id"], web["id"]], ["10.0.0.5", "10.0.0.6"]),
        "port-2": ([default["id"]], ["10.0.0.7"]),
        "port-3": ([], ["10.0.0.8"]),
    })
    repo = api.db.security_groups
    rules = await repo.rules_for_ports(["port-1", "port-2", "port-3", "port-none"])
    assert set(rules) == {"port-1", "port-2", "port-3", "port-none"}
    default_ids = {r["id"] for r in default["security_group_rules"]}
    web_ids = {r["id"] for r in web["security_group_rules"]} | {ssh["id"]}
    assert {r.id for r in rules["port-1"]} == default_ids | web_ids
    assert len(rules["port-1"]) == 7
    assert {r.id for r in rules["port-2"]} == default_ids
    assert rules["port-3"] == [] and rules["port-none"] == []
    assert await repo.rules_for_ports([]) == {}

    assert await repo.members(default["id"]) == [
        ("port-1", "10.0.0.5"), ("port-1", "10.0.0.6"), ("port-2", "10.0.0.7")]
    assert await repo.members(web["id"]) == [("port-1", "10.0.0.5"), ("port-1", "10.0.0.6")]
    assert await repo.members(UNKNOWN) == []


async def test_writes_after_a_rule_change_read_back_from_a_fresh_connection(
        api: Api) -> None:
    # The rows are where another process (the data plane) will read them.
    group = await create_group(api)
    await create_rule(api, group["id"], protocol="icmp")
    engine = create_engine(str(api.db._store.engine.url))
    try:
        async with engine.connect() as conn:
            count = (await conn.execute(
                sa.select(sa.func.count()).select_from(t.security_group_rules)
                .where(t.security_group_rules.c.security_group_id == group["id"]))).scalar()
    finally:
        await engine.dispose()
    assert count == 3
