"""Security group rules as Neutron checks them: protocols, port ranges, ICMP type and
code, remote prefixes, and when two rules are the same rule. Pure functions; the errors
are domain errors named after Neutron's exceptions, so an API mapping that shows the
class name shows Neutron's ``type`` (``SecurityGroupRuleExists``).

Neutron's quota defaults (:data:`SECURITY_GROUP_QUOTA`, :data:`SECURITY_GROUP_RULE_QUOTA`)
live here too: the default group and its rules count, as in Neutron.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from strato.domain.errors import Conflict, Invalid, NotFound, OverQuota
from strato.domain.networks import DEFAULT_SECURITY_GROUP, Direction

__all__ = ["ETHERTYPES", "ICMP_PROTOCOLS", "PORT_PROTOCOLS", "PROTOCOLS",
           "SECURITY_GROUP_QUOTA", "SECURITY_GROUP_RULE_QUOTA", "RuleSpec",
           "SecurityGroupCannotRemoveDefault", "SecurityGroupCannotUpdateDefault",
           "SecurityGroupDefaultAlreadyExists", "SecurityGroupInUse",
           "SecurityGroupNotFound", "SecurityGroupRuleExists", "SecurityGroupRuleNotFound",
           "SecurityGroupRuleInvalid", "SecurityGroupQuotaExceeded", "is_default_name",
           "protocol_number", "same_rule", "validate_rule"]

SECURITY_GROUP_QUOTA = 10
SECURITY_GROUP_RULE_QUOTA = 100

ETHERTYPES = ("IPv4", "IPv6")

# Neutron's IP_PROTOCOL_MAP (neutron_lib.constants): the names a rule may use.
PROTOCOLS: dict[str, int] = {
    "ah": 51, "dccp": 33, "egp": 8, "esp": 50, "gre": 47, "hopopt": 0, "icmp": 1,
    "igmp": 2, "ip": 0, "ipip": 4, "ipv6-encap": 41, "ipv6-frag": 44, "ipv6-icmp": 58,
    "icmpv6": 58, "ipv6-nonxt": 59, "ipv6-opts": 60, "ipv6-route": 43, "ospf": 89,
    "pgm": 113, "rsvp": 46, "sctp": 132, "tcp": 6, "udp": 17, "udplite": 136, "vrrp": 112,
}
# Protocols with ports (Neutron's SG_PORT_PROTO_NUMS) and with ICMP type/code.
PORT_PROTOCOLS = frozenset({6, 17, 33, 132, 136})
ICMP_PROTOCOLS = frozenset({1, 58})
_IPV6_ONLY = frozenset({"icmpv6", "ipv6-icmp", "ipv6-encap", "ipv6-frag", "ipv6-nonxt",
                        "ipv6-opts", "ipv6-route"})


class SecurityGroupNotFound(NotFound):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security group {group_id} does not exist")


class SecurityGroupRuleNotFound(NotFound):
    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule {rule_id} does not exist")


class SecurityGroupRuleExists(Conflict):
    def __init__(self, rule_id: str) -> None:
        super().__init__(f"Security group rule already exists. Rule id is {rule_id}.")


class SecurityGroupInUse(Conflict):
    def __init__(self, group_id: str) -> None:
        super().__init__(f"Security Group {group_id} in use.")


class SecurityGroupCannotRemoveDefault(Conflict):
    def __init__(self) -> None:
        super().__init__("Insufficient rights for removing default security group.")


class SecurityGroupCannotUpdateDefault(Invalid):
    """Renaming the ``default`` group (Neutron answers 409; strato 400, see docs)."""

    def __init__(self) -> None:
        super().__init__("Updating default security group not allowed.")


class SecurityGroupDefaultAlreadyExists(Invalid):
    """Naming another group ``default`` (Neutron answers 409; strato 400, see docs)."""

    def __init__(self) -> None:
        super().__init__("Default security group already exists.")


class SecurityGroupRuleInvalid(Invalid):
    """Any refused rule attribute (Neutron has one exception class per check)."""


class SecurityGroupQuotaExceeded(OverQuota):
    def __init__(self, resource: str) -> None:
        super().__init__(f"Quota exceeded for resources: ['{resource}'].")


def is_default_name(name: str) -> bool:
    """Whether ``name`` is reserved for the project's default group (any case)."""
    return name.lower() == DEFAULT_SECURITY_GROUP


def protocol_number(protocol: str | None) -> int | None:
    """The IP protocol number of a rule's protocol (a name or a number), None for any."""
    if protocol is None:
        return None
    return PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)


@dataclass(frozen=True, slots=True, kw_only=True)
class RuleSpec:
    """A rule's matching attributes, as given (before :func:`validate_rule`)."""

    direction: str
    ethertype: str = "IPv4"
    protocol: str | None = None
    port_range_min: int | None = None
    port_range_max: int | None = None
    remote_ip_prefix: str | None = None
    remote_group_id: str | None = None


def _protocol(value: str | None) -> str | None:
    if value is None or value.lower() == "any":
        return None
    lowered = value.lower()
    if lowered in PROTOCOLS:
        return lowered
    if value.isascii() and value.isdigit() and int(value) <= 255:
        return str(int(value))
    raise SecurityGroupRuleInvalid(
        f"Security group rule protocol {value} not supported. Only protocol values "
        f"{[None, *sorted(PROTOCOLS)]} and integer representations [0 to 255] are "
        "supported.")


def _prefix(value: str | None, ethertype: str) -> str | None:
    if value is None:
        return None
    try:
        network = ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise SecurityGroupRuleInvalid(
            f"Invalid input for remote_ip_prefix. Reason: '{value}' is not a valid IP "
            "prefix.") from None
    if f"IPv{network.version}" != ethertype:
        raise SecurityGroupRuleInvalid(
            f"Conflicting value ethertype {ethertype} for CIDR {value}")
    return str(network)


def _ports(protocol: str | None, low: int | None, high: int | None) -> None:
    for value in (low, high):
        if value is not None and not 0 <= value <= 65535:
            raise SecurityGroupRuleInvalid(f"Invalid value for port {value}")
    if low is None and high is None:
        return
    if protocol is None:
        raise SecurityGroupRuleInvalid("Must also specify protocol if port range is given.")
    number = protocol_number(protocol)
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise SecurityGroupRuleInvalid("Invalid value for port 0")
        if low is None or high is None or low > high:
            raise SecurityGroupRuleInvalid(
                "For TCP/UDP protocols, port_range_min must be <= port_range_max")
        return
    if number in ICMP_PROTOCOLS:
        for value, field, attr in ((low, "type", "port_range_min"),
                                   (high, "code", "port_range_max")):
            if value is not None and not 0 <= value <= 255:
                raise SecurityGroupRuleInvalid(
                    f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.")
        if low is None:
            raise SecurityGroupRuleInvalid(
                f"ICMP code (port-range-max) {high} is provided but ICMP type "
                "(port-range-min) is missing.")
        return
    raise SecurityGroupRuleInvalid(
        f"Invalid protocol {protocol} for port range, only supported for TCP, UDP, "
        "UDPLITE, SCTP and DCCP protocols.")


def validate_rule(spec: RuleSpec) -> RuleSpec:
    """``spec`` checked and normalised as Neutron does (ethertype spelled ``IPv4``/
    ``IPv6``, protocol names lower case, prefixes as networks); ``Invalid`` naming the
    first problem. Whether ``remote_group_id`` exists is the database's to check."""
    if spec.direction not in tuple(Direction):
        raise SecurityGroupRuleInvalid(
            f"Invalid input for direction. Reason: '{spec.direction}' is not in "
            "['ingress', 'egress'].")
    ethertype = next((e for e in ETHERTYPES if e.lower() == spec.ethertype.lower()), None)
    if ethertype is None:
        raise SecurityGroupRuleInvalid(
            f"Invalid input for ethertype. Reason: '{spec.ethertype}' is not in "
            "['IPv4', 'IPv6'].")
    protocol = _protocol(spec.protocol)
    if protocol in _IPV6_ONLY and ethertype == "IPv4":
        raise SecurityGroupRuleInvalid(
            f"Invalid ethertype {ethertype} for protocol {protocol}.")
    if spec.remote_ip_prefix is not None and spec.remote_group_id is not None:
        raise SecurityGroupRuleInvalid(
            "Only remote_ip_prefix or remote_group_id may be provided.")
    prefix = _prefix(spec.remote_ip_prefix, ethertype)
    _ports(protocol, spec.port_range_min, spec.port_range_max)
    return RuleSpec(direction=spec.direction, ethertype=ethertype, protocol=protocol,
                    port_range_min=spec.port_range_min, port_range_max=spec.port_range_max,
                    remote_ip_prefix=prefix, remote_group_id=spec.remote_group_id)


def _match_key(spec: RuleSpec) -> tuple[object, ...]:
    # A prefix of everything matches like no prefix; a protocol's name like its number.
    prefix = spec.remote_ip_prefix
    if prefix is not None and prefix.endswith("/0"):
        prefix = None
    return (spec.direction, spec.ethertype, protocol_number(spec.protocol),
            spec.port_range_min, spec.port_range_max, prefix, spec.remote_group_id)


def same_rule(a: RuleSpec, b: RuleSpec) -> bool:
    """Whether two (validated) rules match the same traffic: Neutron's duplicate check,
    which ignores the description."""
    return _match_key(a) == _match_key(b)
