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
every ``interval`` seconds anyway, so a lost notice costs at most one interval. One
network that fails (a bad value, a command that fails) is logged and retried at the next
pass; the other networks are still served. A port whose MAC or address is not valid is
left out of its network's hosts file (see :mod:`strato.network.dhcp`).
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
    from strato.db.ports import NetworkRepo

__all__ = ["DHCP_OWNER", "DhcpAgent"]

logger = logging.getLogger(__name__)


@dataclass
class DhcpAgent:
    networks: NetworkRepo
    host: str
    state_dir: Path
    servers: dict[str, DhcpServer] = field(default_factory=dict)
    # The agent's own record of its DHCP port per network (found or made by it).
    ports: dict[str, str] = field(default_factory=dict)
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
                try:
                    await self._serve(network, dhcp_subnets, mine)
                except Exception:  # one network's failure must not stop the others
                    logger.exception("DHCP for network %s failed; the next pass retries",
                                     network.id)
            for network_id in sorted(set(self.servers) - wanted):
                try:
                    await self._retire(network_id, ports)
                except Exception:
                    logger.exception("stopping DHCP for network %s failed; the next pass "
                                     "retries", network_id)

    async def stop(self) -> None:
        """Stop every server this agent runs (its DHCP ports stay, for a restart)."""
        async with self._lock:
            for network_id, server in self.servers.items():
                try:
                    await server.stop()
                except Exception:  # the others are still stopped
                    logger.exception("stopping DHCP for network %s failed", network_id)
            self.servers.clear()

    def _is_own(self, port: Port, network: Network) -> bool:
        """Whether ``port`` is this agent's DHCP port of ``network``: the device id it
        gives its ports, bound here, owned by the network's project (a member of another
        project cannot make such a port, whatever fields it sets)."""
        return (port.device_id == self._device_id(network.id)
                and port.device_owner == DHCP_OWNER and port.binding_host_id == self.host
                and port.project_id == network.project_id)

    async def _serve(self, network: Network, subnets: list[Subnet],
                     ports: list[Port]) -> None:
        own = next((p for p in ports if p.id == self.ports.get(network.id)), None) \
            or next((p for p in ports if self._is_own(p, network)), None)
        if own is None:
            own = await self.networks.create_port(
                Port(id=new_uuid(), network_id=network.id,
                     project_id=ProjectId(network.project_id), mac_address="",
                     name=f"dhcp port on {self.host}", device_id=self._device_id(network.id),
                     device_owner=DHCP_OWNER, binding_host_id=self.host),
                fixed_ips=None, viewer=None)
            logger.info("DHCP port %s made for network %s", own.id, network.id)
        self.ports[network.id] = own.id
        address = next((f.ip_address for f in own.fixed_ips if _is_v4(f.ip_address)), None)
        if address is None:
            logger.warning("DHCP port of network %s has no IPv4 address", network.id)
            return
        server_subnet = next(s for s in subnets
                             if ipaddress.ip_address(address) in ipaddress.ip_network(s.cidr))
        ordered = [server_subnet, *(s for s in subnets if s.id != server_subnet.id)]
        hosts = [DhcpHost(mac=p.mac_address, ip=f.ip_address,
                          hostname=f"host-{f.ip_address}".replace(".", "-"))
                 for p in ports if p.id != own.id and not self._is_dhcp_port(p, network)
                 for f in p.fixed_ips if _is_v4(f.ip_address)]
        server = self.servers.get(network.id)
        if server is None:
            server = self.servers[network.id] = DhcpServer(network.id, self.state_dir)
        await server.start([_dhcp_subnet(s) for s in ordered], address, network.mtu, hosts)

    @staticmethod
    def _is_dhcp_port(port: Port, network: Network) -> bool:
        """Another agent's DHCP port (it asks no lease): only the network's own project
        can make one, so no other tenant can take a port out of the hosts file."""
        return port.device_owner == DHCP_OWNER and port.project_id == network.project_id

    async def _retire(self, network_id: str, ports: list[Port]) -> None:
        server = self.servers[network_id]
        await server.stop()
        del self.servers[network_id]
        own = self.ports.pop(network_id, None)
        if own is not None and any(p.id == own for p in ports):
            try:
                await self.networks.delete_port(own, owner=None)
            except NotFound:
                pass  # went with its network
        logger.info("DHCP for network %s stopped", network_id)


def _is_v4(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).version == 4
    except ValueError:
        logger.error("%r is not an IP address; left out of DHCP", address)
        return False


def _dhcp_subnet(subnet: Subnet) -> DhcpSubnet:
    return DhcpSubnet(id=subnet.id, cidr=subnet.cidr, gateway_ip=subnet.gateway_ip,
                      dns_nameservers=subnet.dns_nameservers,
                      host_routes=tuple((r.destination, r.nexthop)
                                        for r in subnet.host_routes))
