"""The DHCP agent against the Network API's database, the real kernel and dnsmasq: it
makes its DHCP port and server for a network with a DHCP subnet, a guest-like namespace
with a port's MAC gets that port's address, a port added later gets its lease after the
next pass without a restart, and a deleted network leaves no server, namespace or port."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strato.db.migrate import upgrade
from strato.db.sql import SqlDatabase
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import Network, Port, Subnet, default_pools
from strato.network.agent import DHCP_OWNER, DhcpAgent
from strato.network.dhcp import namespace_name
from strato.network.linuxbridge import LinuxBridge
from tests.netns import Client, ip_command, state_dir  # noqa: F401 (a fixture)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

PROJECT = ProjectId("p-net")
CIDR = "10.81.0.0/24"


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqlDatabase]:
    url = f"sqlite+aiosqlite:///{tmp_path}/agent.db"
    await upgrade(url)
    database = await SqlDatabase.open(url)
    try:
        yield database
    finally:
        await database.close()


async def port(db: SqlDatabase, network_id: str) -> Port:
    return await db.networks.create_port(
        Port(id=new_uuid(), network_id=network_id, project_id=PROJECT, mac_address=""),
        fixed_ips=None, viewer=None)


async def test_the_agent_serves_each_port_its_address(db: SqlDatabase,
                                                      state_dir: Path) -> None:
    net = await db.networks.create_network(Network(id=new_uuid(), name="n",
                                                   project_id=PROJECT))
    await db.networks.create_subnet(Subnet(
        id=new_uuid(), network_id=net.id, project_id=PROJECT, name="s", ip_version=4,
        cidr=CIDR, gateway_ip="10.81.0.1", allocation_pools=default_pools(CIDR, "10.81.0.1")),
        owner=PROJECT)
    first = await port(db, net.id)
    agent = DhcpAgent(db.networks, host=f"agent-{uuid.uuid4().hex[:6]}", state_dir=state_dir)
    clients: list[Client] = []
    try:
        await agent.sync()
        ports = await db.networks.list_ports(viewer=None)
        [dhcp] = [p for p in ports if p.device_owner == DHCP_OWNER]
        server_ip = dhcp.fixed_ips[0].ip_address
        # IPAM gave it the next free address (the first port holds .2).
        assert (first.fixed_ips[0].ip_address, server_ip) == ("10.81.0.2", "10.81.0.3")
        server = agent.servers[net.id]
        pid = server.pid()
        assert pid is not None

        guest = Client(net.id, first.mac_address)
        clients.append(guest)
        guest.create()
        assert f"lease of {first.fixed_ips[0].ip_address} obtained from {server_ip}" in \
            await guest.lease()

        second = await port(db, net.id)
        await agent.sync()
        await agent.sync()  # a second pass changes nothing
        late = Client(net.id, second.mac_address)
        clients.append(late)
        late.create()
        assert f"lease of {second.fixed_ips[0].ip_address} obtained" in await late.lease()
        assert server.pid() == pid
        assert len([p for p in await db.networks.list_ports(viewer=None)
                    if p.device_owner == DHCP_OWNER]) == 1

        for made in (first, second):
            await db.networks.delete_port(made.id, owner=None)
        await db.networks.delete_network(net.id, owner=None)
        await agent.sync()
        assert net.id not in agent.servers
        assert namespace_name(net.id) not in ip_command("netns", "list").stdout
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
        assert await db.networks.list_ports(viewer=None) == []
    finally:
        for client in clients:
            client.remove()
        await agent.stop()
        await LinuxBridge().delete_bridge(net.id)
