"""Security groups enforced on bridged traffic, against the real kernel and nft. Three
namespaces stand in for guests (their veths play the taps), on a bridge without an
address; every packet stays between namespaces this test created."""

from __future__ import annotations

import asyncio
import os
import subprocess
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


def test_rendering_refuses_anything_but_names_addresses_and_numbers() -> None:
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
        with pytest.raises(ValueError):
            render("strato_sg", [bad], {})
