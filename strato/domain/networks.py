"""Networks, subnets, ports and security groups: the model of strato's Network API (a
Neutron v2 subset). Plain values; the rules that need no database live here too.

A port's MAC starts with Neutron's ``fa:16:3e`` prefix. A port is ``DOWN`` until the
compute plugs it on its host (then ``ACTIVE``). Every project has a ``default`` security
group: all egress, ingress only from members of the same group.

The errors are domain errors named after Neutron's exceptions and worded as Neutron
words them, so the API shows the class name as Neutron's ``type`` (as
:mod:`strato.domain.security_groups` does for its own).
"""

from __future__ import annotations

import enum
import ipaddress
import secrets
from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.errors import Conflict, Forbidden, NotFound
from strato.domain.ids import ProjectId

__all__ = ["DEFAULT_MTU", "DEFAULT_SECURITY_GROUP", "DHCP_OWNER", "Direction", "FixedIp",
           "HostPorts", "HostRoute", "IpAddressAlreadyAllocated", "IpAddressGenerationFailure",
           "IpPool", "MAC_PREFIX", "MacAddressInUse", "Network", "NetworkInUse",
           "NetworkNotFound", "Port", "PortInUse", "PortNotFound", "PortSecurity",
           "PortStatus", "SecurityGroup", "SecurityGroupRule", "Subnet", "SubnetInUse",
           "SubnetNotFound", "Vif", "VifSubnet", "default_pools", "random_mac"]

MAC_PREFIX = "fa:16:3e"
DEFAULT_MTU = 1500
DEFAULT_SECURITY_GROUP = "default"
# The device owner of a DHCP agent's port (it keeps no network or subnet in use).
DHCP_OWNER = "network:dhcp"


class NetworkNotFound(NotFound):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"Network {network_id} could not be found.")


class SubnetNotFound(NotFound):
    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Subnet {subnet_id} could not be found.")


class PortNotFound(NotFound):
    def __init__(self, port_id: str) -> None:
        super().__init__(f"Port {port_id} could not be found.")


class IpAddressGenerationFailure(Conflict):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"No more IP addresses available on network {network_id}.")


class IpAddressAlreadyAllocated(Conflict):
    def __init__(self, ip: str, subnet_id: str) -> None:
        super().__init__(f"IP address {ip} already allocated in subnet {subnet_id}")


class PolicyNotAuthorized(Forbidden):
    """A field of a network resource the caller may not set (Neutron's field policies)."""


class MacAddressInUse(Conflict):
    def __init__(self, network_id: str, mac: str | None = None) -> None:
        address = f" {mac}" if mac else ""
        super().__init__(f"Unable to complete operation for network {network_id}. "
                         f"The mac address{address} is in use.")


class PortInUse(Conflict):
    def __init__(self, port_id: str, device_id: str) -> None:
        super().__init__(f"Port {port_id} is still in use by device {device_id}.")


class NetworkInUse(Conflict):
    def __init__(self, network_id: str) -> None:
        super().__init__(f"Unable to complete operation on network {network_id}. "
                         "There are one or more ports still in use on the network.")


class SubnetInUse(Conflict):
    def __init__(self, subnet_id: str) -> None:
        super().__init__(f"Unable to complete operation on subnet {subnet_id}: One or "
                         "more ports have an IP allocation from this subnet.")


def random_mac() -> str:
    """A MAC in Neutron's ``fa:16:3e:xx:xx:xx`` space (uniqueness is the database's job)."""
    tail = secrets.token_bytes(3)
    return MAC_PREFIX + "".join(f":{b:02x}" for b in tail)


@dataclass(frozen=True, slots=True, kw_only=True)
class Network:
    id: str
    name: str
    project_id: ProjectId
    shared: bool = False
    admin_state_up: bool = True
    mtu: int = DEFAULT_MTU
    status: str = "ACTIVE"
    description: str = ""
    subnets: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class IpPool:
    start: str
    end: str


@dataclass(frozen=True, slots=True, kw_only=True)
class HostRoute:
    destination: str
    nexthop: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Subnet:
    id: str
    network_id: str
    project_id: ProjectId
    name: str
    ip_version: int
    cidr: str
    gateway_ip: str | None
    allocation_pools: tuple[IpPool, ...] = ()
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[HostRoute, ...] = ()
    enable_dhcp: bool = True
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


def default_pools(cidr: str, gateway_ip: str | None) -> tuple[IpPool, ...]:
    """Neutron's default allocation pools: every host address of the CIDR except the
    gateway (the network address, and for IPv4 the broadcast address, are not hosts)."""
    net = ipaddress.ip_network(cidr)
    low, high = int(net.network_address), int(net.broadcast_address)
    if net.num_addresses > 2:
        low += 1
        if net.version == 4:
            high -= 1

    def address(value: int) -> str:
        return str(ipaddress.ip_address(value) if net.version == 4
                   else ipaddress.IPv6Address(value))

    gateway = int(ipaddress.ip_address(gateway_ip)) if gateway_ip else None
    if gateway is None or not low <= gateway <= high:
        return (IpPool(start=address(low), end=address(high)),)
    pools = []
    if gateway > low:
        pools.append(IpPool(start=address(low), end=address(gateway - 1)))
    if gateway < high:
        pools.append(IpPool(start=address(gateway + 1), end=address(high)))
    return tuple(pools)


class PortStatus(enum.StrEnum):
    DOWN = "DOWN"
    BUILD = "BUILD"
    ACTIVE = "ACTIVE"


@dataclass(frozen=True, slots=True, kw_only=True)
class FixedIp:
    subnet_id: str
    ip_address: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Port:
    id: str
    network_id: str
    project_id: ProjectId
    mac_address: str
    name: str = ""
    admin_state_up: bool = True
    status: PortStatus = PortStatus.DOWN
    device_id: str = ""
    device_owner: str = ""
    fixed_ips: tuple[FixedIp, ...] = ()
    security_groups: tuple[str, ...] = ()
    binding_host_id: str = ""
    binding_vif_type: str = "unbound"
    binding_vif_details: dict[str, str] = field(default_factory=dict)
    description: str = ""
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Direction(enum.StrEnum):
    INGRESS = "ingress"
    EGRESS = "egress"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityGroupRule:
    id: str
    security_group_id: str
    project_id: ProjectId
    direction: Direction
    ethertype: str = "IPv4"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None
    description: str = ""
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SecurityGroup:
    id: str
    project_id: ProjectId
    name: str
    description: str = ""
    rules: tuple[SecurityGroupRule, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class VifSubnet:
    """A subnet as a guest's NIC sees it, with the port's addresses in it."""

    id: str
    cidr: str
    ip_version: int
    gateway_ip: str | None
    ips: tuple[str, ...]
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[HostRoute, ...] = ()
    enable_dhcp: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Vif:
    """One port of an instance, with what the host needs to plug it and the guest needs
    to configure it (Nova's VIF model, from the seeds' network info)."""

    port_id: str
    network_id: str
    network_name: str
    mac_address: str
    mtu: int = DEFAULT_MTU
    subnets: tuple[VifSubnet, ...] = ()
    # The build created the port (deleted with the instance); a user's own port is
    # only unbound.
    auto_delete: bool = True

    @property
    def fixed_ips(self) -> tuple[str, ...]:
        return tuple(ip for subnet in self.subnets for ip in subnet.ips)


@dataclass(frozen=True, slots=True, kw_only=True)
class PortSecurity:
    """A port bound to a host, as that host's firewall needs it."""

    port_id: str
    network_id: str
    mac_address: str
    mtu: int
    ips: tuple[str, ...]
    rules: tuple[SecurityGroupRule, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class HostPorts:
    """Everything one host plugs and filters: its bound ports, the addresses of every
    security group a ``remote_group_id`` rule names, and the networks that exist (a
    bridge of any other network is stale)."""

    ports: tuple[PortSecurity, ...]
    members: dict[str, tuple[str, ...]]
    networks: tuple[str, ...]

