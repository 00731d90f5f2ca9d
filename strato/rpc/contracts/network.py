"""What crosses the bus about networks: the fanout that tells every DHCP agent and every
compute to bring its host in line with the Network API's state."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["FANOUT_TOPIC", "NetworksChanged"]

FANOUT_TOPIC = "network_fanout"


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworksChanged:
    """Ports, subnets, networks or security groups changed. Receivers re-read what they
    serve (DHCP hosts files, taps, firewall rules). A lost notice costs at most one
    resync interval, so publishing is best effort."""

    reason: str
