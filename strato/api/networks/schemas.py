"""Network API request bodies -> domain values, validated as Neutron validates them.

Each body is ``{"<resource>": {...}}``. An attribute Neutron does not know (or one
strato does not offer) is a 400 "Unrecognized attribute(s) 'x'", as in Neutron; then
pydantic (strict: a string is never a boolean) checks the types, and the checks below
the CIDR, addresses, pools and MACs. Every failure is an ``Invalid`` (400
``InvalidInput``).

Read-only attributes a client may echo back (``router:external`` false,
``port_security_enabled`` true, ``availability_zone_hints`` [], ``ipv6_*_mode`` and
``subnetpool_id`` null, ``binding:vnic_type`` "normal") are accepted with those values
only.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from strato.api.bodies import parse_model
from strato.domain.errors import Invalid
from strato.domain.networks import FixedIp, HostRoute, IpPool, default_pools

__all__ = ["NetworkBody", "NetworkUpdate", "PortBody", "PortUpdate", "SubnetBody",
           "SubnetFields", "SubnetUpdate", "parse", "subnet_fields"]

M = TypeVar("M", bound=BaseModel)

Text = Annotated[str, Field(max_length=255)]
_MAC_RE = re.compile(r"^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2}){5}$")


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True, populate_by_name=True)


class NetworkBody(_Body):
    name: Text = ""
    description: Text = ""
    admin_state_up: bool = True
    shared: bool = False
    mtu: Annotated[int, Field(ge=68, le=9216)] | None = None
    tenant_id: Text | None = None
    project_id: Text | None = None
    router_external: Literal[False] = Field(False, alias="router:external")
    port_security_enabled: Literal[True] = True
    availability_zone_hints: Annotated[list[str], Field(max_length=0)] = []


class NetworkUpdate(_Body):
    name: Text | None = None
    description: Text | None = None
    admin_state_up: bool | None = None
    shared: bool | None = None
    mtu: Annotated[int, Field(ge=68, le=9216)] | None = None


class _Pool(_Body):
    start: str
    end: str


class _Route(_Body):
    destination: str
    nexthop: str


class SubnetBody(_Body):
    network_id: str
    cidr: str
    ip_version: Literal[4, 6]
    name: Text = ""
    description: Text = ""
    gateway_ip: str | None = ""   # "" means "not given": the first host
    allocation_pools: list[_Pool] | None = None
    dns_nameservers: list[str] = []
    host_routes: list[_Route] = []
    enable_dhcp: bool = True
    tenant_id: Text | None = None
    project_id: Text | None = None
    ipv6_ra_mode: None = None
    ipv6_address_mode: None = None
    subnetpool_id: None = None


class SubnetUpdate(_Body):
    name: Text | None = None
    description: Text | None = None
    dns_nameservers: list[str] | None = None
    host_routes: list[_Route] | None = None
    enable_dhcp: bool | None = None


class _FixedIp(_Body):
    subnet_id: str = ""
    ip_address: str = ""


class PortBody(_Body):
    network_id: str
    name: Text = ""
    description: Text = ""
    admin_state_up: bool = True
    mac_address: str = ""
    fixed_ips: list[_FixedIp] | None = None
    device_id: Text = ""
    device_owner: Text = ""
    security_groups: list[str] | None = None
    binding_host_id: Text = Field("", alias="binding:host_id")
    binding_vnic_type: Literal["normal"] = Field("normal", alias="binding:vnic_type")
    tenant_id: Text | None = None
    project_id: Text | None = None
    port_security_enabled: Literal[True] = True


class PortUpdate(_Body):
    name: Text | None = None
    description: Text | None = None
    admin_state_up: bool | None = None
    device_id: Text | None = None
    device_owner: Text | None = None
    binding_host_id: Text | None = Field(None, alias="binding:host_id")
    security_groups: list[str] | None = None
    fixed_ips: list[_FixedIp] | None = None


def _invalid(message: str) -> Invalid:
    return Invalid(f"Invalid input for operation: {message}.")


def parse(model: type[M], body: Any, resource: str) -> M:
    """``{resource: {...}}`` validated into ``model``; ``Invalid`` (400) otherwise."""
    if not isinstance(body, dict) or list(body) != [resource] \
            or not isinstance(body[resource], dict):
        raise Invalid(f"Resource body required with key '{resource}'.")
    data = body[resource]
    known = {f.alias or name for name, f in model.model_fields.items()}
    unknown = [key for key in data if key not in known]
    if unknown:
        raise Invalid(f"Unrecognized attribute(s) '{', '.join(unknown)}'")
    return parse_model(model, data)


def fixed_ips(requests: list[_FixedIp] | None) -> tuple[FixedIp, ...] | None:
    """The requested fixed IPs: each names a subnet, an address, or both."""
    if requests is None:
        return None
    for request in requests:
        if not request.subnet_id and not request.ip_address:
            raise _invalid("fixed_ips entries need a subnet_id or an ip_address")
    return tuple(FixedIp(subnet_id=r.subnet_id, ip_address=r.ip_address) for r in requests)


def mac_address(value: str) -> str:
    """A unicast MAC in lower case; ``Invalid`` otherwise."""
    if not _MAC_RE.fullmatch(value) or int(value[:2], 16) & 1 or value == "00:00:00:00:00:00":
        raise _invalid(f"'{value}' is not a valid MAC address")
    return value.lower()


def _ip(value: str, version: int | None = None) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    try:
        address = ipaddress.ip_address(value)
    except ValueError:
        raise _invalid(f"'{value}' is not a valid IP address") from None
    if version is not None and address.version != version:
        raise _invalid(f"'{value}' is not an IPv{version} address")
    return address


def _cidr(value: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(value, strict=True)
    except ValueError:
        try:
            recommended = ipaddress.ip_network(value, strict=False)
        except ValueError:
            raise _invalid(f"'{value}' is not a valid IP subnet") from None
        raise _invalid(f"'{value}' isn't a recognized IP subnet cidr, '{recommended}' is "
                       "recommended") from None


def dns_nameservers(values: list[str]) -> tuple[str, ...]:
    for value in values:
        _ip(value)
    if len(set(values)) != len(values):
        raise _invalid(f"Duplicate nameserver in {values}")
    return tuple(values)


def host_routes(values: list[_Route]) -> tuple[HostRoute, ...]:
    for route in values:
        _cidr(route.destination)
        _ip(route.nexthop)
    return tuple(HostRoute(destination=r.destination, nexthop=r.nexthop) for r in values)


@dataclass(frozen=True, slots=True, kw_only=True)
class SubnetFields:
    """The validated address plan of a new subnet."""

    cidr: str
    gateway_ip: str | None
    allocation_pools: tuple[IpPool, ...]


def subnet_fields(body: SubnetBody) -> SubnetFields:
    """Check the CIDR (no host bits), the gateway (a host of the CIDR) and the pools
    (inside the CIDR's hosts, disjoint, not holding the gateway); default the gateway
    to the first host and the pools to every other host."""
    net = _cidr(body.cidr)
    if net.version != body.ip_version:
        raise _invalid(f"Cidr {body.cidr} does not match the ip_version {body.ip_version}")
    if net.num_addresses < 4 and net.version == 4:
        raise _invalid(f"The prefix length of {body.cidr} is too long")
    low, high = int(net.network_address) + 1, int(net.broadcast_address)
    if net.version == 4:
        high -= 1
    gateway: str | None
    if body.gateway_ip == "":
        gateway = str(net.network_address + 1)
    elif body.gateway_ip is None:
        gateway = None
    else:
        address = _ip(body.gateway_ip, net.version)
        if not low <= int(address) <= high:
            raise _invalid(f"Gateway ip {body.gateway_ip} conflicts with allocation pool "
                           f"or is not a host of {body.cidr}")
        gateway = str(address)
    if body.allocation_pools is None:
        return SubnetFields(cidr=str(net), gateway_ip=gateway,
                            allocation_pools=default_pools(str(net), gateway))
    ranges: list[tuple[int, int]] = []
    for pool in body.allocation_pools:
        start, end = _ip(pool.start, net.version), _ip(pool.end, net.version)
        if not low <= int(start) <= int(end) <= high:
            raise _invalid(f"The allocation pool {pool.start}-{pool.end} spans beyond the "
                           f"subnet cidr {body.cidr}")
        if gateway is not None and int(start) <= int(_ip(gateway)) <= int(end):
            raise _invalid(f"Gateway ip {gateway} conflicts with allocation pool "
                           f"{pool.start}-{pool.end}")
        ranges.append((int(start), int(end)))
    ranges.sort()
    for (_, first_end), (second_start, _) in zip(ranges, ranges[1:], strict=False):
        if second_start <= first_end:
            raise _invalid("Found overlapping allocation pools")
    return SubnetFields(cidr=str(net), gateway_ip=gateway, allocation_pools=tuple(
        IpPool(start=str(_ip(p.start)), end=str(_ip(p.end))) for p in body.allocation_pools))
