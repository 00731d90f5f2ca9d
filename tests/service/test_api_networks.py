"""The Network API (``/networking``, a Neutron v2.0 subset): networks, subnets and ports
through HTTP, visibility and admin rules, Neutron's error bodies, IPAM defaults, paging
and the version documents."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

V2 = "/networking/v2.0"
UNKNOWN = "5a1c3f0e-8e6b-4f3e-9a55-6d2c2b1f0a77"


def assert_neutron(response: httpx.Response, status: int, kind: str, message: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["NeutronError"], body
    assert body["NeutronError"]["type"] == kind, body
    assert message in body["NeutronError"]["message"]
    assert body["NeutronError"]["detail"] == ""


async def make(api: Api, kind: str, token: str = ALICE, **fields: Any) -> dict[str, Any]:
    response = await api.request("POST", f"{V2}/{kind}s", token=token, json={kind: fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()[kind]
    return made


async def count(api: Api, kind: str) -> int:
    response = await api.request("GET", f"{V2}/{kind}s", token=ADMIN)
    return len(response.json()[f"{kind}s"])


async def net_with_subnet(api: Api, cidr: str = "10.0.0.0/24", token: str = ALICE,
                          **fields: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    net = await make(api, "network", token, name="net")
    sub = await make(api, "subnet", token, network_id=net["id"], cidr=cidr, ip_version=4,
                     **fields)
    return net, sub


async def test_version_documents(api: Api) -> None:
    # The versions document answers without a token (clients discover first).
    versions = (await api.request("GET", "/networking/", token=None)).json()
    assert [v["id"] for v in versions["versions"]] == ["v2.0"]
    assert versions["versions"][0]["status"] == "CURRENT"
    resources = (await api.request("GET", f"{V2}/")).json()["resources"]
    assert {r["collection"] for r in resources} == {"networks", "subnets", "ports"}


async def test_network_round_trip(api: Api) -> None:
    net = await make(api, "network", name="web", description="d")
    assert net["tenant_id"] == net["project_id"] == "project-a"
    assert net["status"] == "ACTIVE" and net["mtu"] == 1500 and net["shared"] is False
    assert net["router:external"] is False and net["port_security_enabled"] is True
    assert net["created_at"].endswith("Z") and net["subnets"] == []
    shown = (await api.request("GET", f"{V2}/networks/{net['id']}")).json()["network"]
    assert shown == net
    updated = await api.request("PUT", f"{V2}/networks/{net['id']}",
                                json={"network": {"name": "web2", "admin_state_up": False}})
    assert updated.json()["network"]["name"] == "web2"
    assert updated.json()["network"]["admin_state_up"] is False
    assert (await api.request("DELETE", f"{V2}/networks/{net['id']}")).status_code == 204
    assert_neutron(await api.request("GET", f"{V2}/networks/{net['id']}"), 404,
                   "NetworkNotFound", net["id"])


async def test_visibility_and_admin_rules(api: Api) -> None:
    mine = await make(api, "network", name="mine")
    shared = await make(api, "network", ADMIN, name="shared", shared=True)
    assert_neutron(await api.request("GET", f"{V2}/networks/{mine['id']}", token=BOB), 404,
                   "NetworkNotFound")
    names = [n["name"] for n in (await api.request("GET", f"{V2}/networks",
                                                   token=BOB)).json()["networks"]]
    assert names == ["shared"]
    assert await count(api, "network") == 2
    assert_neutron(await api.request("POST", f"{V2}/networks",
                                     json={"network": {"shared": True}}), 403, "HTTPForbidden")
    assert_neutron(await api.request("DELETE", f"{V2}/networks/{shared['id']}"), 403,
                   "HTTPForbidden")
    assert_neutron(await api.request("POST", f"{V2}/subnets", json={"subnet": {
        "network_id": shared["id"], "cidr": "10.1.0.0/24", "ip_version": 4}}), 403,
        "HTTPForbidden")
    # a member may put a port on a shared network
    port = await make(api, "port", BOB, network_id=shared["id"])
    assert port["project_id"] == "project-b"
    assert_neutron(await api.request("GET", f"{V2}/ports/{port['id']}"), 404, "PortNotFound")


async def test_subnet_defaults_and_round_trip(api: Api) -> None:
    net, sub = await net_with_subnet(api, "10.0.0.0/24")
    assert sub["gateway_ip"] == "10.0.0.1"
    assert sub["allocation_pools"] == [{"start": "10.0.0.2", "end": "10.0.0.254"}]
    assert sub["ipv6_ra_mode"] is None and sub["subnetpool_id"] is None
    assert (await api.request("GET", f"{V2}/networks/{net['id']}")).json()["network"][
        "subnets"] == [sub["id"]]
    updated = await api.request("PUT", f"{V2}/subnets/{sub['id']}", json={"subnet": {
        "name": "s", "dns_nameservers": ["8.8.8.8"]}})
    assert updated.json()["subnet"]["dns_nameservers"] == ["8.8.8.8"]
    v6 = await make(api, "subnet", network_id=net["id"], cidr="fd00::/64", ip_version=6,
                    gateway_ip=None)
    assert v6["gateway_ip"] is None
    assert v6["allocation_pools"] == [{"start": "fd00::1", "end": "fd00::ffff:ffff:ffff:ffff"}]
    assert (await api.request("DELETE", f"{V2}/subnets/{sub['id']}")).status_code == 204
    assert_neutron(await api.request("GET", f"{V2}/subnets/{sub['id']}"), 404,
                   "SubnetNotFound")


@pytest.mark.parametrize("fields", [
    {"cidr": "10.0.0.1/24"},
    {"cidr": "not-a-cidr"},
    {"cidr": "10.0.0.0/24", "ip_version": 6},
    {"gateway_ip": "10.9.0.1"},
    {"allocation_pools": [{"start": "10.0.0.1", "end": "10.0.0.20"}]},
    {"allocation_pools": [{"start": "10.0.0.10", "end": "10.0.1.20"}]},
    {"allocation_pools": [{"start": "10.0.0.10", "end": "10.0.0.20"},
                          {"start": "10.0.0.15", "end": "10.0.0.30"}]},
    {"enable_dhcp": "yes"},
    {"bogus": 1},
])
async def test_bad_subnets(api: Api, fields: dict[str, Any]) -> None:
    net = await make(api, "network")
    body = {"network_id": net["id"], "cidr": "10.0.0.0/24", "ip_version": 4, **fields}
    assert_neutron(await api.request("POST", f"{V2}/subnets", json={"subnet": body}), 400,
                   "InvalidInput")
    assert await count(api, "subnet") == 0


async def test_overlapping_cidr_and_unknown_network(api: Api) -> None:
    net, _ = await net_with_subnet(api, "10.0.0.0/24")
    assert_neutron(await api.request("POST", f"{V2}/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": "10.0.0.128/25", "ip_version": 4}}), 400,
        "InvalidInput", "overlaps")
    assert_neutron(await api.request("POST", f"{V2}/subnets", json={"subnet": {
        "network_id": UNKNOWN, "cidr": "10.0.0.0/24", "ip_version": 4}}), 404,
        "NetworkNotFound")


async def test_bad_bodies(api: Api) -> None:
    assert_neutron(await api.request("POST", f"{V2}/networks", content=b"{nope"), 400,
                   "InvalidInput")
    assert_neutron(await api.request("POST", f"{V2}/networks", json={"network": {"x": 1}}),
                   400, "InvalidInput", "Unrecognized attribute(s) 'x'")
    assert_neutron(await api.request("POST", f"{V2}/networks",
                                     json={"network": {"admin_state_up": "no"}}),
                   400, "InvalidInput")
    net = await make(api, "network")
    assert_neutron(await api.request("POST", f"{V2}/ports", json={"port": {
        "network_id": net["id"], "mac_address": "zz:16:3e:00:00:01"}}), 400, "InvalidInput")
    assert await count(api, "network") == 1 and await count(api, "port") == 0
    assert_neutron(await api.request("GET", f"{V2}/nothing"), 404, "HTTPNotFound")


async def test_port_round_trip_and_ipam(api: Api) -> None:
    net, sub = await net_with_subnet(api, "10.0.0.0/24")
    port = await make(api, "port", network_id=net["id"], name="p")
    assert port["status"] == "DOWN" and port["mac_address"].startswith("fa:16:3e:")
    assert port["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.2"}]
    # Where and how a port is plugged is for admins only (Neutron's get_port:binding:*).
    assert port["binding:vnic_type"] == "normal" and "binding:vif_type" not in port
    as_admin = (await api.request("GET", f"{V2}/ports/{port['id']}", token=ADMIN)).json()
    assert as_admin["port"]["binding:vif_type"] == "unbound"
    second = await make(api, "port", network_id=net["id"])
    assert second["fixed_ips"][0]["ip_address"] == "10.0.0.3"
    chosen = await make(api, "port", network_id=net["id"],
                        fixed_ips=[{"ip_address": "10.0.0.50"}])
    assert chosen["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.50"}]
    assert_neutron(await api.request("POST", f"{V2}/ports", json={"port": {
        "network_id": net["id"], "fixed_ips": [{"ip_address": "10.0.0.50"}]}}), 409,
        "IpAddressAlreadyAllocated")
    assert_neutron(await api.request("POST", f"{V2}/ports", json={"port": {
        "network_id": net["id"], "mac_address": port["mac_address"]}}), 409,
        "MacAddressInUse")
    assert_neutron(await api.request("POST", f"{V2}/ports", json={"port": {
        "network_id": net["id"], "security_groups": [UNKNOWN]}}), 404, "SecurityGroupNotFound")
    assert await count(api, "port") == 3
    updated = (await api.request("PUT", f"{V2}/ports/{port['id']}", token=ADMIN, json={"port": {
        "binding:host_id": "h1", "device_id": "vm1",
        "fixed_ips": [{"subnet_id": sub["id"], "ip_address": "10.0.0.9"}]}})).json()["port"]
    assert updated["binding:vif_type"] == "bridge" and updated["device_id"] == "vm1"
    assert updated["fixed_ips"] == [{"subnet_id": sub["id"], "ip_address": "10.0.0.9"}]
    # .2 is free again
    again = await make(api, "port", network_id=net["id"])
    assert again["fixed_ips"][0]["ip_address"] == "10.0.0.2"
    assert_neutron(await api.request("DELETE", f"{V2}/networks/{net['id']}"), 409,
                   "NetworkInUse")
    assert_neutron(await api.request("DELETE", f"{V2}/subnets/{sub['id']}"), 409,
                   "SubnetInUse")
    for p in (await api.request("GET", f"{V2}/ports")).json()["ports"]:
        assert (await api.request("DELETE", f"{V2}/ports/{p['id']}")).status_code == 204
    await make(api, "port", network_id=net["id"], device_owner="network:dhcp")
    assert (await api.request("DELETE", f"{V2}/networks/{net['id']}")).status_code == 204
    assert await count(api, "subnet") == 0 and await count(api, "port") == 0


async def test_full_subnet(api: Api) -> None:
    net, _ = await net_with_subnet(api, "10.0.0.0/29")   # hosts .2 - .6
    for _ in range(5):
        await make(api, "port", network_id=net["id"])
    assert_neutron(await api.request("POST", f"{V2}/ports", json={"port": {
        "network_id": net["id"]}}), 409, "IpAddressGenerationFailure")
    assert await count(api, "port") == 5


async def test_quota(api: Api) -> None:
    from strato.db import tables as t
    from strato.db._engine import create_engine
    engine = create_engine(str(api.db._store.engine.url))
    try:
        async with engine.begin() as conn:
            await conn.execute(t.quotas.insert().values(
                project_id="project-a", resource="network", hard_limit=1,
                created_at=api.db.now(), updated_at=None))
    finally:
        await engine.dispose()
    await make(api, "network")
    assert_neutron(await api.request("POST", f"{V2}/networks", json={"network": {}}), 409,
                   "OverQuota", "Quota exceeded for resources: ['network'].")


async def test_filters_fields_and_paging(api: Api) -> None:
    ids = sorted([(await make(api, "network", name=f"n{i % 2}"))["id"] for i in range(5)])
    response = (await api.request("GET", f"{V2}/networks?name=n0&fields=id&fields=name")).json()
    assert {n["name"] for n in response["networks"]} == {"n0"}
    assert all(set(n) == {"id", "name"} for n in response["networks"])
    page = (await api.request("GET", f"{V2}/networks?limit=2")).json()
    assert [n["id"] for n in page["networks"]] == ids[:2]
    href = page["networks_links"][0]["href"]
    assert page["networks_links"][0]["rel"] == "next"
    nxt = (await api.request("GET", href.removeprefix("http://strato.test"))).json()
    assert [n["id"] for n in nxt["networks"]] == ids[2:4]


async def test_a_port_without_groups_is_in_its_projects_default_group(api: Api) -> None:
    net = await make(api, "network", name="n")
    await make(api, "subnet", network_id=net["id"], cidr="10.1.0.0/24", ip_version=4)
    port = await make(api, "port", network_id=net["id"])
    groups = (await api.request("GET", f"{V2}/security-groups")).json()["security_groups"]
    [default] = [g for g in groups if g["name"] == "default"]
    assert port["security_groups"] == [default["id"]]
    dhcp = await make(api, "port", network_id=net["id"], device_owner="network:dhcp")
    assert dhcp["security_groups"] == []


async def test_filters_as_gophercloud_sends_them(api: Api) -> None:
    """``status``, ``name`` and ``id`` (repeated: either) on every collection, as
    gophercloud's ``ListOpts`` and Terraform's data sources send them."""
    a = await make(api, "network", name="a")
    b = await make(api, "network", name="b")
    await make(api, "network", name="c")
    sub_a = await make(api, "subnet", network_id=a["id"], cidr="10.1.0.0/24", ip_version=4)
    await make(api, "subnet", network_id=b["id"], cidr="10.2.0.0/24", ip_version=4)
    port = await make(api, "port", network_id=a["id"], name="p")

    async def ids(path: str) -> set[str]:
        response = await api.request("GET", f"{V2}/{path}")
        assert response.status_code == 200, response.text
        key = path.partition("?")[0].replace("-", "_")
        return {item["id"] for item in response.json()[key]}

    assert await ids(f"networks?id={a['id']}&id={b['id']}") == {a["id"], b["id"]}
    assert await ids("networks?name=a&name=b&status=ACTIVE") == {a["id"], b["id"]}
    assert await ids("networks?status=DOWN") == set()
    assert await ids(f"subnets?id={sub_a['id']}&name=") == {sub_a["id"]}
    assert await ids(f"subnets?network_id={a['id']}") == {sub_a["id"]}
    assert await ids(f"ports?status={port['status']}&name=p&id={port['id']}") == {port["id"]}
    assert await ids(f"ports?network_id={b['id']}") == set()
    groups = (await api.request("GET", f"{V2}/security-groups")).json()["security_groups"]
    [default] = [g for g in groups if g["name"] == "default"]
    assert await ids(f"security-groups?name=default&id={default['id']}") == {default["id"]}
    assert await ids("security-groups?name=nope") == set()
    rule_ids = {r["id"] for r in default["security_group_rules"]}
    assert await ids(f"security-group-rules?security_group_id={default['id']}") == rule_ids
    egress = {r["id"] for r in default["security_group_rules"] if r["direction"] == "egress"}
    assert await ids(f"security-group-rules?direction=egress&id={'&id='.join(rule_ids)}"
                     f"&security_group_id={default['id']}") == egress


@pytest.mark.parametrize("path", [
    "networks", "subnets", "ports", "security-groups", "security-group-rules"])
async def test_unknown_filters_are_400s_as_with_filter_validation(api: Api, path: str) -> None:
    """Neutron's ``filter_validation`` (on by default): a key that is no attribute of the
    resource is a 400, with rows or without."""
    assert_neutron(await api.request("GET", f"{V2}/{path}?bogus=1&id=x"), 400,
                   "HTTPBadRequest", "['bogus'] is invalid attribute for filtering")
    ok = await api.request("GET", f"{V2}/{path}?fields=id&limit=1&sort_key=id&sort_dir=asc"
                                  "&page_reverse=False")
    assert ok.status_code == 200, ok.text


async def test_every_shown_attribute_is_a_filter(api: Api) -> None:
    """The filter sets keep step with the views: a filter on each shown attribute
    is no 400."""
    net = await make(api, "network", name="n")
    await make(api, "subnet", network_id=net["id"], cidr="10.3.0.0/24", ip_version=4)
    await make(api, "port", network_id=net["id"])
    for path, key in (("networks", "networks"), ("subnets", "subnets"), ("ports", "ports"),
                      ("security-groups", "security_groups"),
                      ("security-group-rules", "security_group_rules")):
        [item, *_] = (await api.request("GET", f"{V2}/{path}", token=ADMIN)).json()[key]
        for attribute, value in item.items():
            wanted = ("true" if isinstance(value, bool) else
                      "ip_address=10.3.0.9" if attribute == "fixed_ips" else "x")
            response = await api.request("GET", f"{V2}/{path}", token=ADMIN,
                                         params={attribute: wanted})
            assert response.status_code == 200, (path, attribute, response.text)
