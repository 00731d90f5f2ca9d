"""``NetworkRepo`` on SQL: networks, subnets, ports and IPAM (the fixed IPs of ports).

Every method is one transaction. Creates are quota-checked like instance creates: the
count of the project's networks, subnets or ports and the insert run in one write
transaction under the project's quota lock (:func:`strato.db._quotas.lock_project`).
The limits are Neutron's defaults (:data:`QUOTA_DEFAULTS`) unless the project has a row
in ``quotas`` under the resource name ``network``, ``subnet`` or ``port``.

IPAM: a port's address is the lowest free address of the subnet's allocation pools
(random candidates in pools too large to walk, such as an IPv6 /64). The unique
constraint on ``ip_allocations (subnet_id, ip_address)`` is the guarantee: each insert
runs in a savepoint, and when a concurrent transaction took the address first the
savepoint is rolled back, the subnet's allocations are read again and the next
candidate is tried, a bounded number of times. The network, broadcast and gateway
addresses are never in a pool (the API validates pools), and a specific address
request must not be one of them either.

Errors are the Neutron-named domain errors of :mod:`strato.domain.networks` (and
:class:`~strato.domain.security_groups.SecurityGroupNotFound`), worded as Neutron's.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._quotas import lock_project
from strato.domain.errors import Forbidden, Invalid, OverQuota
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import (
    DEFAULT_MTU,
    DHCP_OWNER,
    FixedIp,
    HostRoute,
    IpAddressAlreadyAllocated,
    IpAddressGenerationFailure,
    IpPool,
    MacAddressInUse,
    Network,
    NetworkInUse,
    NetworkNotFound,
    Port,
    PortInUse,
    PortNotFound,
    PortStatus,
    Subnet,
    SubnetInUse,
    SubnetNotFound,
    Vif,
    VifSubnet,
    random_mac,
)
from strato.domain.requests import RequestedNetwork
from strato.domain.security_groups import SecurityGroupNotFound

__all__ = ["QUOTA_DEFAULTS", "SqlNetworkRepo", "release_instance_ports"]

_N = t.networks.c
_S = t.subnets.c
_P = t.ports.c
_A = t.ip_allocations.c
_PSG = t.port_security_groups.c
_SG = t.security_groups.c

# Neutron's default quotas; a negative limit is no limit.
QUOTA_DEFAULTS: Mapping[str, int] = {"network": 100, "subnet": 100, "port": 500}
# How many times one allocation retries after losing an address to a concurrent one.
MAX_ALLOCATION_RETRIES = 200
# Pools with more addresses than this are sampled at random instead of walked.
_WALK_LIMIT = 1 << 16
_RANDOM_TRIES = 64

_NETWORK_FIELDS = frozenset({"name", "description", "admin_state_up", "shared", "mtu"})
_SUBNET_FIELDS = frozenset({"name", "description", "dns_nameservers", "host_routes",
                            "enable_dhcp"})
_PORT_FIELDS = frozenset({"name", "description", "admin_state_up", "device_id",
                          "device_owner", "binding_host_id"})


# ---- rows -> domain ------------------------------------------------------------------

def _network(row: Any, subnets: Sequence[str]) -> Network:
    return Network(id=row.id, name=row.name, project_id=ProjectId(row.project_id),
                   shared=row.shared, admin_state_up=row.admin_state_up, mtu=row.mtu,
                   status=row.status, description=row.description, subnets=tuple(subnets),
                   created_at=row.created_at, updated_at=row.updated_at)


def _subnet(row: Any) -> Subnet:
    return Subnet(id=row.id, network_id=row.network_id, project_id=ProjectId(row.project_id),
                  name=row.name, ip_version=row.ip_version, cidr=row.cidr,
                  gateway_ip=row.gateway_ip,
                  allocation_pools=tuple(IpPool(start=p["start"], end=p["end"])
                                         for p in row.allocation_pools),
                  dns_nameservers=tuple(row.dns_nameservers),
                  host_routes=tuple(HostRoute(destination=r["destination"],
                                              nexthop=r["nexthop"]) for r in row.host_routes),
                  enable_dhcp=row.enable_dhcp, description=row.description,
                  created_at=row.created_at, updated_at=row.updated_at)


def _routes_json(routes: Sequence[HostRoute]) -> list[dict[str, str]]:
    return [{"destination": r.destination, "nexthop": r.nexthop} for r in routes]


def _subnet_values(subnet: Subnet) -> dict[str, Any]:
    return {"id": subnet.id, "network_id": subnet.network_id, "project_id": subnet.project_id,
            "name": subnet.name, "ip_version": subnet.ip_version, "cidr": subnet.cidr,
            "gateway_ip": subnet.gateway_ip,
            "allocation_pools": [{"start": p.start, "end": p.end}
                                 for p in subnet.allocation_pools],
            "dns_nameservers": list(subnet.dns_nameservers),
            "host_routes": _routes_json(subnet.host_routes),
            "enable_dhcp": subnet.enable_dhcp, "description": subnet.description}


def _port(row: Any, ips: Sequence[FixedIp], groups: Sequence[str]) -> Port:
    return Port(id=row.id, network_id=row.network_id, project_id=ProjectId(row.project_id),
                mac_address=row.mac_address, name=row.name,
                admin_state_up=row.admin_state_up, status=PortStatus(row.status),
                device_id=row.device_id, device_owner=row.device_owner,
                fixed_ips=tuple(ips), security_groups=tuple(groups),
                binding_host_id=row.binding_host_id, binding_vif_type=row.binding_vif_type,
                binding_vif_details=dict(row.binding_vif_details or {}),
                description=row.description, created_at=row.created_at,
                updated_at=row.updated_at)


def _vif_type(host: str) -> str:
    return "bridge" if host else "unbound"


# ---- shared queries ------------------------------------------------------------------

def _visible_networks(viewer: ProjectId | None) -> sa.ColumnElement[bool]:
    if viewer is None:
        return sa.true()
    return sa.or_(_N.project_id == viewer, _N.shared == sa.true())


async def _subnet_ids(conn: AsyncConnection, network_ids: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    if network_ids:
        rows = await conn.execute(sa.select(_S.network_id, _S.id)
                                  .where(_S.network_id.in_(network_ids))
                                  .order_by(_S.created_at, _S.id))
        for row in rows:
            found[row.network_id].append(row.id)
    return found


async def _network_row(conn: AsyncConnection, network_id: str,
                       viewer: ProjectId | None) -> Any:
    row = (await conn.execute(sa.select(t.networks).where(
        _N.id == network_id, _visible_networks(viewer)))).first()
    if row is None:
        raise NetworkNotFound(network_id)
    return row


async def _owned_network(conn: AsyncConnection, network_id: str,
                         owner: ProjectId | None) -> Any:
    """The network row, which ``owner`` must own: ``NotFound`` if it cannot see it,
    ``Forbidden`` if it sees it (shared) without owning it."""
    row = await _network_row(conn, network_id, owner)
    if owner is not None and row.project_id != owner:
        raise Forbidden(f"The network {network_id} belongs to another project.")
    return row


async def _check_quota(conn: AsyncConnection, project_id: ProjectId, resource: str,
                       table: sa.Table) -> None:
    await lock_project(conn, project_id)
    limit = (await conn.execute(sa.select(t.quotas.c.hard_limit).where(
        t.quotas.c.project_id == project_id, t.quotas.c.resource == resource))).scalar()
    if limit is None:
        limit = QUOTA_DEFAULTS[resource]
    if limit < 0:
        return
    used = (await conn.execute(sa.select(sa.func.count()).select_from(table)
                               .where(table.c.project_id == project_id))).scalar_one()
    if int(used) + 1 > limit:
        raise OverQuota(f"Quota exceeded for resources: ['{resource}'].")


async def _port_details(conn: AsyncConnection, port_ids: Sequence[str],
                        ) -> tuple[dict[str, list[FixedIp]], dict[str, list[str]]]:
    ips: dict[str, list[FixedIp]] = defaultdict(list)
    groups: dict[str, list[str]] = defaultdict(list)
    if port_ids:
        for row in await conn.execute(sa.select(_A.port_id, _A.subnet_id, _A.ip_address)
                                      .where(_A.port_id.in_(port_ids)).order_by(_A.id)):
            ips[row.port_id].append(FixedIp(subnet_id=row.subnet_id, ip_address=row.ip_address))
        for group in await conn.execute(sa.select(_PSG.port_id, _PSG.security_group_id)
                                        .where(_PSG.port_id.in_(port_ids))
                                        .order_by(_PSG.security_group_id)):
            groups[group.port_id].append(group.security_group_id)
    return ips, groups


async def _load_port(conn: AsyncConnection, port_id: str, viewer: ProjectId | None) -> Port:
    query = sa.select(t.ports).where(_P.id == port_id)
    if viewer is not None:
        query = query.where(_P.project_id == viewer)
    row = (await conn.execute(query)).first()
    if row is None:
        raise PortNotFound(port_id)
    ips, groups = await _port_details(conn, [row.id])
    return _port(row, ips[row.id], groups[row.id])


async def _check_security_groups(conn: AsyncConnection, project_id: ProjectId,
                                 group_ids: Sequence[str]) -> None:
    if not group_ids:
        return
    known = set((await conn.execute(sa.select(_SG.id).where(
        _SG.id.in_(list(group_ids)), _SG.project_id == project_id))).scalars())
    for group_id in group_ids:
        if group_id not in known:
            raise SecurityGroupNotFound(group_id)


async def _set_security_groups(conn: AsyncConnection, port_id: str,
                               group_ids: Sequence[str]) -> None:
    await conn.execute(sa.delete(t.port_security_groups).where(_PSG.port_id == port_id))
    if group_ids:
        await conn.execute(t.port_security_groups.insert(), [
            {"port_id": port_id, "security_group_id": g} for g in dict.fromkeys(group_ids)])


# ---- IPAM ----------------------------------------------------------------------------

def _pool_bounds(subnet: Any) -> list[tuple[int, int]]:
    return [(int(ipaddress.ip_address(p["start"])), int(ipaddress.ip_address(p["end"])))
            for p in subnet.allocation_pools]


def _candidates(subnet: Any, taken: set[int]) -> Iterator[int]:
    """Free addresses of the subnet's pools: lowest first in walkable pools, random ones
    in huge pools."""
    for low, high in _pool_bounds(subnet):
        if high - low + 1 <= _WALK_LIMIT:
            for value in range(low, high + 1):
                if value not in taken:
                    yield value
        else:
            for _ in range(_RANDOM_TRIES):
                value = low + secrets.randbelow(high - low + 1)
                if value not in taken:
                    yield value


async def _taken(conn: AsyncConnection, subnet_id: str) -> set[int]:
    rows = await conn.execute(sa.select(_A.ip_address).where(_A.subnet_id == subnet_id))
    return {int(ipaddress.ip_address(ip)) for ip in rows.scalars()}


async def _insert_ip(conn: AsyncConnection, port_id: str, subnet_id: str, ip: str) -> bool:
    """Insert one allocation in a savepoint; ``False`` if the address is already taken
    (the outer transaction survives, on PostgreSQL too)."""
    try:
        async with conn.begin_nested():
            await conn.execute(t.ip_allocations.insert().values(
                port_id=port_id, subnet_id=subnet_id, ip_address=ip))
    except sa_exc.IntegrityError:
        return False
    return True


async def _allocate_any(conn: AsyncConnection, port_id: str, subnet: Any) -> str | None:
    """The lowest free pool address of ``subnet``, allocated to the port; ``None`` when
    the pools are full."""
    version = subnet.ip_version
    for _ in range(MAX_ALLOCATION_RETRIES):
        taken = await _taken(conn, subnet.id)
        candidate = next(_candidates(subnet, taken), None)
        if candidate is None:
            return None
        ip = str(ipaddress.IPv4Address(candidate) if version == 4
                 else ipaddress.IPv6Address(candidate))
        if await _insert_ip(conn, port_id, subnet.id, ip):
            return ip
    raise IpAddressGenerationFailure(subnet.network_id)


def _check_address(subnet: Any, ip: str) -> str:
    """``ip`` in canonical form; ``Invalid`` unless it is a host address of the subnet
    other than its gateway."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise Invalid(f"Invalid input for operation: '{ip}' is not a valid IP address.") \
            from None
    net = ipaddress.ip_network(subnet.cidr)
    if address not in net:
        raise Invalid(f"Invalid input for operation: IP address {ip} is not a valid IP "
                      f"for the specified subnet.")
    reserved = {net.network_address} | ({net.broadcast_address} if net.version == 4 else set())
    if net.num_addresses > 2 and address in reserved:
        raise Invalid(f"Invalid input for operation: IP address {ip} is not a valid IP "
                      f"for the specified subnet.")
    if subnet.gateway_ip and address == ipaddress.ip_address(subnet.gateway_ip):
        raise Invalid(f"Invalid input for operation: IP address {ip} is the gateway of "
                      f"subnet {subnet.id}.")
    return str(address)


async def _allocate(conn: AsyncConnection, port_id: str, network_id: str,
                    requests: Sequence[FixedIp] | None) -> None:
    """Allocate the port's fixed IPs: the requested ones (a ``FixedIp`` with an empty
    field leaves it open), or by default one address of the first subnet with a free
    one, per IP version."""
    subnets = (await conn.execute(sa.select(t.subnets).where(_S.network_id == network_id)
                                  .order_by(_S.created_at, _S.id))).all()
    if requests is None:
        for version in (4, 6):
            of_version = [s for s in subnets if s.ip_version == version]
            if not of_version:
                continue
            for candidate in of_version:
                if await _allocate_any(conn, port_id, candidate):
                    break
            else:
                raise IpAddressGenerationFailure(network_id)
        return
    by_id = {s.id: s for s in subnets}
    subnet: Any
    for request in requests:
        subnet = by_id.get(request.subnet_id) if request.subnet_id else None
        if request.subnet_id and subnet is None:
            raise Invalid(f"Invalid input for operation: Failed to create port on network "
                          f"{network_id}, because fixed_ips included invalid subnet "
                          f"{request.subnet_id}.")
        if not request.ip_address:
            assert subnet is not None
            if await _allocate_any(conn, port_id, subnet) is None:
                raise IpAddressGenerationFailure(network_id)
            continue
        if subnet is None:
            subnet = _subnet_of(subnets, request.ip_address, network_id)
        ip = _check_address(subnet, request.ip_address)
        if not await _insert_ip(conn, port_id, subnet.id, ip):
            raise IpAddressAlreadyAllocated(ip, subnet.id)


def _subnet_of(subnets: Sequence[Any], ip: str, network_id: str) -> Any:
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        raise Invalid(f"Invalid input for operation: '{ip}' is not a valid IP address.") \
            from None
    for subnet in subnets:
        if address in ipaddress.ip_network(subnet.cidr):
            return subnet
    raise Invalid(f"Invalid input for operation: IP address {ip} is not in any subnet of "
                  f"network {network_id}.")


async def _insert_port(conn: AsyncConnection, values: dict[str, Any], mac: str | None) -> None:
    """Insert the port row with ``mac``, or a random ``fa:16:3e`` MAC (drawn again while
    one is already on the network); ``MacAddressInUse`` for a given MAC that is."""
    for _ in range(8):
        try:
            async with conn.begin_nested():
                await conn.execute(t.ports.insert().values(
                    {**values, "mac_address": mac or random_mac()}))
            return
        except sa_exc.IntegrityError:
            if mac:
                raise MacAddressInUse(values["network_id"], mac) from None
    raise MacAddressInUse(values["network_id"])  # pragma: no cover - eight in a row


# ---- instances' ports ----------------------------------------------------------------

def _unbound() -> dict[str, Any]:
    return {"device_id": "", "device_owner": "", "binding_host_id": "",
            "binding_vif_type": _vif_type(""), "binding_vif_details": {},
            "status": PortStatus.DOWN.value}


async def release_instance_ports(conn: AsyncConnection, instance_id: str,
                                 now: Any) -> list[str]:
    """In the caller's transaction: delete the instance's ``auto_delete`` ports and
    unbind its other ports; the ids of the networks that changed."""
    rows = (await conn.execute(sa.select(_P.id, _P.network_id, _P.auto_delete)
                               .where(_P.device_id == instance_id))).all()
    doomed = [row.id for row in rows if row.auto_delete]
    kept = [row.id for row in rows if not row.auto_delete]
    if doomed:
        await conn.execute(sa.delete(t.ip_allocations).where(_A.port_id.in_(doomed)))
        await conn.execute(sa.delete(t.port_security_groups).where(_PSG.port_id.in_(doomed)))
        await conn.execute(sa.delete(t.ports).where(_P.id.in_(doomed)))
    if kept:
        await conn.execute(sa.update(t.ports).where(_P.id.in_(kept))
                           .values(**_unbound(), updated_at=now))
    return sorted({row.network_id for row in rows})


async def _vifs(conn: AsyncConnection, port_rows: Sequence[Any]) -> dict[str, Vif]:
    """VIFs of these port rows, by port id."""
    if not port_rows:
        return {}
    network_ids = sorted({row.network_id for row in port_rows})
    networks = {row.id: row for row in await conn.execute(
        sa.select(_N.id, _N.name, _N.mtu).where(_N.id.in_(network_ids)))}
    subnets = {row.id: row for row in await conn.execute(
        sa.select(t.subnets).where(_S.network_id.in_(network_ids)))}
    ips, _groups = await _port_details(conn, [row.id for row in port_rows])
    result = {}
    for row in port_rows:
        by_subnet: dict[str, list[str]] = defaultdict(list)
        for fixed in ips[row.id]:
            by_subnet[fixed.subnet_id].append(fixed.ip_address)
        vif_subnets = []
        for subnet_id, addresses in by_subnet.items():
            sub = subnets[subnet_id]
            vif_subnets.append(VifSubnet(
                id=sub.id, cidr=sub.cidr, ip_version=sub.ip_version,
                gateway_ip=sub.gateway_ip, ips=tuple(addresses),
                dns_nameservers=tuple(sub.dns_nameservers or ()),
                host_routes=tuple(HostRoute(**r) for r in sub.host_routes or ()),
                enable_dhcp=sub.enable_dhcp))
        network = networks.get(row.network_id)
        result[row.id] = Vif(port_id=row.id, network_id=row.network_id,
                             network_name=network.name if network else "",
                             mac_address=row.mac_address,
                             mtu=network.mtu if network else DEFAULT_MTU,
                             subnets=tuple(vif_subnets), auto_delete=row.auto_delete)
    return result


# ---- the repository ------------------------------------------------------------------

class SqlNetworkRepo:
    """Networks, subnets, ports and ``ip_allocations`` (see
    :class:`strato.db.ports.networks.NetworkRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    # networks

    async def create_network(self, network: Network) -> Network:
        now = self._store.now()
        async with self._store.write(conflict=f"a network with id {network.id} exists") as conn:
            await _check_quota(conn, network.project_id, "network", t.networks)
            await conn.execute(t.networks.insert().values(
                id=network.id, name=network.name, project_id=network.project_id,
                shared=network.shared, admin_state_up=network.admin_state_up,
                mtu=network.mtu, status=network.status, description=network.description,
                created_at=now, updated_at=now))
        return replace(network, subnets=(), created_at=now, updated_at=now)

    async def get_network(self, network_id: str, *, viewer: ProjectId | None) -> Network:
        async with self._store.read() as conn:
            row = await _network_row(conn, network_id, viewer)
            subnets = await _subnet_ids(conn, [row.id])
        return _network(row, subnets[row.id])

    async def list_networks(self, *, viewer: ProjectId | None) -> list[Network]:
        async with self._store.read() as conn:
            rows = (await conn.execute(sa.select(t.networks).where(_visible_networks(viewer))
                                       .order_by(_N.id))).all()
            subnets = await _subnet_ids(conn, [row.id for row in rows])
        return [_network(row, subnets[row.id]) for row in rows]

    async def update_network(self, network_id: str, changes: Mapping[str, object], *,
                             owner: ProjectId | None) -> Network:
        unknown = set(changes) - _NETWORK_FIELDS
        if unknown:
            raise Invalid(f"Cannot update network fields {sorted(unknown)}")
        async with self._store.write() as conn:
            await _owned_network(conn, network_id, owner)
            await conn.execute(sa.update(t.networks).where(_N.id == network_id)
                               .values(**changes, updated_at=self._store.now()))
            row = await _network_row(conn, network_id, None)
            subnets = await _subnet_ids(conn, [row.id])
        return _network(row, subnets[row.id])

    async def delete_network(self, network_id: str, *, owner: ProjectId | None) -> None:
        async with self._store.write() as conn:
            await _owned_network(conn, network_id, owner)
            owners = (await conn.execute(sa.select(_P.id, _P.device_owner)
                                         .where(_P.network_id == network_id))).all()
            if any(row.device_owner != DHCP_OWNER for row in owners):
                raise NetworkInUse(network_id)
            # Explicit, not left to ON DELETE CASCADE (SQLite enforces foreign keys only
            # when a connection asks for it).
            port_ids = [row.id for row in owners]
            if port_ids:
                await conn.execute(sa.delete(t.ip_allocations).where(_A.port_id.in_(port_ids)))
                await conn.execute(sa.delete(t.port_security_groups)
                                   .where(_PSG.port_id.in_(port_ids)))
                await conn.execute(sa.delete(t.ports).where(_P.id.in_(port_ids)))
            await conn.execute(sa.delete(t.subnets).where(_S.network_id == network_id))
            await conn.execute(sa.delete(t.networks).where(_N.id == network_id))

    # subnets

    async def create_subnet(self, subnet: Subnet, *, owner: ProjectId | None) -> Subnet:
        """Add ``subnet`` to its network, which ``owner`` (``None``: an admin) must own;
        ``Invalid`` if its CIDR overlaps another subnet of the network."""
        now = self._store.now()
        async with self._store.write(conflict=f"a subnet with id {subnet.id} exists") as conn:
            network = await _owned_network(conn, subnet.network_id, owner)
            subnet = replace(subnet, project_id=ProjectId(network.project_id))
            cidr = ipaddress.ip_network(subnet.cidr)
            for other in (await conn.execute(sa.select(_S.id, _S.cidr).where(
                    _S.network_id == subnet.network_id))).all():
                if cidr.overlaps(ipaddress.ip_network(other.cidr)):
                    raise Invalid(f"Invalid input for operation: Requested subnet with cidr: "
                                  f"{subnet.cidr} for network: {subnet.network_id} overlaps "
                                  f"with another subnet.")
            await _check_quota(conn, subnet.project_id, "subnet", t.subnets)
            await conn.execute(t.subnets.insert().values(
                **_subnet_values(subnet), created_at=now, updated_at=now))
        return replace(subnet, created_at=now, updated_at=now)

    async def get_subnet(self, subnet_id: str, *, viewer: ProjectId | None) -> Subnet:
        async with self._store.read() as conn:
            row = (await conn.execute(
                sa.select(t.subnets).join(t.networks, _N.id == _S.network_id)
                .where(_S.id == subnet_id, _visible_networks(viewer)))).first()
        if row is None:
            raise SubnetNotFound(subnet_id)
        return _subnet(row)

    async def list_subnets(self, *, viewer: ProjectId | None) -> list[Subnet]:
        async with self._store.read() as conn:
            rows = (await conn.execute(
                sa.select(t.subnets).join(t.networks, _N.id == _S.network_id)
                .where(_visible_networks(viewer)).order_by(_S.id))).all()
        return [_subnet(row) for row in rows]

    async def update_subnet(self, subnet_id: str, changes: Mapping[str, object], *,
                            owner: ProjectId | None) -> Subnet:
        unknown = set(changes) - _SUBNET_FIELDS
        if unknown:
            raise Invalid(f"Cannot update subnet fields {sorted(unknown)}")
        values = dict(changes)
        if "dns_nameservers" in values:
            values["dns_nameservers"] = list(values["dns_nameservers"])  # type: ignore[call-overload]
        if "host_routes" in values:
            values["host_routes"] = _routes_json(values["host_routes"])  # type: ignore[arg-type]
        async with self._store.write() as conn:
            row = await self._owned_subnet(conn, subnet_id, owner)
            await conn.execute(sa.update(t.subnets).where(_S.id == row.id)
                               .values(**values, updated_at=self._store.now()))
            row = (await conn.execute(sa.select(t.subnets).where(_S.id == row.id))).one()
        return _subnet(row)

    async def delete_subnet(self, subnet_id: str, *, owner: ProjectId | None) -> None:
        async with self._store.write() as conn:
            row = await self._owned_subnet(conn, subnet_id, owner)
            users = (await conn.execute(
                sa.select(_A.id, _P.device_owner).join(t.ports, _P.id == _A.port_id)
                .where(_A.subnet_id == row.id))).all()
            if any(user.device_owner != DHCP_OWNER for user in users):
                raise SubnetInUse(subnet_id)
            await conn.execute(sa.delete(t.ip_allocations).where(_A.subnet_id == row.id))
            await conn.execute(sa.delete(t.subnets).where(_S.id == row.id))

    @staticmethod
    async def _owned_subnet(conn: AsyncConnection, subnet_id: str,
                            owner: ProjectId | None) -> Any:
        row = (await conn.execute(
            sa.select(t.subnets).join(t.networks, _N.id == _S.network_id)
            .where(_S.id == subnet_id, _visible_networks(owner)))).first()
        if row is None:
            raise SubnetNotFound(subnet_id)
        if owner is not None and row.project_id != owner:
            raise Forbidden(f"The subnet {subnet_id} belongs to another project.")
        return row

    # ports

    async def create_port(self, port: Port, *, fixed_ips: Sequence[FixedIp] | None,
                          viewer: ProjectId | None) -> Port:
        """Create ``port`` on its network (which ``viewer`` must see; ``None``: an admin)
        with its fixed IPs (see :meth:`strato.db.ports.networks.NetworkRepo.create_port`)."""
        now = self._store.now()
        mac_given = bool(port.mac_address)
        async with self._store.write(conflict=f"a port with id {port.id} exists") as conn:
            await _network_row(conn, port.network_id, viewer)
            await _check_quota(conn, port.project_id, "port", t.ports)
            await _check_security_groups(conn, port.project_id, port.security_groups)
            values = {"id": port.id, "network_id": port.network_id,
                      "project_id": port.project_id, "name": port.name,
                      "admin_state_up": port.admin_state_up, "status": PortStatus.DOWN.value,
                      "device_id": port.device_id, "device_owner": port.device_owner,
                      "binding_host_id": port.binding_host_id,
                      "binding_vif_type": _vif_type(port.binding_host_id),
                      "binding_vif_details": {}, "description": port.description,
                      "created_at": now, "updated_at": now}
            await _insert_port(conn, values, port.mac_address if mac_given else None)
            await _set_security_groups(conn, port.id, port.security_groups)
            await _allocate(conn, port.id, port.network_id, fixed_ips)
            return await _load_port(conn, port.id, None)

    async def get_port(self, port_id: str, *, viewer: ProjectId | None) -> Port:
        async with self._store.read() as conn:
            return await _load_port(conn, port_id, viewer)

    async def list_ports(self, *, viewer: ProjectId | None) -> list[Port]:
        query = sa.select(t.ports).order_by(_P.id)
        if viewer is not None:
            query = query.where(_P.project_id == viewer)
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
            ips, groups = await _port_details(conn, [row.id for row in rows])
        return [_port(row, ips[row.id], groups[row.id]) for row in rows]

    async def update_port(self, port_id: str, changes: Mapping[str, object], *,
                          fixed_ips: Sequence[FixedIp] | None = None,
                          security_groups: Sequence[str] | None = None,
                          owner: ProjectId | None) -> Port:
        unknown = set(changes) - _PORT_FIELDS
        if unknown:
            raise Invalid(f"Cannot update port fields {sorted(unknown)}")
        values: dict[str, object] = dict(changes)
        if "binding_host_id" in values:
            values["binding_vif_type"] = _vif_type(str(values["binding_host_id"]))
        async with self._store.write() as conn:
            port = await _load_port(conn, port_id, owner)
            await conn.execute(sa.update(t.ports).where(_P.id == port_id)
                               .values(**values, updated_at=self._store.now()))
            if security_groups is not None:
                await _check_security_groups(conn, port.project_id, security_groups)
                await _set_security_groups(conn, port_id, security_groups)
            if fixed_ips is not None:
                await conn.execute(sa.delete(t.ip_allocations).where(_A.port_id == port_id))
                await _allocate(conn, port_id, port.network_id, fixed_ips)
            return await _load_port(conn, port_id, None)

    async def delete_port(self, port_id: str, *, owner: ProjectId | None) -> None:
        async with self._store.write() as conn:
            await _load_port(conn, port_id, owner)
            await conn.execute(sa.delete(t.ip_allocations).where(_A.port_id == port_id))
            await conn.execute(sa.delete(t.port_security_groups).where(_PSG.port_id == port_id))
            await conn.execute(sa.delete(t.ports).where(_P.id == port_id))

    # instances' ports

    async def allocate_for_instance(self, instance_id: str, project_id: ProjectId, host: str,
                                    requested: Sequence[RequestedNetwork],
                                    security_groups: Sequence[str], *,
                                    device_owner: str) -> list[Vif]:
        now = self._store.now()
        binding = {"device_id": instance_id, "device_owner": device_owner,
                   "binding_host_id": host, "binding_vif_type": _vif_type(host),
                   "binding_vif_details": {}, "updated_at": now}
        async with self._store.write() as conn:
            await release_instance_ports(conn, instance_id, now)
            port_ids: list[str] = []
            for index, entry in enumerate(requested):
                if entry.port_id:
                    port = await _load_port(conn, entry.port_id, project_id)
                    if port.device_id and port.device_id != instance_id:
                        raise PortInUse(port.id, port.device_id)
                    await conn.execute(sa.update(t.ports).where(_P.id == port.id)
                                       .values(**binding))
                    port_ids.append(port.id)
                    continue
                assert entry.network_id is not None
                await _network_row(conn, entry.network_id, project_id)
                await _check_quota(conn, project_id, "port", t.ports)
                port_id = new_uuid()
                values = {"id": port_id, "network_id": entry.network_id,
                          "project_id": project_id, "name": "", "admin_state_up": True,
                          "status": PortStatus.DOWN.value, "description": "",
                          "auto_delete": True, **binding,
                          # distinct, so the ports list in NIC order
                          "created_at": now + timedelta(microseconds=index)}
                await _insert_port(conn, values, None)
                await _set_security_groups(conn, port_id, security_groups)
                fixed = ([FixedIp(subnet_id="", ip_address=entry.fixed_ip)]
                         if entry.fixed_ip else None)
                await _allocate(conn, port_id, entry.network_id, fixed)
                port_ids.append(port_id)
            rows = {row.id: row for row in await conn.execute(
                sa.select(t.ports).where(_P.id.in_(port_ids)))} if port_ids else {}
            vifs = await _vifs(conn, list(rows.values()))
        return [vifs[port_id] for port_id in port_ids]

    async def release_instance(self, instance_id: str) -> list[str]:
        async with self._store.write() as conn:
            return await release_instance_ports(conn, instance_id, self._store.now())

    async def vifs_for_instances(self, instance_ids: Sequence[str]) -> dict[str, list[Vif]]:
        result: dict[str, list[Vif]] = {iid: [] for iid in instance_ids}
        if not instance_ids:
            return result
        async with self._store.read() as conn:
            rows = (await conn.execute(
                sa.select(t.ports).where(_P.device_id.in_(list(instance_ids)))
                .order_by(_P.created_at, _P.id))).all()
            vifs = await _vifs(conn, rows)
        for row in rows:
            result[row.device_id].append(vifs[row.id])
        return result

    async def ports_on_host(self, host: str) -> list[Port]:
        async with self._store.read() as conn:
            rows = (await conn.execute(
                sa.select(t.ports).where(_P.binding_host_id == host,
                                         _P.device_owner != DHCP_OWNER)
                .order_by(_P.id))).all()
            ips, groups = await _port_details(conn, [row.id for row in rows])
        return [_port(row, ips[row.id], groups[row.id]) for row in rows]

    async def set_ports_status(self, port_ids: Sequence[str], status: PortStatus) -> None:
        if not port_ids:
            return
        async with self._store.write() as conn:
            await conn.execute(sa.update(t.ports).where(_P.id.in_(list(port_ids)))
                               .values(status=status.value, updated_at=self._store.now()))

