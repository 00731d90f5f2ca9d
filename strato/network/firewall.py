"""Security groups on the data plane, with nftables, for the bridged traffic of ports.

Two tables, replaced together in one ``nft -f`` transaction:

- ``bridge <table>_spoof`` (stateless, per bridge port): a frame from a port must carry
  the port's MAC, and its ARP and IP sender must be one of the port's fixed IPs (a DHCP
  request from 0.0.0.0 and IPv6 link-local addresses excepted). With that in place an
  IP source address names its port.
- ``inet <table>`` (stateful): bridged IP traffic reaches the inet hooks through
  br_netfilter (``net.bridge.bridge-nf-call-iptables``/``ip6tables`` = 1), where
  connection tracking exists — this kernel has no conntrack in the bridge family. A
  packet from a port must match one of its groups' egress rules; a packet to a port must
  belong to an allowed connection, be a DHCP reply, or match an ingress rule. Otherwise
  it is dropped. A rule's remote group is a named set of its members' addresses.

Every value in the scripts is a validated address, prefix, MAC or number, or a device
name built from a UUID; nothing a user typed (names, descriptions) reaches nft.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from strato.domain.errors import Unavailable
from strato.domain.networks import Direction, SecurityGroupRule

__all__ = ["Firewall", "PortFilter", "render"]

_NAME = re.compile(r"^[a-z][a-z0-9_-]{1,30}$")
_MAC = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_PROTOCOLS = {"tcp": 6, "udp": 17, "icmp": 1, "icmpv6": 58, "ipv6-icmp": 58, "sctp": 132}
_BRIDGE_NF = ("/proc/sys/net/bridge/bridge-nf-call-iptables",
              "/proc/sys/net/bridge/bridge-nf-call-ip6tables")


@dataclass(frozen=True, slots=True, kw_only=True)
class PortFilter:
    """One port as the firewall sees it: its device on the bridge, MAC, fixed IPs, and
    the rules of every security group it is in."""

    device: str
    mac: str
    ips: tuple[str, ...]
    rules: tuple[SecurityGroupRule, ...]


def _set_name(group_id: str, version: int) -> str:
    return f"sg-{group_id[:12]}-v{version}"


def _split(ips: Sequence[str]) -> tuple[list[str], list[str]]:
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    return ([str(a) for a in addresses if a.version == 4],
            [str(a) for a in addresses if a.version == 6])


def _elements(values: Sequence[str]) -> str:
    return "{ " + ", ".join(values) + " }"


def render(table: str, ports: Sequence[PortFilter],
           members: Mapping[str, Sequence[str]]) -> str:
    """The nft script that replaces both tables with these ports' rules; ``members``
    maps a security group id to its ports' addresses."""
    if not _NAME.match(table):
        raise ValueError(f"bad table name {table!r}")
    for port in ports:
        _check_port(port)
    spoof = f"{table}_spoof"
    lines = [f"table bridge {spoof}", f"delete table bridge {spoof}",
             f"table inet {table}", f"delete table inet {table}"]
    lines += _spoof_table(spoof, ports)
    lines += _sg_table(table, ports, members)
    return "\n".join(lines) + "\n"


def _check_port(port: PortFilter) -> None:
    if not _NAME.match(port.device) or len(port.device) > 15:
        raise ValueError(f"bad device name {port.device!r}")
    if not _MAC.match(port.mac):
        raise ValueError(f"bad MAC {port.mac!r}")
    _split(port.ips)


def _spoof_table(name: str, ports: Sequence[PortFilter]) -> list[str]:
    out = [f"table bridge {name} {{",
           "  chain from_ports {",
           "    type filter hook prerouting priority 0; policy accept;"]
    out += [f'    iifname "{p.device}" jump from-{p.device}' for p in ports]
    out.append("  }")
    for port in ports:
        v4, v6 = _split(port.ips)
        out += [f"  chain from-{port.device} {{",
                f"    ether saddr != {port.mac} drop",
                "    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"]
        if v4:
            out += [f"    arp saddr ip != {_elements(['0.0.0.0', *v4])} drop",
                    f"    ip saddr != {_elements(v4)} drop"]
        else:
            out += ["    ether type ip drop"]
        out += [f"    ip6 saddr != {_elements(['fe80::/10', *v6])} drop", "  }"]
    out.append("}")
    return out


def _sg_table(name: str, ports: Sequence[PortFilter],
              members: Mapping[str, Sequence[str]]) -> list[str]:
    out = [f"table inet {name} {{"]
    for group_id, addresses in sorted(members.items()):
        v4, v6 = _split(addresses)
        for version, kind, values in ((4, "ipv4_addr", v4), (6, "ipv6_addr", v6)):
            body = f" elements = {_elements(values)};" if values else ""
            out.append(f"  set {_set_name(group_id, version)} {{ type {kind};{body} }}")
    out += ["  chain forward_ports {",
            "    type filter hook forward priority 0; policy accept;",
            "    ct state established,related accept"]
    # Egress first (a matching rule returns here), then ingress (accept or drop).
    for port in ports:
        v4, v6 = _split(port.ips)
        if v4:
            out.append(f"    ip saddr {_elements(v4)} jump from-{port.device}")
        if v6:
            out.append(f"    ip6 saddr {_elements(v6)} jump from-{port.device}")
    for port in ports:
        v4, v6 = _split(port.ips)
        if v4:
            out.append(f"    ip daddr {_elements(v4)} jump to-{port.device}")
        if v6:
            out.append(f"    ip6 daddr {_elements(v6)} jump to-{port.device}")
    out.append("  }")
    for port in ports:
        out.append(f"  chain from-{port.device} {{")
        out += [f"    {match} return" for rule in port.rules
                if rule.direction is Direction.EGRESS for match in _matches(rule, members,
                                                                           "daddr")]
        out += ["    drop", "  }", f"  chain to-{port.device} {{",
                "    udp sport 67 udp dport 68 accept"]
        out += [f"    {match} accept" for rule in port.rules
                if rule.direction is Direction.INGRESS for match in _matches(rule, members,
                                                                            "saddr")]
        out += ["    drop", "  }"]
    out.append("}")
    return out


def _matches(rule: SecurityGroupRule, members: Mapping[str, Sequence[str]],
             side: str) -> list[str]:
    """The nft match of a rule (none when it can match nothing, e.g. an empty group)."""
    v6 = rule.ethertype == "IPv6"
    family = "ip6" if v6 else "ip"
    parts = ["meta nfproto " + ("ipv6" if v6 else "ipv4")]
    if rule.remote_ip_prefix:
        prefix = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        parts.append(f"{family} {side} {prefix}")
    elif rule.remote_group_id:
        v4_members, v6_members = _split(members.get(rule.remote_group_id, ()))
        if not (v6_members if v6 else v4_members):
            return []
        parts.append(f"{family} {side} @{_set_name(rule.remote_group_id, 6 if v6 else 4)}")
    if rule.protocol is not None:
        number = _PROTOCOLS.get(rule.protocol.lower())
        if number is None:
            number = int(rule.protocol)
        parts.append(f"meta l4proto {number}")
        low, high = rule.port_range_min, rule.port_range_max
        if number in (6, 17, 132) and low is not None:
            proto = {6: "tcp", 17: "udp", 132: "sctp"}[number]
            span = str(low) if high is None or high == low else f"{low}-{high}"
            parts.append(f"{proto} dport {span}")
        elif number in (1, 58) and low is not None:
            icmp = "icmpv6" if number == 58 else "icmp"
            parts.append(f"{icmp} type {int(low)}")
            if high is not None:
                parts.append(f"{icmp} code {int(high)}")
    return [" ".join(parts)]


class Firewall:
    """Applies :func:`render`'s script with ``nft -f -`` (no shell)."""

    def __init__(self, table: str = "strato_sg") -> None:
        self.table = table

    async def apply(self, ports: Sequence[PortFilter],
                    members: Mapping[str, Sequence[str]]) -> None:
        _enable_bridge_netfilter()
        await _nft(render(self.table, ports, members))

    async def clear(self) -> None:
        """Remove both tables (nothing to do when they are gone)."""
        spoof = f"{self.table}_spoof"
        await _nft(f"table bridge {spoof}\ndelete table bridge {spoof}\n"
                   f"table inet {self.table}\ndelete table inet {self.table}\n")


def _enable_bridge_netfilter() -> None:
    """Bridged IP traffic must pass the inet hooks (where conntrack is)."""
    for knob in map(Path, _BRIDGE_NF):
        try:
            if knob.read_text().strip() != "1":
                knob.write_text("1\n")
        except OSError as exc:
            raise Unavailable(f"cannot filter bridged traffic: {knob}: {exc} (is the "
                              "br_netfilter module loaded?)") from exc


async def _nft(script: str) -> None:
    try:
        proc = await asyncio.create_subprocess_exec(
            "nft", "-f", "-", stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE)
    except FileNotFoundError as exc:
        raise Unavailable("nft is not installed on this host") from exc
    _, err = await proc.communicate(script.encode())
    if proc.returncode != 0:
        raise Unavailable(f"nft failed (exit {proc.returncode}): {err.decode().strip()}")
