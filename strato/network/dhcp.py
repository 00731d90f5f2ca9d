"""DHCP for one network, as Neutron's DHCP agent serves it: dnsmasq inside a namespace
``qdhcp-<network id>``, joined to the network's bridge by a veth pair, answering only
the MACs of the network's ports with their fixed IPs (static ranges: no address is ever
handed out that IPAM did not allocate).

The hosts file (``MAC,hostname,IP`` per port) and the options file (router, DNS servers,
MTU, host routes per subnet) are rewritten atomically and dnsmasq re-reads them on
SIGHUP, so a port added while it runs gets its lease without a restart and existing
leases stay. dnsmasq runs as a daemon with a pid file; it is stopped by that pid, which
only this module wrote. No shell: every command is an argument list, and every name in
them is built from UUIDs or validated addresses; hostnames are sanitised to [a-z0-9-].
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import re
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from strato.domain.hostnames import sanitize_hostname
from strato.network.linuxbridge import LinuxBridge, Runner
from strato.process import execute

__all__ = ["DhcpHost", "DhcpServer", "DhcpSubnet", "namespace_name"]

_LEASE_SECONDS = 86400
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")

logger = logging.getLogger(__name__)


def namespace_name(network_id: str) -> str:
    return f"qdhcp-{network_id}"


@dataclass(frozen=True, slots=True, kw_only=True)
class DhcpHost:
    """One port: its MAC, fixed IP and the hostname the guest is told."""

    mac: str
    ip: str
    hostname: str


@dataclass(frozen=True, slots=True, kw_only=True)
class DhcpSubnet:
    id: str
    cidr: str
    gateway_ip: str | None = None
    dns_nameservers: tuple[str, ...] = ()
    host_routes: tuple[tuple[str, str], ...] = ()   # (destination, nexthop)


@dataclass
class DhcpServer:
    """dnsmasq for one network on this host. ``server_ip`` is the DHCP port's address
    (it must be inside the first subnet)."""

    network_id: str
    state_dir: Path
    run: Runner = execute
    bridge: LinuxBridge = field(default_factory=LinuxBridge)

    @property
    def namespace(self) -> str:
        return namespace_name(self.network_id)

    @property
    def _outer(self) -> str:
        return "dhp" + self.network_id[:11]

    @property
    def _inner(self) -> str:
        return "ns-" + self.network_id[:11]

    @property
    def _dir(self) -> Path:
        return self.state_dir / self.network_id

    async def start(self, subnets: Sequence[DhcpSubnet], server_ip: str, mtu: int,
                    hosts: Sequence[DhcpHost]) -> None:
        """Namespace, veth into the bridge, address, files and dnsmasq (idempotent: a
        running server only gets its files rewritten and re-read)."""
        if not subnets:
            raise ValueError("a DHCP server needs at least one subnet")
        self._dir.mkdir(parents=True, exist_ok=True)
        self._dir.chmod(0o755)  # dnsmasq drops root and must still read its files
        _check_reachable(self._dir)
        self._write(subnets, mtu, hosts)
        if self.pid() is not None:
            await self.reload()
            return
        await self._plumb(subnets[0], server_ip, mtu)
        await self.run("ip", "netns", "exec", self.namespace, "dnsmasq", *self._args(subnets))
        for _ in range(50):  # the daemon writes its pid file once it has bound
            if self.pid() is not None:
                return
            await asyncio.sleep(0.05)
        raise RuntimeError(f"dnsmasq for network {self.network_id} did not start")

    async def update(self, subnets: Sequence[DhcpSubnet], mtu: int,
                     hosts: Sequence[DhcpHost]) -> None:
        """New hosts and options, re-read without a restart (leases are kept)."""
        self._write(subnets, mtu, hosts)
        await self.reload()

    async def reload(self) -> None:
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGHUP)

    def pid(self) -> int | None:
        """dnsmasq's pid, from the pid file this server made, if that process lives."""
        try:
            pid = int((self._dir / "pid").read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        return pid

    async def stop(self) -> None:
        """dnsmasq, veth, namespace and files gone (each step skipped when done)."""
        pid = self.pid()
        if pid is not None:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, 0)
                    await asyncio.sleep(0.02)
                    continue
                break
        if await self.bridge.exists(self._outer):
            await self.run("ip", "link", "del", "dev", self._outer)
        if self.namespace in (await self.run("ip", "netns", "list")).decode().split():
            await self.run("ip", "netns", "del", self.namespace)
        shutil.rmtree(self._dir, ignore_errors=True)

    # -- internals -------------------------------------------------------------------

    async def _plumb(self, subnet: DhcpSubnet, server_ip: str, mtu: int) -> None:
        net = ipaddress.ip_network(subnet.cidr)
        address = ipaddress.ip_address(server_ip)
        if address not in net:
            raise ValueError(f"{server_ip} is not in {subnet.cidr}")
        bridge = await self.bridge.ensure_bridge(self.network_id, mtu)
        namespaces = (await self.run("ip", "netns", "list")).decode().split()
        if self.namespace not in namespaces:
            await self.run("ip", "netns", "add", self.namespace)
        if not await self.bridge.exists(self._outer):
            await self.run("ip", "link", "add", self._outer, "type", "veth",
                           "peer", "name", self._inner, "netns", self.namespace)
            await self.run("ip", "link", "set", "dev", self._outer, "addrgenmode", "none")
        await self.run("ip", "link", "set", "dev", self._outer, "mtu", str(mtu),
                       "master", bridge, "up")
        ns = ("ip", "netns", "exec", self.namespace)
        await self.run(*ns, "ip", "link", "set", "dev", "lo", "up")
        await self.run(*ns, "ip", "link", "set", "dev", self._inner, "mtu", str(mtu), "up")
        await self.run(*ns, "ip", "addr", "replace", f"{address}/{net.prefixlen}",
                       "dev", self._inner)

    def _args(self, subnets: Sequence[DhcpSubnet]) -> list[str]:
        ranges = []
        for i, subnet in enumerate(subnets):
            net = ipaddress.ip_network(subnet.cidr)
            if net.version == 4:
                ranges.append(f"--dhcp-range=set:s{i},{net.network_address},static,"
                              f"{net.netmask},{_LEASE_SECONDS}s")
            else:
                ranges.append(f"--dhcp-range=set:s{i},{net.network_address},static,"
                              f"{net.prefixlen},{_LEASE_SECONDS}s")
        return ["--no-hosts", "--no-resolv", "--port=0", "--conf-file=/dev/null",
                "--leasefile-ro", "--bind-interfaces", f"--interface={self._inner}",
                "--except-interface=lo", f"--pid-file={self._dir / 'pid'}",
                f"--dhcp-hostsfile={self._dir / 'host'}",
                f"--dhcp-optsfile={self._dir / 'opts'}", "--dhcp-authoritative", *ranges]

    def _write(self, subnets: Sequence[DhcpSubnet], mtu: int,
               hosts: Sequence[DhcpHost]) -> None:
        """The hosts and options files. A host or an option whose values are not valid
        is logged and left out: one bad port never stops the others' leases, and no
        value can split a line of either file."""
        lines = [line for host in hosts if (line := _host_line(host)) is not None]
        _atomic(self._dir / "host", lines)
        opts = []
        for i, subnet in enumerate(subnets):
            try:
                opts += _subnet_options(f"tag:s{i}", subnet, mtu)
            except ValueError as exc:
                logger.error("DHCP options of subnet %s left out: %s", subnet.id, exc)
        _atomic(self._dir / "opts", opts)


def _host_line(host: DhcpHost) -> str | None:
    """``MAC,hostname,IP`` for dnsmasq's hosts file; None (logged) when the MAC or the
    address is not one."""
    try:
        ip = ipaddress.ip_address(host.ip)
    except ValueError:
        logger.error("DHCP host %r left out: %r is not an IP address", host.mac, host.ip)
        return None
    mac = host.mac.lower()
    if not _MAC.fullmatch(mac):
        logger.error("DHCP host %s left out: %r is not a MAC address", ip, host.mac)
        return None
    name = sanitize_hostname(host.hostname, default=f"host-{ip}".replace(".", "-")
                             .replace(":", "-"))
    addr = f"[{ip}]" if ip.version == 6 else str(ip)
    return f"{mac},{name},{addr}"


def _subnet_options(tag: str, subnet: DhcpSubnet, mtu: int) -> list[str]:
    """The DHCP options of one subnet (IPv4 only); ``ValueError`` on a bad value."""
    if ipaddress.ip_network(subnet.cidr).version != 4:
        return []
    opts = []
    if subnet.gateway_ip:
        opts.append(f"{tag},option:router,{ipaddress.ip_address(subnet.gateway_ip)}")
    else:
        opts.append(f"{tag},option:router")
    if subnet.dns_nameservers:
        servers = ",".join(str(ipaddress.ip_address(s)) for s in subnet.dns_nameservers)
        opts.append(f"{tag},option:dns-server,{servers}")
    if subnet.host_routes:
        routes = ",".join(f"{ipaddress.ip_network(d)},{ipaddress.ip_address(n)}"
                          for d, n in subnet.host_routes)
        opts.append(f"{tag},option:classless-static-route,{routes}")
    opts.append(f"{tag},option:mtu,{int(mtu)}")
    return opts


def _check_reachable(directory: Path) -> None:
    """dnsmasq reads its files as ``nobody`` (also on every SIGHUP): every directory
    above them must let others through, or leases silently stop."""
    for parent in (directory, *directory.parents):
        if not parent.stat().st_mode & 0o001:
            raise PermissionError(f"dnsmasq runs as nobody and cannot reach {directory}: "
                                  f"{parent} is not traversable by others")


def _atomic(path: Path, lines: list[str]) -> None:
    part = path.with_suffix(".part")
    part.write_text("".join(f"{line}\n" for line in lines))
    part.chmod(0o644)
    part.replace(path)

