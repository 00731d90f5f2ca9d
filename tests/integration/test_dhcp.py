"""The DHCP server for a network against the real kernel and dnsmasq: a client in a
namespace of the test's own gets exactly the address IPAM allocated to its MAC, an
unknown MAC gets nothing, a port added while dnsmasq runs gets its lease without a
restart, and stopping leaves no namespace, veth or process behind. All traffic stays
between namespaces this test created, across a bridge that has no address."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from strato.network.dhcp import DhcpHost, DhcpServer, DhcpSubnet
from strato.network.linuxbridge import LinuxBridge
from tests.netns import Client, state_dir  # noqa: F401 (a fixture)
from tests.netns import ip_command as _ip

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

SUBNET = DhcpSubnet(id="s1", cidr="10.77.0.0/24", gateway_ip="10.77.0.1",
                    dns_nameservers=("10.77.0.1",))


@pytest.fixture
async def network(state_dir: Path) -> AsyncIterator[tuple[str, DhcpServer, list[Client]]]:
    network_id = str(uuid.uuid4())
    server = DhcpServer(network_id, state_dir)
    clients: list[Client] = []
    try:
        await LinuxBridge().ensure_bridge(network_id, 1500)
        yield network_id, server, clients
    finally:
        for client in clients:
            client.remove()
        await server.stop()
        await LinuxBridge().delete_bridge(network_id)


async def test_leases_are_exactly_the_allocated_addresses(
        network: tuple[str, DhcpServer, list[Client]]) -> None:
    network_id, server, clients = network
    first = Client(network_id, "fa:16:3e:00:77:50")
    stranger = Client(network_id, "fa:16:3e:00:77:99")
    clients += [first, stranger]
    await server.start([SUBNET], "10.77.0.2", 1500,
                       [DhcpHost(mac=first.mac, ip="10.77.0.50", hostname="Web Server")])
    pid = server.pid()
    assert pid is not None
    assert _ip("netns", "exec", server.namespace, "ip", "-br", "addr").returncode == 0
    for client in clients:
        client.create()

    assert "lease of 10.77.0.50 obtained from 10.77.0.2" in await first.lease()
    # A MAC with no port gets nothing: the ranges are static.
    assert "obtained" not in await stranger.lease()
    # The hostname reached the hosts file cleaned.
    assert "web-server" in (server.state_dir / network_id / "host").read_text()

    # A port added while dnsmasq runs: its lease comes without a restart.
    late = Client(network_id, "fa:16:3e:00:77:51")
    clients.append(late)
    late.create()
    await server.update([SUBNET], 1500, [
        DhcpHost(mac=first.mac, ip="10.77.0.50", hostname="web"),
        DhcpHost(mac=late.mac, ip="10.77.0.51", hostname="late")])
    assert "lease of 10.77.0.51 obtained" in await late.lease()
    assert server.pid() == pid

    # Starting again is harmless: same process, files re-read.
    await server.start([SUBNET], "10.77.0.2", 1500, [])
    assert server.pid() == pid


async def test_stop_leaves_nothing_behind(state_dir: Path) -> None:
    network_id = str(uuid.uuid4())
    server = DhcpServer(network_id, state_dir)
    try:
        await server.start([SUBNET], "10.77.0.2", 1450, [])
        pid = server.pid()
        assert pid is not None
    finally:
        await server.stop()
        await LinuxBridge().delete_bridge(network_id)
    assert server.namespace not in _ip("netns", "list").stdout
    assert _ip("link", "show", "dev", "dhp" + network_id[:11]).returncode != 0
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert not (state_dir / network_id).exists()
    await server.stop()  # stopping a stopped server is fine


def test_an_unreachable_state_directory_is_refused(tmp_path: Path) -> None:
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    server = DhcpServer(str(uuid.uuid4()), private / "dhcp")
    with pytest.raises(PermissionError, match="not traversable"):
        asyncio.run(server.start([SUBNET], "10.77.0.2", 1500, []))
