"""A server create's ``networks`` and ``security_groups`` (Nova 2.1, with 2.37's "auto"
and "none"), checked against the Network API before anything is written, and the
server's ``addresses`` (show, detail, ``/servers/{id}/ips``) from its ports."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from strato.domain.networks import Vif
from strato.domain.requests import BootRequest, RequestedNetwork
from strato.rpc.contracts.conductor import BuildInstances
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.cloud_fixtures import fake_hosts, running_cloud

V2 = "/networking/v2.0"
UNKNOWN = "5a1c3f0e-8e6b-4f3e-9a55-6d2c2b1f0a77"
AMBIGUOUS = "Multiple possible networks found, use a Network ID to be more specific."


# --- helpers ---------------------------------------------------------------------------

async def make(api: Api, kind: str, token: str = ALICE, **fields: Any) -> dict[str, Any]:
    """Create a Network API resource (``network``, ``subnet``, ``port``)."""
    response = await api.request("POST", f"{V2}/{kind}s", token=token, json={kind: fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()[kind]
    return made


async def network(api: Api, name: str = "net", token: str = ALICE, *,
                  cidr: str | None = "10.0.0.0/24", **fields: Any) -> str:
    """A network (with one IPv4 subnet unless ``cidr`` is None); its id."""
    net = await make(api, "network", token, name=name, **fields)
    if cidr is not None:
        await make(api, "subnet", token, network_id=net["id"], cidr=cidr, ip_version=4)
    return str(net["id"])


async def port(api: Api, network_id: str, token: str = ALICE, **fields: Any) -> str:
    return str((await make(api, "port", token, network_id=network_id, **fields))["id"])


def assert_fault(response: httpx.Response, status: int, message: str) -> None:
    """A Nova fault (``{"<name>": {"code", "message"}}``) with exactly ``message``."""
    assert response.status_code == status, response.text
    [fault] = response.json().values()
    assert fault["message"] == message, fault


def boots(api: Api) -> list[BootRequest]:
    """Every BootRequest cast to the conductor so far, in order."""
    return [boot for cast in api.bus.casts if isinstance(cast.message, BuildInstances)
            for boot in cast.message.requests]


async def booted(api: Api, token: str = ALICE, **fields: Any) -> BootRequest:
    """Create one server; the BootRequest the conductor got for it."""
    response = await api.create_server(token, **fields)
    assert response.status_code == 202, response.text
    return boots(api)[-1]


# --- networks omitted, "auto", "none" ---------------------------------------------------

async def test_omitted_networks_take_the_projects_only_network(api: Api) -> None:
    assert (await booted(api)).networks == ()  # no usable network: no NIC
    mine = await network(api)
    assert (await booted(api)).networks == (RequestedNetwork(network_id=mine),)
    # another project's shared network is usable too (and the only one bob has)
    shared = await network(api, "shared", ADMIN, cidr="10.9.0.0/24", shared=True)
    assert (await booted(api, BOB)).networks == (RequestedNetwork(network_id=shared),)


async def test_auto_takes_the_only_network_and_needs_one(api: Api) -> None:
    assert_fault(await api.create_server(networks="auto"), 400,
                 "Unable to automatically allocate a network for project project-a")
    assert await api.instances() == [] and boots(api) == []
    mine = await network(api)
    assert (await booted(api, networks="auto")).networks == (
        RequestedNetwork(network_id=mine),)


async def test_several_usable_networks_are_ambiguous(api: Api) -> None:
    await network(api, "a")
    await network(api, "shared", ADMIN, cidr="10.9.0.0/24", shared=True)
    bodies: list[dict[str, Any]] = [{}, {"networks": "auto"}, {"networks": []}]
    for fields in bodies:
        assert_fault(await api.create_server(**fields), 409, AMBIGUOUS)
    assert await api.instances() == [] and boots(api) == []
    assert (await booted(api, networks="none")).networks == ()


async def test_the_only_network_without_a_subnet_is_refused(api: Api) -> None:
    bare = await network(api, cidr=None)
    assert_fault(await api.create_server(), 400,
                 f"Network {bare} requires a subnet in order to boot instances on.")
    assert await api.instances() == []


# --- a list of networks and ports --------------------------------------------------------

async def test_entries_become_requested_networks_in_order(api: Api) -> None:
    net = await network(api)
    other = await network(api, "other", cidr="10.1.0.0/24")
    mine = await port(api, other)
    boot = await booted(api, networks=[{"uuid": net}, {"port": mine},
                                       {"uuid": other, "fixed_ip": "10.1.0.7"},
                                       {"uuid": net}])
    assert boot.networks == (
        RequestedNetwork(network_id=net), RequestedNetwork(network_id=other, port_id=mine),
        RequestedNetwork(network_id=other, fixed_ip="10.1.0.7"),
        RequestedNetwork(network_id=net))
    # a shared network is named like any other
    shared = await network(api, "shared", ADMIN, cidr="10.9.0.0/24", shared=True)
    assert (await booted(api, BOB, networks=[{"uuid": shared}])).networks == (
        RequestedNetwork(network_id=shared),)


async def test_every_unusable_entry_is_refused_before_anything_is_written(api: Api) -> None:
    net = await network(api)
    bare = await network(api, "bare", cidr=None)
    bobs_net = await network(api, "bobs", BOB, cidr="10.5.0.0/24")
    free = await port(api, net)
    bound = await port(api, net, device_id="some-other-server")
    no_ip = await port(api, bare)
    bobs_port = await port(api, bobs_net, BOB)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"networks": [{"uuid": UNKNOWN}]}, 400, f"Network {UNKNOWN} could not be found."),
        ({"networks": [{"uuid": bobs_net}]}, 400, f"Network {bobs_net} could not be found."),
        ({"networks": [{"uuid": bare}]}, 400,
         f"Network {bare} requires a subnet in order to boot instances on."),
        ({"networks": [{"port": UNKNOWN}]}, 400, f"Port id {UNKNOWN} could not be found."),
        ({"networks": [{"port": bobs_port}]}, 400, f"Port id {bobs_port} could not be found."),
        ({"networks": [{"port": bound}]}, 409, f"Port {bound} is still in use."),
        ({"networks": [{"port": no_ip}]}, 400,
         f"Port {no_ip} requires a FixedIP in order to be used."),
        ({"networks": [{"port": free}, {"port": free}]}, 400,
         f"Port {free} is requested more than once."),
        ({"networks": [{"port": free}], "max_count": 2}, 400,
         "Unable to launch multiple instances with a single configured port ID. Please "
         "launch your instance one by one with different ports."),
        ({"networks": [{"port": free}], "min_count": 2}, 400,
         "Unable to launch multiple instances with a single configured port ID. Please "
         "launch your instance one by one with different ports."),
        ({"networks": [{"uuid": net, "fixed_ip": "10.0.0.5"}], "max_count": 3}, 400,
         "Failed to launch instances: max_count cannot be greater than 1 if an fixed_ip "
         "is specified."),
        ({"networks": [{"port": free, "fixed_ip": "10.0.0.5"}]}, 400,
         f"Specified Fixed IP '10.0.0.5' cannot be used with port '{free}': the two "
         "cannot be specified together."),
        ({"networks": [{"uuid": net, "fixed_ip": "10.7.0.5"}]}, 400,
         f"Fixed IP address (10.7.0.5) does not exist in network ({net})."),
        ({"networks": [{"uuid": net, "fixed_ip": "10.0.0.1"}]}, 400,
         f"Fixed IP address 10.0.0.1 is not a valid address for the instance on network "
         f"{net}."),
        ({"networks": [{"uuid": net, "fixed_ip": "10.0.0.255"}]}, 400,
         f"Fixed IP address 10.0.0.255 is not a valid address for the instance on network "
         f"{net}."),
        ({"networks": [{"uuid": net, "fixed_ip": "10.0.0.256"}]}, 400,
         "Invalid input for field/attribute server.networks.0.fixed_ip. Value: "
         "'10.0.0.256'. '10.0.0.256' is not a valid IP address"),
        ({"networks": [{}]}, 400, "Bad network format: missing 'uuid'"),
        ({"networks": [{"uuid": "net-1"}]}, 400,
         "Bad networks format: network uuid is not in proper format (net-1)"),
        ({"networks": [{"uuid": net, "bogus": 1}]}, 400,
         "Additional properties are not allowed ('bogus' was unexpected)"),
        ({"networks": [{"port": "port-1"}]}, 400,
         "Invalid input for field/attribute server.networks.0.port. Value: 'port-1'. "
         "'port-1' is not a 'uuid'"),
        # a good entry first: still nothing half-created
        ({"networks": [{"uuid": net}, {"port": bound}]}, 409, f"Port {bound} is still in use."),
        ({"networks": [{"uuid": net}], "security_groups": [{"name": "nope"}]}, 400,
         "Security group nope not found."),
    ]
    for fields, status, message in cases:
        assert_fault(await api.create_server(**fields), status, message)
    assert await api.instances() == [] and boots(api) == []
    assert (await api.request("GET", "/v2.1/servers")).json()["servers"] == []
    # the refused port is still free: a create may use it
    assert (await booted(api, networks=[{"port": free}])).networks == (
        RequestedNetwork(network_id=net, port_id=free),)


# --- security groups ---------------------------------------------------------------------

async def test_security_groups_resolve_to_the_projects_group_ids(api: Api) -> None:
    assert (await booted(api)).security_groups == ()  # omitted: the ports' default
    web = (await api.request("POST", f"{V2}/security-groups", json={
        "security_group": {"name": "web"}})).json()["security_group"]
    listed = (await api.request("GET", f"{V2}/security-groups")).json()["security_groups"]
    default = next(g["id"] for g in listed if g["name"] == "default")
    response = await api.create_server(
        networks="none", security_groups=[{"name": "default"}, {"name": "web"},
                                          {"name": web["id"]}])
    assert response.status_code == 202, response.text
    assert response.json()["server"]["security_groups"] == [
        {"name": "default"}, {"name": "web"}, {"name": web["id"]}]
    assert boots(api)[-1].security_groups == (default, web["id"])
    # bob's groups are bob's: his "default" is his own, alice's "web" is unknown to him
    assert (await booted(api, BOB, security_groups=[{"name": "default"}])
            ).security_groups != (default,)
    assert_fault(await api.create_server(BOB, security_groups=[{"name": web["id"]}]), 400,
                 f"Security group {web['id']} not found.")


async def test_a_name_two_groups_share_is_ambiguous(api: Api) -> None:
    for _ in range(2):
        await api.request("POST", f"{V2}/security-groups",
                          json={"security_group": {"name": "twin"}})
    assert_fault(await api.create_server(security_groups=[{"name": "twin"}]), 409,
                 "Multiple security groups found matching 'twin'. Use an ID to be more "
                 "specific.")
    assert await api.instances() == []


# --- addresses -------------------------------------------------------------------------

async def create_none(api: Api, token: str = ALICE) -> str:
    """A server with no NIC (whatever the build does with networks)."""
    response = await api.create_server(token, networks="none")
    assert response.status_code == 202, response.text
    return str(response.json()["server"]["id"])


async def attach(api: Api, server_id: str, network_id: str, **fields: Any) -> dict[str, Any]:
    """A new port of the caller's on ``network_id``, bound to the server."""
    made = await make(api, "port", network_id=network_id, **fields)
    response = await api.request("PUT", f"{V2}/ports/{made['id']}",
                                 json={"port": {"device_id": server_id}})
    assert response.status_code == 200, response.text
    return made


async def test_addresses_list_the_servers_ports_by_network(api: Api) -> None:
    net = await network(api)
    await make(api, "subnet", network_id=net, cidr="fd00::/64", ip_version=6)
    other = await network(api, "other", cidr="10.1.0.0/24")
    server, bare = await create_none(api), await create_none(api)
    first = await attach(api, server, net, fixed_ips=[{"ip_address": "10.0.0.5"},
                                                     {"ip_address": "fd00::5"}])
    second = await attach(api, server, other, fixed_ips=[{"ip_address": "10.1.0.9"}])
    third = await attach(api, server, net, fixed_ips=[{"ip_address": "10.0.0.6"}])

    def fixed(version: int, addr: str, made: dict[str, Any]) -> dict[str, Any]:
        return {"version": version, "addr": addr, "OS-EXT-IPS:type": "fixed",
                "OS-EXT-IPS-MAC:mac_addr": made["mac_address"]}
    expected = {"net": [fixed(4, "10.0.0.5", first), fixed(6, "fd00::5", first),
                        fixed(4, "10.0.0.6", third)],
                "other": [fixed(4, "10.1.0.9", second)]}
    shown = (await api.request("GET", f"/v2.1/servers/{server}")).json()["server"]
    assert shown["addresses"] == expected
    assert list(shown["addresses"]) == ["net", "other"]  # in port order
    detail = (await api.request("GET", "/v2.1/servers/detail")).json()["servers"]
    assert {s["id"]: s["addresses"] for s in detail} == {server: expected, bare: {}}
    # the admin sees them too
    admin_view = (await api.request("GET", f"/v2.1/servers/{server}", token=ADMIN)).json()
    assert admin_view["server"]["addresses"] == expected


async def test_ips_and_ips_of_one_network(api: Api) -> None:
    net = await network(api)
    server, bare = await create_none(api), await create_none(api)
    await attach(api, server, net, fixed_ips=[{"ip_address": "10.0.0.5"}])
    ips = await api.request("GET", f"/v2.1/servers/{server}/ips")
    assert ips.status_code == 200, ips.text
    assert ips.json() == {"addresses": {"net": [{"version": 4, "addr": "10.0.0.5"}]}}
    one = await api.request("GET", f"/v2.1/servers/{server}/ips/net")
    assert one.json() == {"net": [{"version": 4, "addr": "10.0.0.5"}]}
    assert (await api.request("GET", f"/v2.1/servers/{bare}/ips")).json() == {
        "addresses": {}}
    assert_fault(await api.request("GET", f"/v2.1/servers/{server}/ips/other"), 404,
                 "Network other could not be found.")
    # the same access rules as server show
    assert_fault(await api.request("GET", f"/v2.1/servers/{server}/ips", token=BOB), 404,
                 f"Instance {server} could not be found.")
    assert_fault(await api.request("GET", f"/v2.1/servers/{server}/ips/net", token=BOB),
                 404, f"Instance {server} could not be found.")
    assert (await api.request("GET", f"/v2.1/servers/{server}/ips/net", token=ADMIN)
            ).status_code == 200
    assert_fault(await api.request("GET", f"/v2.1/servers/{UNKNOWN}/ips"), 404,
                 f"Instance {UNKNOWN} could not be found.")


async def test_a_detail_page_reads_ports_once(api: Api,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    for _ in range(3):
        await create_none(api)
    calls: list[list[str]] = []
    read = api.db.networks.vifs_for_instances

    async def counted(instance_ids: list[str]) -> dict[str, list[Vif]]:
        calls.append(list(instance_ids))
        return await read(instance_ids)
    monkeypatch.setattr(api.db.networks, "vifs_for_instances", counted)
    detail = await api.request("GET", "/v2.1/servers/detail")
    assert len(detail.json()["servers"]) == 3
    assert len(calls) == 1 and len(calls[0]) == 3
    await api.request("GET", "/v2.1/servers")  # the summaries need no ports
    assert len(calls) == 1


async def test_an_active_server_shows_the_port_bound_to_it(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        net = (await h.client.request("POST", f"{V2}/networks", json={
            "network": {"name": "lan"}})).json()["network"]
        await h.client.request("POST", f"{V2}/subnets", json={"subnet": {
            "network_id": net["id"], "cidr": "192.168.7.0/24", "ip_version": 4}})
        server = await h.client.create_server("vm", image=h.image_id,
                                              flavor=h.flavors["m1.tiny"], networks="none")
        await h.client.wait_for_status(server, {"ACTIVE"})
        made = (await h.client.request("POST", f"{V2}/ports", json={"port": {
            "network_id": net["id"], "fixed_ips": [{"ip_address": "192.168.7.20"}]}}
        )).json()["port"]
        await h.client.request("PUT", f"{V2}/ports/{made['id']}",
                               json={"port": {"device_id": server}})
        shown = (await h.client.request("GET", f"/v2.1/servers/{server}")).json()["server"]
        assert shown["status"] == "ACTIVE"
        assert shown["addresses"] == {"lan": [{
            "version": 4, "addr": "192.168.7.20", "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": made["mac_address"]}]}
        ips = (await h.client.request("GET", f"/v2.1/servers/{server}/ips/lan")).json()
        assert ips == {"lan": [{"version": 4, "addr": "192.168.7.20"}]}
