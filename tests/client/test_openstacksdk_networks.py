"""openstacksdk's network calls against a real strato API (``strato up`` as an OS process).

The SDK connects without Keystone: keystoneauth's ``admin_token`` plugin sends the static
admin token, and ``network_endpoint_override`` points the network proxy at
``<api>/networking``, where it discovers v2.0 from the version document as it does on
Neutron's root.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterator
from typing import Any

import openstack
import pytest
import requests
from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection
from openstack.network.v2._proxy import Proxy as NetworkProxy

from tests.client.server_fixtures import (
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

# As in test_openstacksdk_images: openstacksdk 4.22 warns against itself about its own
# deprecations on every call; those removal-schedule warnings are ignored, any other
# warning still fails a test.
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]

MAC = re.compile(r"^fa:16:3e(:[0-9a-f]{2}){3}$")


def connect(api: RunningApi) -> Connection:
    """An SDK connection to strato's Network API, with no Keystone and no clouds.yaml."""
    connection: Connection = openstack.connect(
        auth_type="admin_token", auth={"endpoint": api.url, "token": api.token},
        network_endpoint_override=f"{api.url}/networking",
        load_yaml_config=False, load_envvars=False)
    return connection


@pytest.fixture(scope="module")
def neutron(api: RunningApi) -> Iterator[NetworkProxy]:
    """The connection's network proxy: the SDK must have picked the v2 API."""
    connection = connect(api)
    try:
        assert isinstance(connection.network, NetworkProxy)
        yield connection.network
    finally:
        connection.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def network_with_subnet(neutron: NetworkProxy, cidr: str, **subnet: Any) -> tuple[Any, Any]:
    net = neutron.create_network(name=unique("net"))
    sub = neutron.create_subnet(network_id=net.id, cidr=cidr, ip_version=4,
                                name=unique("sub"), **subnet)
    return net, sub


# -- discovery ---------------------------------------------------------------------------

def test_version_discovery_finds_v2_at_the_root(api: RunningApi,
                                                neutron: NetworkProxy) -> None:
    # Neutron answers its root with and without the slash (no redirect), without a token.
    for path in ("/networking", "/networking/"):
        response = requests.get(api.url + path, allow_redirects=False, timeout=30)
        assert response.status_code == 200
        assert [(v["id"], v["status"]) for v in response.json()["versions"]] == [
            ("v2.0", "CURRENT")]
    assert (neutron.get_endpoint() or "").rstrip("/") == f"{api.url}/networking/v2.0"
    assert neutron.find_extension("security-group") is not None
    assert "pagination" in {e.alias for e in neutron.extensions()}
    # What a client probes for and strato does not do is a miss, not an error.
    assert neutron.find_extension("tag-ports-during-bulk-creation") is None


# -- networks -----------------------------------------------------------------------------

def test_network_create_list_get_find_delete(neutron: NetworkProxy) -> None:
    name = unique("net")
    net = neutron.create_network(name=name, description="sdk network")
    assert (net.name, net.description, net.status) == (name, "sdk network", "ACTIVE")
    assert (net.is_admin_state_up, net.is_shared, net.mtu) == (True, False, 1500)
    assert net.subnet_ids == []
    assert net.id in {n.id for n in neutron.networks()}
    assert [n.id for n in neutron.networks(name=name)] == [net.id]
    assert neutron.get_network(net.id).name == name
    # find_network tries the id, then lists by name: both forms find it.
    assert neutron.find_network(name, ignore_missing=False).id == net.id
    assert neutron.find_network(net.id, ignore_missing=False).name == name
    renamed = neutron.update_network(net, name=name + "-x")
    assert neutron.get_network(net.id).name == renamed.name == name + "-x"
    neutron.delete_network(net, ignore_missing=False)
    with pytest.raises(sdk_exceptions.NotFoundException):
        neutron.get_network(net.id)
    assert neutron.find_network(name + "-x") is None
    with pytest.raises(sdk_exceptions.NotFoundException):
        neutron.delete_network(net.id, ignore_missing=False)


def test_network_filters_by_boolean_and_id(neutron: NetworkProxy) -> None:
    net = neutron.create_network(name=unique("net"), admin_state_up=False)
    down = {n.id for n in neutron.networks(is_admin_state_up=False)}
    assert net.id in down
    assert net.id not in {n.id for n in neutron.networks(is_admin_state_up=True)}
    assert [n.id for n in neutron.networks(id=net.id)] == [net.id]
    neutron.delete_network(net)


# -- subnets ------------------------------------------------------------------------------

def test_subnet_with_gateway_pools_and_dns(neutron: NetworkProxy) -> None:
    net = neutron.create_network(name=unique("net"))
    sub = neutron.create_subnet(
        network_id=net.id, cidr="10.20.0.0/24", ip_version=4, name="sdk-sub",
        gateway_ip="10.20.0.254", dns_nameservers=["192.0.2.53", "192.0.2.54"],
        allocation_pools=[{"start": "10.20.0.10", "end": "10.20.0.20"},
                          {"start": "10.20.0.100", "end": "10.20.0.109"}])
    assert (sub.cidr, sub.ip_version, sub.gateway_ip) == ("10.20.0.0/24", 4, "10.20.0.254")
    assert sub.allocation_pools == [{"start": "10.20.0.10", "end": "10.20.0.20"},
                                    {"start": "10.20.0.100", "end": "10.20.0.109"}]
    assert sub.dns_nameservers == ["192.0.2.53", "192.0.2.54"]
    assert sub.is_dhcp_enabled is True
    assert neutron.get_network(net.id).subnet_ids == [sub.id]
    assert [s.id for s in neutron.subnets(network_id=net.id)] == [sub.id]
    assert [s.id for s in neutron.subnets(cidr="10.20.0.0/24", network_id=net.id)] == [
        sub.id]
    # Without them: the gateway is the first host, the pool every other host.
    other = neutron.create_subnet(network_id=net.id, cidr="10.21.0.0/28", ip_version=4)
    assert other.gateway_ip == "10.21.0.1"
    assert other.allocation_pools == [{"start": "10.21.0.2", "end": "10.21.0.14"}]
    with pytest.raises(sdk_exceptions.BadRequestException):
        neutron.create_subnet(network_id=net.id, cidr="10.22.0.1/24", ip_version=4)
    neutron.delete_subnet(other, ignore_missing=False)
    neutron.delete_subnet(sub, ignore_missing=False)
    assert list(neutron.subnets(network_id=net.id)) == []
    with pytest.raises(sdk_exceptions.NotFoundException):
        neutron.get_subnet(sub.id)
    neutron.delete_network(net)


def test_a_full_subnet_is_a_conflict(neutron: NetworkProxy) -> None:
    net, _ = network_with_subnet(
        neutron, "10.40.0.0/29", allocation_pools=[{"start": "10.40.0.2", "end": "10.40.0.3"}])
    ports = [neutron.create_port(network_id=net.id) for _ in range(2)]
    assert sorted(p.fixed_ips[0]["ip_address"] for p in ports) == ["10.40.0.2", "10.40.0.3"]
    with pytest.raises(sdk_exceptions.ConflictException, match="No more IP addresses"):
        neutron.create_port(network_id=net.id)
    # Freeing one address makes room again.
    neutron.delete_port(ports[0])
    again = neutron.create_port(network_id=net.id)
    assert again.fixed_ips[0]["ip_address"] == ports[0].fixed_ips[0]["ip_address"]
    for port in (ports[1], again):
        neutron.delete_port(port)
    neutron.delete_network(net)


# -- ports --------------------------------------------------------------------------------

def test_port_create_filter_update_delete(neutron: NetworkProxy) -> None:
    net, sub = network_with_subnet(neutron, "10.30.0.0/24")
    [default] = neutron.security_groups(name="default", project_id=net.project_id)
    device = str(uuid.uuid4())
    port = neutron.create_port(network_id=net.id, name="sdk-port", device_id=device,
                               fixed_ips=[{"subnet_id": sub.id, "ip_address": "10.30.0.15"}])
    assert port.fixed_ips == [{"subnet_id": sub.id, "ip_address": "10.30.0.15"}]
    assert MAC.match(port.mac_address), port.mac_address
    assert (port.device_id, port.network_id, port.name) == (device, net.id, "sdk-port")
    # A port created without groups is in its project's default group, as in Neutron.
    assert port.security_group_ids == [default.id]
    other = neutron.create_port(network_id=net.id)
    assert other.fixed_ips[0]["subnet_id"] == sub.id
    assert other.fixed_ips[0]["ip_address"] != "10.30.0.15"
    assert other.mac_address != port.mac_address

    assert {p.id for p in neutron.ports(network_id=net.id)} == {port.id, other.id}
    assert [p.id for p in neutron.ports(device_id=device)] == [port.id]
    assert [p.id for p in neutron.ports(network_id=net.id, device_id=device)] == [port.id]
    assert [p.id for p in neutron.ports(mac_address=other.mac_address)] == [other.id]
    assert [p.id for p in neutron.ports(fixed_ips=["ip_address=10.30.0.15"])] == [port.id]
    assert {p.id for p in neutron.ports(fixed_ips=[f"subnet_id={sub.id}"])} == {
        port.id, other.id}
    assert [p.id for p in neutron.ports(network_id=net.id, fields=["id", "name"],
                                        name="sdk-port")] == [port.id]

    group = neutron.create_security_group(name=unique("sg"))
    updated = neutron.update_port(port, name="renamed", device_id="",
                                  security_group_ids=[group.id])
    assert (updated.name, updated.device_id) == ("renamed", "")
    assert updated.security_group_ids == [group.id]
    assert neutron.get_port(port.id).security_group_ids == [group.id]
    assert list(neutron.ports(device_id=device)) == []

    for p in (port, other):
        neutron.delete_port(p, ignore_missing=False)
    with pytest.raises(sdk_exceptions.NotFoundException):
        neutron.get_port(port.id)
    assert list(neutron.ports(network_id=net.id)) == []
    neutron.delete_security_group(group)
    neutron.delete_network(net)


# -- security groups -----------------------------------------------------------------------

def rule_shape(rule: Any) -> tuple[Any, ...]:
    return (rule.direction, rule.ether_type, rule.protocol, rule.port_range_min,
            rule.port_range_max, rule.remote_ip_prefix, rule.remote_group_id)


def test_security_groups_and_rules(neutron: NetworkProxy) -> None:
    name = unique("sg")
    group = neutron.create_security_group(name=name, description="sdk group")
    assert (group.name, group.description) == (name, "sdk group")
    # Neutron gives a new group its two egress rules.
    assert sorted(rule_shape(r) for r in neutron.security_group_rules(
        security_group_id=group.id)) == [
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None)]
    assert len(group.security_group_rules) == 2
    rule = neutron.create_security_group_rule(
        security_group_id=group.id, direction="ingress", ether_type="IPv4",
        protocol="tcp", port_range_min=22, port_range_max=22,
        remote_ip_prefix="0.0.0.0/0")
    assert rule_shape(rule) == ("ingress", "IPv4", "tcp", 22, 22, "0.0.0.0/0", None)
    assert rule.id in {r.id for r in neutron.security_group_rules(
        security_group_id=group.id, direction="ingress")}
    assert [g.id for g in neutron.security_groups(name=name)] == [group.id]
    assert len(neutron.get_security_group(group.id).security_group_rules) == 3
    with pytest.raises(sdk_exceptions.ConflictException):
        neutron.create_security_group_rule(
            security_group_id=group.id, direction="ingress", ether_type="IPv4",
            protocol="tcp", port_range_min=22, port_range_max=22,
            remote_ip_prefix="0.0.0.0/0")

    neutron.delete_security_group_rule(rule, ignore_missing=False)
    with pytest.raises(sdk_exceptions.NotFoundException):
        neutron.get_security_group_rule(rule.id)
    neutron.delete_security_group(group, ignore_missing=False)
    assert neutron.find_security_group(name) is None


def test_default_group_rules(neutron: NetworkProxy) -> None:
    # Listing creates the caller's project's default group, as Neutron does.
    [default] = neutron.security_groups(name="default")
    assert len(default.security_group_rules) == 4
    shapes = sorted(rule_shape(r) for r in neutron.security_group_rules(
        security_group_id=default.id))
    assert shapes == [
        ("egress", "IPv4", None, None, None, None, None),
        ("egress", "IPv6", None, None, None, None, None),
        ("ingress", "IPv4", None, None, None, None, default.id),
        ("ingress", "IPv6", None, None, None, None, default.id)]


# -- paging and sorting --------------------------------------------------------------------

def test_limit_pages_through_the_generator(neutron: NetworkProxy) -> None:
    tag = unique("page")
    ids = {neutron.create_network(name=f"{tag}-{i}", description=tag).id for i in range(5)}
    # limit=2: the SDK follows the networks_links "next" hrefs page by page.
    assert {n.id for n in neutron.networks(description=tag, limit=2)} == ids
    assert len(list(neutron.networks(description=tag, limit=1))) == 5
    # Sorting is Neutron's: sort_key/sort_dir, then pages in that order.
    names = [n.name for n in neutron.networks(description=tag, limit=2,
                                              sort_key="name", sort_dir="desc")]
    assert names == [f"{tag}-{i}" for i in (4, 3, 2, 1, 0)]

    net, _ = network_with_subnet(neutron, "10.50.0.0/24")
    ports = {neutron.create_port(network_id=net.id).id for _ in range(3)}
    assert {p.id for p in neutron.ports(network_id=net.id, limit=1)} == ports
    group = neutron.create_security_group(name=unique("sg"))
    assert len(list(neutron.security_group_rules(security_group_id=group.id, limit=1))) == 2

    for port in ports:
        neutron.delete_port(port)
    neutron.delete_security_group(group)
    for network_id in ids | {net.id}:
        neutron.delete_network(network_id)


def test_raw_page_links_are_neutrons(neutron: NetworkProxy) -> None:
    tag = unique("links")
    ids = sorted(neutron.create_network(name=tag, description=tag).id for _ in range(3))
    first = neutron.get("/networks", params={"description": tag, "limit": 2}).json()
    assert [n["id"] for n in first["networks"]] == ids[:2]
    rels = {link["rel"]: link["href"] for link in first["networks_links"]}
    assert set(rels) == {"next", "previous"}
    assert f"marker={ids[1]}" in rels["next"]
    second = neutron.get(rels["next"]).json()
    assert [n["id"] for n in second["networks"]] == ids[2:]
    # A short forward page has only a "previous" link; it goes back before its first item.
    [previous] = second["networks_links"]
    assert previous["rel"] == "previous"
    back = neutron.get(previous["href"]).json()
    assert [n["id"] for n in back["networks"]] == ids[:2]
    response = neutron.get("/networks", params={"limit": 1, "marker": str(uuid.uuid4())})
    with pytest.raises(sdk_exceptions.NotFoundException):
        sdk_exceptions.raise_from_response(response)
    for network_id in ids:
        neutron.delete_network(network_id)


def test_raw_query_edges_are_neutrons(neutron: NetworkProxy) -> None:
    tag = unique("edges")
    ids = sorted(neutron.create_network(name=tag, description=tag).id for _ in range(3))

    def listed(**params: Any) -> Any:
        response = neutron.get("/networks", params={"description": tag, **params})
        sdk_exceptions.raise_from_response(response)
        return response.json()

    # limit=0 is "no paging" (everything, no links), as in Neutron.
    assert [n["id"] for n in listed(limit=0)["networks"]] == ids
    assert "networks_links" not in listed(limit=0)
    # page_reverse: the page before the marker, in the same order.
    assert [n["id"] for n in listed(limit=1, marker=ids[2], page_reverse="True")[
        "networks"]] == [ids[1]]
    assert [n["id"] for n in listed(sort_key="id", sort_dir="desc")["networks"]] == ids[::-1]
    for bad in ({"limit": "-1"}, {"limit": "x"}, {"sort_key": "name"},
                {"sort_key": "name", "sort_dir": "up"},
                {"sort_key": "subnets", "sort_dir": "asc"},
                {"admin_state_up": "maybe"}):
        with pytest.raises(sdk_exceptions.BadRequestException):
            listed(**bad)
    for network_id in ids:
        neutron.delete_network(network_id)
