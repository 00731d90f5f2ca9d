"""Security groups enforced on bridged traffic, against the real kernel and nft. Three
namespaces stand in for guests (their veths play the taps), on a bridge without an
address; every packet stays between namespaces this test created."""

from __future__ import annotations

import asyncio
import ipaddress
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest

from strato.domain.ids import ProjectId
from strato.domain.networks import Direction, SecurityGroupRule
from strato.network.firewall import Firewall, PortFilter, render
from strato.network.linuxbridge import LinuxBridge

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="namespaces need root")

WEB, CLOSED = str(uuid.uuid4()), str(uuid.uuid4())


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    assert done.returncode == 0, (args, done.stderr)


def _ip_quiet(*args: str) -> None:
    """Cleanup: a device or namespace already gone is fine."""
    subprocess.run(["ip", *args], capture_output=True)


@dataclass
class Guest:
    ns: str
    device: str
    mac: str
    ip: str

    async def ping(self, target: str, *, source: str | None = None) -> bool:
        args = ["ip", "netns", "exec", self.ns, "busybox", "ping", "-c", "1", "-W", "1"]
        if source:
            args += ["-I", source]
        proc = await asyncio.create_subprocess_exec(
            *args, target, stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL)
        return await proc.wait() == 0


def rule(group: str, direction: Direction, **fields: object) -> SecurityGroupRule:
    return SecurityGroupRule(id=str(uuid.uuid4()), security_group_id=group,
                             project_id=ProjectId("p"), direction=direction,
                             **fields)  # type: ignore[arg-type]


EGRESS_ALL = rule(WEB, Direction.EGRESS)
WEB_ICMP = rule(WEB, Direction.INGRESS, protocol="icmp", remote_group_id=WEB)


@pytest.fixture
async def guests() -> AsyncIterator[tuple[list[Guest], Firewall]]:
    tag = uuid.uuid4().hex[:8]
    network_id = str(uuid.uuid4())
    bridge = await LinuxBridge().ensure_bridge(network_id, 1500)
    firewall = Firewall(f"sttest_{tag}")
    made = [Guest(f"stg-{tag}-{i}", f"vg{tag}{i}", f"fa:16:3e:78:00:1{i}", f"10.78.0.1{i}")
            for i in range(1, 4)]
    try:
        for g in made:
            _ip("netns", "add", g.ns)
            _ip("link", "add", g.device, "type", "veth", "peer", "name", "eth0",
                "netns", g.ns)
            _ip("link", "set", "dev", g.device, "addrgenmode", "none")
            _ip("link", "set", "dev", g.device, "master", bridge, "up")
            _ip("-n", g.ns, "link", "set", "dev", "eth0", "address", g.mac, "up")
            _ip("-n", g.ns, "addr", "add", f"{g.ip}/24", "dev", "eth0")
        yield made, firewall
    finally:
        await firewall.clear()
        for g in made:
            _ip_quiet("link", "del", "dev", g.device)
            _ip_quiet("netns", "del", g.ns)
        await LinuxBridge().delete_bridge(network_id)


def filters(guests: list[Guest], web_rules: tuple[SecurityGroupRule, ...]) -> list[PortFilter]:
    g1, g2, g3 = guests
    closed = (rule(CLOSED, Direction.EGRESS),)
    return [PortFilter(device=g1.device, mac=g1.mac, ips=(g1.ip,), rules=web_rules),
            PortFilter(device=g2.device, mac=g2.mac, ips=(g2.ip,), rules=web_rules),
            PortFilter(device=g3.device, mac=g3.mac, ips=(g3.ip,), rules=closed)]


async def test_groups_admit_only_what_their_rules_allow(
        guests: tuple[list[Guest], Firewall]) -> None:
    (g1, g2, g3), firewall = guests
    members = {WEB: [g1.ip, g2.ip], CLOSED: [g3.ip]}
    await firewall.apply(filters([g1, g2, g3], (EGRESS_ALL, WEB_ICMP)), members)
    assert await g1.ping(g2.ip)          # same group, ICMP admitted from the group
    assert await g2.ping(g1.ip)
    assert not await g1.ping(g3.ip)      # the third admits no ingress at all
    assert not await g3.ping(g1.ip)      # and is not in the group g1 admits

    # Removing the rule that allowed it stops the traffic.
    await firewall.apply(filters([g1, g2, g3], (EGRESS_ALL,)), members)
    assert not await g1.ping(g2.ip)


async def test_a_port_cannot_send_from_an_address_it_was_not_given(
        guests: tuple[list[Guest], Firewall]) -> None:
    (g1, g2, g3), firewall = guests
    anyone = rule(WEB, Direction.INGRESS, protocol="icmp", remote_ip_prefix="0.0.0.0/0")
    await firewall.apply(filters([g1, g2, g3], (EGRESS_ALL, anyone)),
                         {WEB: [g1.ip, g2.ip], CLOSED: [g3.ip]})
    assert await g1.ping(g2.ip)
    _ip("-n", g1.ns, "addr", "add", "10.78.0.99/24", "dev", "eth0")
    assert not await g1.ping(g2.ip, source="10.78.0.99")


def test_rendering_leaves_out_anything_but_names_addresses_and_numbers() -> None:
    port = PortFilter(device="tap0123456789a", mac="fa:16:3e:00:00:01", ips=("10.0.0.5",),
                      rules=())
    script = render("strato_sg", [port], {})
    assert 'iifname "tap0123456789a" jump from-tap0123456789a' in script
    assert "ip daddr { 10.0.0.5 } jump to-tap0123456789a" in script
    for bad in (PortFilter(device='x"; flush ruleset', mac=port.mac, ips=port.ips, rules=()),
                PortFilter(device=port.device, mac="fa:16:3e:00:00:01 drop", ips=port.ips,
                           rules=()),
                PortFilter(device=port.device, mac=port.mac, ips=("10.0.0.5; drop",),
                           rules=())):
        script = render("strato_sg", [bad], {})
        assert "flush" not in script and "jump from-" not in script
    with pytest.raises(ValueError):
        render("strato sg", [port], {})


# --- what no guest may send, whatever its groups allow ----------------------------------

# Runs inside a namespace: "send IFACE HEX..." writes raw Ethernet frames; "recv IFACE
# MARKER..." prints "ready", then the markers seen (hex) once it has seen the last one.
FRAMES = r"""
import select, socket, sys, time
mode, iface, args = sys.argv[1], sys.argv[2], [bytes.fromhex(a) for a in sys.argv[3:]]
if mode == "send":
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for frame in args:
        s.send(frame)
    sys.exit(0)
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3))
s.bind((iface, 0))
print("ready", flush=True)
seen = []
bound = time.monotonic() + 20  # only a bound for a failing test: the last marker ends it
while args[-1] not in seen and time.monotonic() < bound:
    if select.select([s], [], [], 0.5)[0]:
        data = s.recv(65535)
        seen += [m for m in args if m in data and m not in seen]
print(" ".join(m.hex() for m in seen), flush=True)
"""

BROADCAST = "ff:ff:ff:ff:ff:ff"


def _mac(text: str) -> bytes:
    return bytes.fromhex(text.replace(":", ""))


def _checksum(header: bytes) -> int:
    total = sum(int.from_bytes(header[i:i + 2], "big") for i in range(0, len(header), 2))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def udp4(src_mac: str, src_ip: str, sport: int, dport: int, marker: bytes, *,
         vlan: int | None = None) -> bytes:
    """An Ethernet frame carrying UDP to 255.255.255.255 (802.1Q-tagged with ``vlan``)."""
    udp = (sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
           + (8 + len(marker)).to_bytes(2, "big") + b"\0\0" + marker)
    header = (bytes([0x45, 0]) + (20 + len(udp)).to_bytes(2, "big") + bytes(4)
              + bytes([64, 17]) + b"\0\0" + ipaddress.IPv4Address(src_ip).packed
              + b"\xff\xff\xff\xff")
    header = header[:10] + _checksum(header).to_bytes(2, "big") + header[12:]
    tag = b"" if vlan is None else b"\x81\x00" + vlan.to_bytes(2, "big")
    return _mac(BROADCAST) + _mac(src_mac) + tag + b"\x08\x00" + header + udp


def icmp6(src_mac: str, icmp_type: int, marker: bytes) -> bytes:
    """An ICMPv6 message from the MAC's link-local address to all nodes (ff02::1)."""
    body = bytes([icmp_type, 0, 0, 0]) + bytes(12) + marker
    link_local = ipaddress.IPv6Address("fe80::" + src_mac[-5:].replace(":", "")).packed
    header = (b"\x60\0\0\0" + len(body).to_bytes(2, "big") + bytes([58, 255])
              + link_local + ipaddress.IPv6Address("ff02::1").packed)
    return _mac(BROADCAST) + _mac(src_mac) + b"\x86\xdd" + header + body


@dataclass
class Lan:
    guests: list[Guest]
    server: Guest          # an unfiltered port, as the DHCP agent's
    firewall: Firewall

    async def delivered(self, to: Guest, sends: list[tuple[Guest, bytes]],
                        markers: list[bytes]) -> list[bytes]:
        """Which ``markers`` reach ``to``'s namespace when each guest sends its frame,
        in order (the last frame must arrive: it ends the capture)."""
        recv = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", to.ns, sys.executable, "-c", FRAMES, "recv", "eth0",
            *(m.hex() for m in markers), stdout=asyncio.subprocess.PIPE)
        assert recv.stdout is not None
        assert (await recv.stdout.readline()).strip() == b"ready"
        for sender, frame in sends:
            send = await asyncio.create_subprocess_exec(
                "ip", "netns", "exec", sender.ns, sys.executable, "-c", FRAMES, "send",
                "eth0", frame.hex())
            assert await send.wait() == 0
            await asyncio.sleep(0.2)  # one frame through the bridge before the next
        out, _ = await recv.communicate()
        return [bytes.fromhex(m) for m in out.decode().split()]


def _plug_namespace(guest: Guest, bridge: str) -> None:
    _ip("netns", "add", guest.ns)
    _ip("link", "add", guest.device, "type", "veth", "peer", "name", "eth0",
        "netns", guest.ns)
    _ip("link", "set", "dev", guest.device, "addrgenmode", "none")
    _ip("link", "set", "dev", guest.device, "master", bridge, "up")
    _ip("-n", guest.ns, "link", "set", "dev", "eth0", "address", guest.mac, "up")
    _ip("-n", guest.ns, "addr", "add", f"{guest.ip}/24", "dev", "eth0")


@pytest.fixture
async def lan() -> AsyncIterator[Lan]:
    tag = uuid.uuid4().hex[:8]
    network_id = str(uuid.uuid4())
    bridge = await LinuxBridge().ensure_bridge(network_id, 1500)
    firewall = Firewall(f"sttest_{tag}")
    made = [Guest(f"stl-{tag}-{i}", f"vl{tag}{i}", f"fa:16:3e:79:00:1{i}", f"10.79.0.1{i}")
            for i in range(1, 4)]
    try:
        for guest in made:
            _plug_namespace(guest, bridge)
        yield Lan(guests=made[:2], server=made[2], firewall=firewall)
    finally:
        await firewall.clear()
        for guest in made:
            _ip_quiet("link", "del", "dev", guest.device)
            _ip_quiet("netns", "del", guest.ns)
        await LinuxBridge().delete_bridge(network_id)


async def _filter_guests(lan: Lan, *rules: SecurityGroupRule) -> None:
    await lan.firewall.apply([PortFilter(device=g.device, mac=g.mac, ips=(g.ip,),
                                         rules=(EGRESS_ALL, *rules)) for g in lan.guests],
                             {WEB: [g.ip for g in lan.guests]})


def _markers(n: int) -> list[bytes]:
    return [uuid.uuid4().bytes for _ in range(n)]


async def test_a_guest_cannot_answer_dhcp(lan: Lan) -> None:
    (g1, g2), server = lan.guests, lan.server
    await _filter_guests(lan)
    spoofed, normal, real = _markers(3)
    seen = await lan.delivered(g2, [
        (g1, udp4(g1.mac, g1.ip, 67, 68, spoofed)),      # a DHCP server reply
        (g1, udp4(g1.mac, g1.ip, 5000, 5000, normal)),   # ordinary traffic
        (server, udp4(server.mac, server.ip, 67, 68, real)),
    ], [spoofed, normal, real])
    assert seen == [normal, real]


async def test_a_guest_cannot_advertise_routes(lan: Lan) -> None:
    (g1, g2) = lan.guests
    await _filter_guests(lan)
    advert, redirect, echo = _markers(3)
    seen = await lan.delivered(g2, [(g1, icmp6(g1.mac, 134, advert)),
                                    (g1, icmp6(g1.mac, 137, redirect)),
                                    (g1, icmp6(g1.mac, 128, echo))],
                               [advert, redirect, echo])
    assert seen == [echo]


async def test_a_guest_cannot_send_tagged_frames(lan: Lan) -> None:
    (g1, g2), server = lan.guests, lan.server
    await _filter_guests(lan)
    tagged, plain, control = _markers(3)
    seen = await lan.delivered(g2, [
        (g1, udp4(g1.mac, g1.ip, 5000, 5000, tagged, vlan=100)),
        (g1, udp4(g1.mac, g1.ip, 5000, 5000, plain)),
        (server, udp4(server.mac, server.ip, 5000, 5000, control, vlan=100)),
    ], [tagged, plain, control])
    assert seen == [plain, control]


async def test_every_protocol_the_api_accepts_loads(lan: Lan) -> None:
    from tests.unit.test_firewall_render import accepted_rules

    rules = accepted_rules()
    assert {r.protocol for r in rules} >= {"gre", "vrrp", "esp", "ah", "dccp", "ospf",
                                           "sctp", "icmpv6", "ipip"}
    await _filter_guests(lan, *rules)  # nft loads it (Unavailable otherwise)
    g1, g2 = lan.guests
    assert await g1.ping(g2.ip)  # icmp is among them


async def test_a_blocked_device_passes_nothing(lan: Lan) -> None:
    g1, g2 = lan.guests
    anyone = rule(WEB, Direction.INGRESS, protocol="icmp", remote_ip_prefix="0.0.0.0/0")
    await _filter_guests(lan, anyone)
    assert await g1.ping(g2.ip)
    # g2's port is no longer among the host's filtered ports: its device is blocked.
    await lan.firewall.apply([PortFilter(device=g1.device, mac=g1.mac, ips=(g1.ip,),
                                         rules=(EGRESS_ALL, anyone))], {},
                             blocked=[g2.device])
    assert not await g1.ping(g2.ip)
    assert not await g2.ping(g1.ip)
