"""The host devices a network and a port get, named as Neutron's Linux bridge agent
names them: one bridge per network (``brq`` + the network id's first 11 characters), one
tap per port (``tap`` + the port id's first 11). Names are built from UUIDs, never from
user text; the data plane (:mod:`strato.network.linuxbridge`) and the libvirt driver
(which gives a guest's NIC its tap) both name them here."""

from __future__ import annotations

import re

__all__ = ["BRIDGE_PREFIX", "TAP_PREFIX", "bridge_name", "tap_mac", "tap_name"]

BRIDGE_PREFIX = "brq"
TAP_PREFIX = "tap"
_ID = re.compile(r"^[0-9a-f-]{11,}$")


def _short(resource_id: str) -> str:
    if not _ID.fullmatch(resource_id):
        raise ValueError(f"not a resource id: {resource_id!r}")
    return resource_id[:11]


def bridge_name(network_id: str) -> str:
    """The network's bridge on every host (14 characters, under Linux's 15)."""
    return BRIDGE_PREFIX + _short(network_id)


def tap_name(port_id: str) -> str:
    """The port's tap device on its host."""
    return TAP_PREFIX + _short(port_id)


def tap_mac(port_mac: str) -> str:
    """The host side's MAC: the port's with ``fe`` first (as Nova gives taps), so the
    bridge never learns the guest's own address on the host end."""
    return "fe" + port_mac[2:]
