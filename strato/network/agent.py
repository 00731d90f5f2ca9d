"""The DHCP agent: makes this host's dnsmasq servers match the Network API's state, as
Neutron's DHCP agent does.

One :meth:`DhcpAgent.sync` pass:

- every network with a DHCP-enabled IPv4 subnet gets a DHCP port (``device_owner``
  ``network:dhcp``, ``device_id`` ``dhcp<host>-<network id>``: one per host and network,
  made once) and a :class:`~strato.network.dhcp.DhcpServer` on that port's address,
  whose hosts file lists every other port of the network;
- a server whose network is gone, or has no DHCP subnet any more, is stopped, and its
  DHCP port deleted.

Passes are idempotent; the agent runs one after every port change it is told about and
every ``interval`` seconds anyway, so a lost notice costs at most one interval.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from strato.domain.errors import NotFound
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import DHCP_OWNER, Network, Port, Subnet
from strato.network.dhcp import DhcpHost, DhcpServer, DhcpSubnet

if TYPE_CHECKING:
    from strato.db.uow import NetworkRepo

__all__ = ["DHCP_OWNER", "DhcpAgent"]

logger = logging.getLogger(__name__)


@dataclass
class DhcpAgent:
    networks: NetworkRepo
    host: str
    state_dir: Path
    servers: dict[str, DhcpServer] = field(default_factory=dict)
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def _device_id(self, network_id: str) -> str:
        return f"dhcp{self.host}-{network_id}"

    async def sync(self) -> None:
        """One reconciliation pass (serialised: concurrent calls queue)."""
        async with self._lock:
            networks = {n.id: n for n in await self.networks.list_networks(viewer=None)}
            subnets = await self.networks.list_subnets(viewer=None)
            ports = await self.networks.list_ports(viewer=None)
            wanted: set[str] = set()
            for network in networks.values():
                dhcp_subnets = [s for s in subnets if s.network_id == network.id
                                and s.enable_dhcp and s.ip_version == 4]
                if not dhcp_subnets:
                    continue
                wanted.add(network.id)
                mine = [p for p in ports if p.network_id == network.id]
                await self._serve(network, dhcp_subnets, mine)
            for network_id in set(self.servers) - wanted:
                await self._retire(network_id, ports)

    async def stop(self) -> None:
        """Stop every server this agent runs (its DHCP ports stay, for a restart)."""
        async with self._lock:
            for server in self.servers.values():
                await server.stop()
            self.servers.clear()

    async def _serve(self, network: Network, subnets: list[Subnet],
                     ports: list[Port]) -> None:
        device_id = self._device_id(network.id)
        own = next((p for p in ports if p.device_id == device_id), None)
        if own is None:
            own = await self.networks.create_port(
                Port(id=new_uuid(), network_id=network.id,
                     project_id=ProjectId(network.project_id), mac_address="",
                     name=f"dhcp port on {self.host}", device_id=device_id,
                     device_owner=DHCP_OWNER, binding_host_id=self.host),
                fixed_ips=None, viewer=None)
            logger.info("DHCP port %s made for network %s", own.id, network.id)
        address = next((f.ip_address for f in own.fixed_ips
                        if ipaddress.ip_address(f.ip_address).version == 4), None)
        if address is None:
            logger.warning("DHCP port of network %s has no IPv4 address", network.id)
            return
        server_subnet = next(s for s in subnets
                             if ipaddress.ip_address(address) in ipaddress.ip_network(s.cidr))
        ordered = [server_subnet, *(s for s in subnets if s.id != server_subnet.id)]
        hosts = [DhcpHost(mac=p.mac_address, ip=f.ip_address,
                          hostname=f"host-{f.ip_address}".replace(".", "-"))
                 for p in ports if p.device_owner != DHCP_OWNER
                 for f in p.fixed_ips if ipaddress.ip_address(f.ip_address).version == 4]
        server = self.servers.get(network.id)
        if server is None:
            server = self.servers[network.id] = DhcpServer(network.id, self.state_dir)
        await server.start([_dhcp_subnet(s) for s in ordered], address, network.mtu, hosts)

    async def _retire(self, network_id: str, ports: list[Port]) -> None:
        server = self.servers.pop(network_id)
        await server.stop()
        for port in ports:
            if port.device_id == self._device_id(network_id):
                try:
                    await self.networks.delete_port(port.id, owner=None)
                except NotFound:
                    pass  # went with its network
        logger.info("DHCP for network %s stopped", network_id)


def _dhcp_subnet(subnet: Subnet) -> DhcpSubnet:
    return DhcpSubnet(id=subnet.id, cidr=subnet.cidr, gateway_ip=subnet.gateway_ip,
                      dns_nameservers=subnet.dns_nameservers,
                      host_routes=tuple((r.destination, r.nexthop)
                                        for r in subnet.host_routes))
