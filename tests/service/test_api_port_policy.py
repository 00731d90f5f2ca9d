"""Neutron's field policies on ports: a member cannot bind a port to a host, cannot
make a port on someone else's network trusted (a ``network:`` device owner skips the
security groups), choose its MAC or fixed IP there, and does not see where a port is
bound; the network's owner and an admin can. Nothing is created or changed by a refused
request."""

from __future__ import annotations

from typing import Any

import httpx

from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

V2 = "/networking/v2.0"


def assert_policy(response: httpx.Response, *fields: str) -> None:
    assert response.status_code == 403, response.text
    error = response.json()["NeutronError"]
    assert error["type"] == "PolicyNotAuthorized", error
    for field in fields:
        assert f":{field}" in error["message"], error


async def _shared_network(api: Api) -> dict[str, Any]:
    made = await api.request("POST", f"{V2}/networks", token=ADMIN,
                             json={"network": {"name": "shared", "shared": True}})
    assert made.status_code == 201, made.text
    net: dict[str, Any] = made.json()["network"]
    sub = await api.request("POST", f"{V2}/subnets", token=ADMIN, json={"subnet": {
        "network_id": net["id"], "cidr": "10.9.0.0/24", "ip_version": 4}})
    assert sub.status_code == 201, sub.text
    return net


async def _ports(api: Api) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = (await api.request(
        "GET", f"{V2}/ports", token=ADMIN)).json()["ports"]
    return ports


async def test_member_cannot_set_privileged_fields_on_a_shared_network(api: Api) -> None:
    net = await _shared_network(api)
    privileged: list[tuple[dict[str, object], str]] = [
        ({"device_owner": "network:dhcp"}, "device_owner"),
        ({"device_owner": "network:router_interface"}, "device_owner"),
        ({"binding:host_id": "h1"}, "binding:host_id"),
        ({"mac_address": "fa:16:3e:00:00:01"}, "mac_address"),
        ({"fixed_ips": [{"ip_address": "10.9.0.7"}]}, "fixed_ips:ip_address"),
    ]
    for fields, denied in privileged:
        response = await api.request("POST", f"{V2}/ports", token=BOB,
                                     json={"port": {"network_id": net["id"], **fields}})
        assert_policy(response, f"create_port:{denied}")
    assert await _ports(api) == []
    # An ordinary port on the shared network is fine, and a compute: owner too.
    port = await api.request("POST", f"{V2}/ports", token=BOB, json={"port": {
        "network_id": net["id"], "device_owner": "compute:nova"}})
    assert port.status_code == 201, port.text
    shown = port.json()["port"]
    assert "binding:host_id" not in shown and shown["security_groups"] != []
    privileged = [({"device_owner": "network:dhcp"}, "device_owner"),
                  ({"binding:host_id": "h1"}, "binding:host_id"),
                  ({"fixed_ips": [{"ip_address": "10.9.0.8"}]}, "fixed_ips:ip_address")]
    for fields, denied in privileged:
        response = await api.request("PUT", f"{V2}/ports/{shown['id']}", token=BOB,
                                     json={"port": fields})
        assert_policy(response, f"update_port:{denied}")
    [after] = await _ports(api)
    assert (after["device_owner"], after["binding:host_id"]) == ("compute:nova", "")
    assert after["fixed_ips"] == shown["fixed_ips"]


async def test_network_owner_and_admin_may(api: Api) -> None:
    made = await api.request("POST", f"{V2}/networks", token=ALICE,
                             json={"network": {"name": "own"}})
    net = made.json()["network"]
    await api.request("POST", f"{V2}/subnets", token=ALICE, json={"subnet": {
        "network_id": net["id"], "cidr": "10.8.0.0/24", "ip_version": 4}})
    own = await api.request("POST", f"{V2}/ports", token=ALICE, json={"port": {
        "network_id": net["id"], "device_owner": "network:dhcp",
        "mac_address": "fa:16:3e:00:00:02", "fixed_ips": [{"ip_address": "10.8.0.5"}]}})
    assert own.status_code == 201, own.text
    # Binding stays an admin's, even on one's own network.
    assert_policy(await api.request("PUT", f"{V2}/ports/{own.json()['port']['id']}",
                                    token=ALICE, json={"port": {"binding:host_id": "h1"}}),
                  "update_port:binding:host_id")
    bound = await api.request("PUT", f"{V2}/ports/{own.json()['port']['id']}", token=ADMIN,
                              json={"port": {"binding:host_id": "h1"}})
    assert bound.status_code == 200, bound.text
    assert bound.json()["port"]["binding:host_id"] == "h1"
    mine = (await api.request("GET", f"{V2}/ports/{own.json()['port']['id']}",
                              token=ALICE)).json()["port"]
    assert not any(key in mine for key in ("binding:host_id", "binding:vif_type",
                                           "binding:vif_details", "binding:profile"))
