"""Security groups on the data plane, with nftables, for the bridged traffic of ports.

Two tables, replaced together in one ``nft -f`` transaction:

- ``bridge <table>_spoof`` (stateless, per bridge port): a frame from a port must carry
  the port's MAC and be ARP, IPv4 or IPv6 (no 802.1Q/802.1ad tag, no other ethertype);
  its ARP sender (MAC and IP) and IP source must be the port's own (a DHCP request from
  0.0.0.0 and IPv6 link-local addresses excepted). As Neutron's iptables firewall does,
  a port may not act as a DHCP server (UDP 67 -> 68, DHCPv6 547 -> 546) nor send ICMPv6
  router advertisements or redirects. With that in place an IP source address names its
  port. A *blocked* device (a tap this host plugged whose port it no longer filters, or
  whose values could not be rendered) gets nothing in or out.
- ``inet <table>`` (stateful): bridged IP traffic reaches the inet hooks through
  br_netfilter (``net.bridge.bridge-nf-call-iptables``/``ip6tables`` = 1), where
  connection tracking exists — this kernel has no conntrack in the bridge family. A
  packet from a port must match one of its groups' egress rules; a packet to a port must
  belong to an allowed connection, be a DHCP reply, or match an ingress rule. Otherwise
  it is dropped. A rule's remote group is a named set of its members' addresses.

Every value in the scripts is a validated address, prefix, MAC or number, or a device
name built from a UUID; nothing a user typed (names, descriptions) reaches nft. Rendering
never fails on what the database holds: a port whose values are not valid is left out
(and its device blocked), a rule that cannot be rendered is left out (it only ever
allowed traffic), an address that is not one is left out of its set; each is logged.
"""

from __future__ import annotations

import ipaddress
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from strato.domain.errors import Unavailable
from strato.domain.networks import Direction, SecurityGroupRule
from strato.domain.security_groups import ICMP_PROTOCOLS, PORT_PROTOCOLS, protocol_number
from strato.process import run

__all__ = ["Firewall", "PortFilter", "render", "rule_match"]

logger = logging.getLogger(__name__)

_NAME = re.compile(r"[a-z][a-z0-9_-]{1,30}")
_MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")
# nft's name for the ports of each protocol that has them (Neutron's SG_PORT_PROTO_NUMS).
_PORT_MATCH = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}
_ICMP, _ICMPV6 = 1, 58
_BRIDGE_NF = ("/proc/sys/net/bridge/bridge-nf-call-iptables",
              "/proc/sys/net/bridge/bridge-nf-call-ip6tables")
# What a port may never send, whatever its groups allow (Neutron's iptables firewall
# drops the same in every port's egress chain).
_NEVER_FROM_PORTS = (
    "udp sport 67 udp dport 68 drop",       # a DHCP server's reply
    "udp sport 547 udp dport 546 drop",     # a DHCPv6 server's reply
    "icmpv6 type { nd-router-advert, nd-redirect } drop",
)


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


def _split(ips: Iterable[str]) -> tuple[list[str], list[str]]:
    addresses = [ipaddress.ip_address(ip) for ip in ips]
    return ([str(a) for a in addresses if a.version == 4],
            [str(a) for a in addresses if a.version == 6])


def _elements(values: Sequence[str]) -> str:
    return "{ " + ", ".join(values) + " }"


def _device_ok(name: str) -> bool:
    return bool(_NAME.fullmatch(name)) and len(name) <= 15


def render(table: str, ports: Sequence[PortFilter],
           members: Mapping[str, Sequence[str]], *, blocked: Iterable[str] = ()) -> str:
    """The nft script that replaces both tables with these ports' rules; ``members``
    maps a security group id to its ports' addresses; ``blocked`` devices pass nothing
    either way. A port that is not valid is logged and blocked, never rendered."""
    if not _NAME.fullmatch(table):
        raise ValueError(f"bad table name {table!r}")
    good: list[PortFilter] = []
    stop: set[str] = set()
    for port in ports:
        problem = _port_problem(port)
        if problem is None:
            good.append(port)
            continue
        if _device_ok(port.device):
            logger.error("firewall: port device %s left out and blocked: %s", port.device,
                         problem)
            stop.add(port.device)
        else:
            logger.error("firewall: a port left out: %s", problem)
    stop = (stop | set(blocked)) - {p.device for p in good}
    for device in sorted(d for d in stop if not _device_ok(d)):
        logger.error("firewall: %r is not a device name; it cannot be blocked", device)
        stop.discard(device)
    groups = _valid_members(members)
    spoof = f"{table}_spoof"
    lines = [f"table bridge {spoof}", f"delete table bridge {spoof}",
             f"table inet {table}", f"delete table inet {table}"]
    lines += _spoof_table(spoof, good, sorted(stop))
    lines += _sg_table(table, good, groups)
    return "\n".join(lines) + "\n"


def _port_problem(port: PortFilter) -> str | None:
    """Why ``port`` cannot be rendered (None: it can)."""
    if not _device_ok(port.device):
        return f"bad device name {port.device!r}"
    if not _MAC.fullmatch(port.mac):
        return f"bad MAC {port.mac!r}"
    try:
        _split(port.ips)
    except ValueError:
        return f"bad fixed IPs {port.ips!r}"
    return None


def _valid_members(members: Mapping[str, Sequence[str]]) -> dict[str, tuple[str, ...]]:
    """Each group's addresses, those that are not one left out (and logged)."""
    out: dict[str, tuple[str, ...]] = {}
    for group_id, addresses in members.items():
        kept = []
        for address in addresses:
            try:
                kept.append(str(ipaddress.ip_address(address)))
            except ValueError:
                logger.error("firewall: group %s member %r is not an address; left out",
                             group_id, address)
        out[group_id] = tuple(kept)
    return out


def _spoof_table(name: str, ports: Sequence[PortFilter], blocked: Sequence[str]) -> list[str]:
    out = [f"table bridge {name} {{",
           "  chain from_ports {",
           "    type filter hook prerouting priority 0; policy accept;"]
    quoted = [f'"{d}"' for d in blocked]
    if quoted:
        out.append(f"    iifname {_elements(quoted)} drop")
    out += [f'    iifname "{p.device}" jump from-{p.device}' for p in ports]
    out += ["  }", "  chain to_ports {",
            "    type filter hook forward priority 0; policy accept;"]
    if quoted:
        out.append(f"    oifname {_elements(quoted)} drop")
    out.append("  }")
    for port in ports:
        v4, v6 = _split(port.ips)
        out += [f"  chain from-{port.device} {{",
                f"    ether saddr != {port.mac} drop",
                "    ether type != { arp, ip, ip6 } drop",
                f"    arp saddr ether != {port.mac} drop",
                *(f"    {line}" for line in _NEVER_FROM_PORTS),
                "    ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept"]
        if v4:
            out += [f"    arp saddr ip != {_elements(['0.0.0.0', *v4])} drop",
                    f"    ip saddr != {_elements(v4)} drop"]
        else:
            out += ["    ether type { arp, ip } drop"]
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
        out += [f"    {match} return" for match in _rules(port, Direction.EGRESS, members)]
        out += ["    drop", "  }", f"  chain to-{port.device} {{",
                "    udp sport 67 udp dport 68 accept"]
        out += [f"    {match} accept" for match in _rules(port, Direction.INGRESS, members)]
        out += ["    drop", "  }"]
    out.append("}")
    return out


def _rules(port: PortFilter, direction: Direction,
           members: Mapping[str, Sequence[str]]) -> list[str]:
    """The matches of the port's rules in ``direction``; a rule that cannot be rendered
    is logged and left out (a rule only ever allows traffic)."""
    side = "daddr" if direction is Direction.EGRESS else "saddr"
    out = []
    for rule in port.rules:
        if rule.direction is not direction:
            continue
        try:
            out += rule_match(rule, members, side)
        except (ValueError, KeyError, TypeError) as exc:
            logger.error("firewall: rule %s of port device %s left out: %s", rule.id,
                         port.device, exc)
    return out


def rule_match(rule: SecurityGroupRule, members: Mapping[str, Sequence[str]],
               side: str) -> list[str]:
    """The nft match of a rule (none when it can match nothing, e.g. an empty group);
    ``ValueError`` when a value is not what the API admits."""
    v6 = rule.ethertype == "IPv6"
    if rule.ethertype not in ("IPv4", "IPv6"):
        raise ValueError(f"unknown ethertype {rule.ethertype!r}")
    family = "ip6" if v6 else "ip"
    parts = ["meta nfproto " + ("ipv6" if v6 else "ipv4")]
    if rule.remote_ip_prefix:
        prefix = ipaddress.ip_network(rule.remote_ip_prefix, strict=False)
        if prefix.version != (6 if v6 else 4):
            raise ValueError(f"prefix {prefix} is not {rule.ethertype}")
        parts.append(f"{family} {side} {prefix}")
    elif rule.remote_group_id:
        v4_members, v6_members = _split(members.get(rule.remote_group_id, ()))
        if not (v6_members if v6 else v4_members):
            return []
        parts.append(f"{family} {side} @{_set_name(rule.remote_group_id, 6 if v6 else 4)}")
    if rule.protocol is not None:
        parts += _protocol_match(rule, v6)
    return [" ".join(parts)]


def _protocol_match(rule: SecurityGroupRule, v6: bool) -> list[str]:
    """Neutron's reading of a rule's protocol: a name of IP_PROTOCOL_MAP or a number;
    0 (``ip``, ``hopopt``) is any protocol; ``icmp`` in an IPv6 rule is ICMPv6; ports only
    for the protocols that have them, ICMP type and code for ICMP."""
    assert rule.protocol is not None
    number = protocol_number(rule.protocol.lower())
    if number is None or not 0 <= number <= 255:
        raise ValueError(f"protocol {rule.protocol!r} is not an IP protocol")
    if number == _ICMP and v6:
        number = _ICMPV6
    low, high = rule.port_range_min, rule.port_range_max
    for value in (low, high):
        if value is not None and not (isinstance(value, int) and 0 <= value <= 65535):
            raise ValueError(f"port {value!r} is out of range")
    if number == 0:
        return []
    parts = [f"meta l4proto {number}"]
    if number in PORT_PROTOCOLS and low is not None:
        span = str(low) if high is None or high == low else f"{low}-{high}"
        if high is not None and high < low:
            raise ValueError(f"port range {low}-{high} is empty")
        parts.append(f"{_PORT_MATCH[number]} dport {span}")
    elif number in ICMP_PROTOCOLS and low is not None:
        icmp = "icmpv6" if number == _ICMPV6 else "icmp"
        if low > 255 or (high is not None and high > 255):
            raise ValueError(f"ICMP type/code {low}/{high} out of range")
        parts.append(f"{icmp} type {low}")
        if high is not None:
            parts.append(f"{icmp} code {high}")
    return parts


class Firewall:
    """Applies :func:`render`'s script with ``nft -f -`` (no shell)."""

    def __init__(self, table: str = "strato_sg") -> None:
        self.table = table

    async def apply(self, ports: Sequence[PortFilter],
                    members: Mapping[str, Sequence[str]], *,
                    blocked: Iterable[str] = ()) -> None:
        _enable_bridge_netfilter()
        await _nft(render(self.table, ports, members, blocked=blocked))

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
        done = await run("nft", "-f", "-", stdin=script.encode())
    except FileNotFoundError as exc:
        raise Unavailable("nft is not installed on this host") from exc
    if done.returncode != 0:
        raise Unavailable(f"nft failed (exit {done.returncode}): {done.stderr.decode().strip()}")
