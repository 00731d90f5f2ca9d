"""The conductor's network handlers: the build's ports, and each host's view of them.

Computes never open the database, so the compute's network steps come here, as in the
seeds the compute asks Neutron: allocate the instance's ports (bound to the host),
release them, and read what a host must plug and filter. Every change is published on
the network fanout, so DHCP agents and the other hosts' firewalls follow at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from strato.domain.context import RequestContext
from strato.domain.errors import StratoError
from strato.domain.networks import HostPorts, PortSecurity, Vif
from strato.rpc.contracts.conductor import (
    AllocateNetworks,
    HostNetworkState,
    InstanceVifs,
    ReleaseNetworks,
    SetPortsStatus,
)
from strato.rpc.contracts.network import FANOUT_TOPIC, NetworksChanged

if TYPE_CHECKING:
    from strato.db.ports import Database
    from strato.rpc.bus import Bus, HandlerTable

__all__ = ["NetworkDeps", "handlers", "host_ports"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkDeps:
    db: Database
    bus: Bus


def handlers(deps: NetworkDeps) -> HandlerTable:
    async def allocate(ctx: RequestContext, msg: AllocateNetworks) -> list[Vif]:
        if not msg.networks:
            return []  # no NIC (every attempt of a build asks for the same networks)
        groups = msg.security_groups
        if not groups:
            groups = ((await deps.db.security_groups.ensure_default(msg.project_id)).id,)
        owner = f"compute:{msg.availability_zone or 'nova'}"
        vifs = await deps.db.networks.allocate_for_instance(
            msg.instance_id, msg.project_id, msg.host, msg.networks, groups,
            device_owner=owner)
        await _changed(deps, ctx, f"ports of instance {msg.instance_id} allocated")
        return vifs

    async def release(ctx: RequestContext, msg: ReleaseNetworks) -> None:
        if await deps.db.networks.release_instance(msg.instance_id):
            await _changed(deps, ctx, f"ports of instance {msg.instance_id} released")

    async def vifs(ctx: RequestContext, msg: InstanceVifs) -> list[Vif]:
        del ctx
        return (await deps.db.networks.vifs_for_instances([msg.instance_id]))[msg.instance_id]

    async def state(ctx: RequestContext, msg: HostNetworkState) -> HostPorts:
        del ctx
        return await host_ports(deps.db, msg.host)

    async def status(ctx: RequestContext, msg: SetPortsStatus) -> None:
        del ctx
        await deps.db.networks.set_ports_status(msg.port_ids, msg.status)

    return {AllocateNetworks: allocate, ReleaseNetworks: release, InstanceVifs: vifs,
            HostNetworkState: state, SetPortsStatus: status}


async def host_ports(db: Database, host: str) -> HostPorts:
    """The ports bound to ``host`` with their rules, and the remote groups' members."""
    ports = await db.networks.ports_on_host(host)
    rules = await db.security_groups.rules_for_ports([p.id for p in ports])
    networks = await db.networks.list_networks(viewer=None)
    mtu = {n.id: n.mtu for n in networks}
    remote = sorted({r.remote_group_id for rs in rules.values() for r in rs
                     if r.remote_group_id})
    members = {group: tuple(ip for _port, ip in await db.security_groups.members(group))
               for group in remote}
    return HostPorts(
        ports=tuple(PortSecurity(port_id=p.id, network_id=p.network_id,
                                 mac_address=p.mac_address, mtu=mtu.get(p.network_id, 1500),
                                 ips=tuple(f.ip_address for f in p.fixed_ips),
                                 rules=tuple(rules[p.id]))
                    for p in ports if p.network_id in mtu),
        members=members, networks=tuple(sorted(mtu)))


async def _changed(deps: NetworkDeps, ctx: RequestContext, reason: str) -> None:
    try:
        await deps.bus.publish(FANOUT_TOPIC, NetworksChanged(reason=reason), ctx=ctx)
    except StratoError as exc:  # best effort: receivers resync on their interval
        logger.warning("could not publish that %s: %s", reason, exc)
