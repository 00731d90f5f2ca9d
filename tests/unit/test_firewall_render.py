"""The nft ruleset :func:`strato.network.firewall.render` writes: every protocol the
Network API accepts renders (as Neutron's table numbers it), what no port may ever send
is dropped, and a port or rule whose values are not valid is left out (its device
blocked) without ever failing the whole ruleset. tests/integration/test_firewall.py
loads these rulesets into the kernel."""

from __future__ import annotations

import logging
import uuid

import pytest

from strato.domain.ids import ProjectId
from strato.domain.networks import Direction, SecurityGroupRule
from strato.domain.security_groups import (
    ICMP_PROTOCOLS,
    PORT_PROTOCOLS,
    PROTOCOLS,
    RuleSpec,
    validate_rule,
)
from strato.network.firewall import PortFilter, render

GROUP = str(uuid.uuid4())
IPV6_ONLY = {"icmpv6", "ipv6-icmp", "ipv6-encap", "ipv6-frag", "ipv6-nonxt", "ipv6-opts",
             "ipv6-route"}
PORT_NAMES = {6: "tcp", 17: "udp", 33: "dccp", 132: "sctp", 136: "udplite"}


def rule_from(spec: RuleSpec) -> SecurityGroupRule:
    """A rule as the API stores it: validated and normalised first."""
    valid = validate_rule(spec)
    return SecurityGroupRule(
        id=str(uuid.uuid4()), security_group_id=GROUP, project_id=ProjectId("p"),
        direction=Direction(valid.direction), ethertype=valid.ethertype,
        protocol=valid.protocol, port_range_min=valid.port_range_min,
        port_range_max=valid.port_range_max, remote_ip_prefix=valid.remote_ip_prefix)


def accepted_rules() -> list[SecurityGroupRule]:
    """One ingress rule per protocol name (and a few numbers) per ethertype the API
    accepts it with, with ports or ICMP type/code where the protocol has them."""
    rules = []
    for name in [*sorted(PROTOCOLS), "47", "112", "255", "0", "GRE"]:
        number = PROTOCOLS.get(name.lower(), None)
        number = int(name) if number is None else number
        for ethertype in ("IPv4", "IPv6"):
            if name in IPV6_ONLY and ethertype == "IPv4":
                continue
            low, high = (None, None)
            if number in PORT_PROTOCOLS:
                low, high = 1000, 2000
            elif number in ICMP_PROTOCOLS:
                low, high = 8, 0
            rules.append(rule_from(RuleSpec(direction="ingress", ethertype=ethertype,
                                            protocol=name, port_range_min=low,
                                            port_range_max=high)))
    return rules


def port(device: str = "tapb4c384e6-77", mac: str = "fa:16:3e:00:00:01",
         ips: tuple[str, ...] = ("10.0.0.5",),
         rules: tuple[SecurityGroupRule, ...] = ()) -> PortFilter:
    return PortFilter(device=device, mac=mac, ips=ips, rules=rules)


def chain(script: str, name: str) -> list[str]:
    lines = script.splitlines()
    start = lines.index(f"  chain {name} {{")
    end = lines.index("  }", start)
    return [line.strip() for line in lines[start + 1:end]]


def test_every_protocol_the_api_accepts_renders_as_its_number() -> None:
    rules = accepted_rules()
    script = render("strato_sg", [port(rules=tuple(rules))], {})
    ingress = chain(script, "to-tapb4c384e6-77")
    for rule in rules:
        assert rule.protocol is not None
        number = PROTOCOLS.get(rule.protocol, None)
        number = int(rule.protocol) if number is None else number
        family = "ipv6" if rule.ethertype == "IPv6" else "ipv4"
        if number == 1 and family == "ipv6":
            number = 58  # icmp in an IPv6 rule is ICMPv6, as in Neutron
        if number == 0:
            expected = f"meta nfproto {family} accept"  # any protocol
        elif number in PORT_PROTOCOLS:
            expected = (f"meta nfproto {family} meta l4proto {number} "
                        f"{PORT_NAMES[number]} dport 1000-2000 accept")
        elif number in ICMP_PROTOCOLS:
            icmp = "icmpv6" if number == 58 else "icmp"
            expected = (f"meta nfproto {family} meta l4proto {number} {icmp} type 8 "
                        f"{icmp} code 0 accept")
        else:
            expected = f"meta nfproto {family} meta l4proto {number} accept"
        assert expected in ingress, (rule.protocol, rule.ethertype)


def test_no_port_may_serve_dhcp_advertise_routes_or_send_other_frames() -> None:
    script = render("strato_sg", [port()], {})
    spoof = chain(script, "from-tapb4c384e6-77")
    assert spoof[:3] == ["ether saddr != fa:16:3e:00:00:01 drop",
                         "ether type != { arp, ip, ip6 } drop",
                         "arp saddr ether != fa:16:3e:00:00:01 drop"]
    drops = ["udp sport 67 udp dport 68 drop", "udp sport 547 udp dport 546 drop",
             "icmpv6 type { nd-router-advert, nd-redirect } drop"]
    assert spoof[3:6] == drops
    # ... before anything in the chain accepts a packet.
    assert spoof.index("ip saddr 0.0.0.0 udp sport 68 udp dport 67 accept") > 5


def test_a_port_with_bad_values_is_left_out_and_blocked(
        caplog: pytest.LogCaptureFixture) -> None:
    good = port(rules=tuple(accepted_rules()[:2]))
    bad = [port(device="tapaaaaaaaa-01", mac="fa:16:3e:00:00:02\n"),
           port(device="tapaaaaaaaa-02", mac="fa:16:3e:00:00:02 drop"),
           port(device="tapaaaaaaaa-03", ips=("10.0.0.5; flush ruleset",)),
           port(device='x"; flush ruleset')]
    with caplog.at_level(logging.ERROR, logger="strato.network.firewall"):
        script = render("strato_sg", [bad[0], good, *bad[1:]], {GROUP: ["10.0.0.9", "x\n"]})
    assert "flush" not in script and "\ndrop" not in script and "x\n" not in script
    # The good port is filtered as ever...
    assert 'iifname "tapb4c384e6-77" jump from-tapb4c384e6-77' in script
    assert len(chain(script, "to-tapb4c384e6-77")) == 4
    # ... the bad ones' devices pass nothing either way.
    blocked = '{ "tapaaaaaaaa-01", "tapaaaaaaaa-02", "tapaaaaaaaa-03" }'
    assert chain(script, "from_ports")[1] == f"iifname {blocked} drop"
    assert chain(script, "to_ports")[1] == f"oifname {blocked} drop"
    assert "from-tapaaaaaaaa" not in script
    assert len([r for r in caplog.records if r.levelno == logging.ERROR]) == 5


def test_a_rule_that_cannot_be_rendered_is_left_out() -> None:
    good = rule_from(RuleSpec(direction="ingress", protocol="tcp", port_range_min=22,
                              port_range_max=22))
    unknown = SecurityGroupRule(id="r2", security_group_id=GROUP, project_id=ProjectId("p"),
                                direction=Direction.INGRESS, protocol="bogus")
    wrong_prefix = SecurityGroupRule(id="r3", security_group_id=GROUP,
                                     project_id=ProjectId("p"), direction=Direction.INGRESS,
                                     remote_ip_prefix="not a prefix")
    script = render("strato_sg", [port(rules=(unknown, good, wrong_prefix))], {})
    assert chain(script, "to-tapb4c384e6-77") == [
        "udp sport 67 udp dport 68 accept",
        "meta nfproto ipv4 meta l4proto 6 tcp dport 22 accept", "drop"]


def test_blocked_devices_pass_nothing_and_filtered_ones_are_never_blocked() -> None:
    script = render("strato_sg", [port()], {},
                    blocked=["tapcccccccc-01", "tapb4c384e6-77", "bad name\n"])
    assert chain(script, "from_ports")[1] == 'iifname { "tapcccccccc-01" } drop'
    assert chain(script, "to_ports")[1] == 'oifname { "tapcccccccc-01" } drop'
    assert "bad name" not in script
    assert 'iifname "tapb4c384e6-77" jump from-tapb4c384e6-77' in script
