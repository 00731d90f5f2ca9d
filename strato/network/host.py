"""A compute host's data plane: what the compute plugs before a guest starts and
unplugs after it is destroyed, and the firewall that follows every change.

:class:`LinuxBridgeHost` is the real one (Neutron's Linux bridge agent and iptables
firewall driver, in one object): a tap per port on its network's bridge, and nftables
rules for every port bound to this host, rebuilt from the conductor's
:class:`~strato.domain.networks.HostPorts` whenever ports or security groups change
(the network fanout) and every ``resync_interval`` anyway. A full pass also re-plugs the
host's ports (after a host restart the taps are gone) and removes taps and bridges that
no port or network owns any more.

:class:`FakeHostNetwork` implements the same interface in memory, for the fake virt
driver's hosts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from strato.domain.context import RequestContext
from strato.domain.devices import tap_name
from strato.domain.ids import HostName
from strato.domain.networks import HostPorts, Vif
from strato.network.firewall import Firewall, PortFilter
from strato.network.linuxbridge import LinuxBridge

__all__ = ["FakeHostNetwork", "HostNetwork", "HostPortsSource", "LinuxBridgeHost"]

logger = logging.getLogger(__name__)


class HostNetwork(Protocol):
    async def plug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        """Plug the instance's ports (taps on their bridges, firewall applied); called
        before the guest starts."""
        ...

    async def unplug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        """Remove the ports' taps (gone ones are fine); called after the guest is
        destroyed."""
        ...

    async def refresh(self, ctx: RequestContext, *, full: bool = False) -> None:
        """Bring the firewall in line with the ports bound here; ``full`` also re-plugs
        them and removes stale devices (at start and every resync interval)."""
        ...

    async def close(self) -> None:
        """Stop; plugged ports stay (their guests keep running)."""
        ...


class HostPortsSource(Protocol):
    """Where the host reads what is bound to it (the conductor's client, which reads the
    database for computes)."""

    async def host_network_state(self, ctx: RequestContext, host: HostName) -> HostPorts:
        """The ports bound to ``host``, with their networks and security groups."""
        ...


@dataclass
class _Passes:
    """Passes run one at a time (two ``nft -f`` runs from different reads must not race,
    or an older ruleset could replace a newer one). A request is served by any pass that
    starts after it was made, so a burst of 50 changes costs one or two passes, not 50;
    a full pass always runs."""

    requested: int = 0
    done: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class LinuxBridgeHost:
    def __init__(self, host: HostName, conductor: HostPortsSource, *,
                 bridge: LinuxBridge | None = None, firewall: Firewall | None = None) -> None:
        self.host = host
        self._conductor = conductor
        self._bridge = bridge or LinuxBridge()
        self._firewall = firewall or Firewall()
        self._passes = _Passes()
        # Every tap this host plugged and has not unplugged: the firewall filters each by
        # its port's rules or, when the port is not (or no longer) among the host's
        # filtered ports, blocks it. Which port fields a tenant sets never matters.
        self._taps: set[str] = set()

    async def plug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        for vif in vifs:
            self._taps.add(tap_name(vif.port_id))
            await self._bridge.plug(vif.port_id, vif.network_id, vif.mac_address, vif.mtu)
        if vifs:
            await self.refresh(ctx)

    async def unplug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        for vif in vifs:
            await self._bridge.unplug(vif.port_id)
            self._taps.discard(tap_name(vif.port_id))
        if vifs:
            await self.refresh(ctx)

    async def refresh(self, ctx: RequestContext, *, full: bool = False) -> None:
        passes = self._passes
        passes.requested += 1
        wanted = passes.requested
        async with passes.lock:
            if passes.done >= wanted and not full:
                return  # a pass that started after this request already ran
            passes.done = passes.requested
            state = await self._conductor.host_network_state(ctx, self.host)
            if full:
                await self._replug(state)
            filters = _filters(state)
            await self._firewall.apply(filters, state.members,
                                       blocked=sorted(self._taps - {f.device for f in filters}))

    async def _replug(self, state: HostPorts) -> None:
        """Each port's tap back on its bridge (one that fails is logged and the others
        still plugged), then devices no port or network owns removed."""
        kept = [p.port_id for p in state.ports if _device(p.port_id) is not None]
        for port in state.ports:
            try:
                await self._bridge.plug(port.port_id, port.network_id, port.mac_address,
                                        port.mtu)
            except Exception:  # one bad port must not keep the others unplugged
                logger.exception("could not plug port %r", port.port_id)
                continue
            self._taps.add(tap_name(port.port_id))
        removed = await self._bridge.cleanup(kept, state.networks)
        self._taps -= set(removed)
        if removed:
            logger.info("removed stale network devices: %s", ", ".join(removed))

    async def close(self) -> None:
        return None


def _device(port_id: str) -> str | None:
    """The port's tap, or None (logged) when its id cannot name one."""
    try:
        return tap_name(port_id)
    except ValueError as exc:
        logger.error("port %r has no device here: %s", port_id, exc)
        return None


def _filters(state: HostPorts) -> list[PortFilter]:
    """The firewall's view of each port; one whose id names no device is left out (the
    firewall itself leaves out, and blocks, the ones whose values are not valid)."""
    return [PortFilter(device=device, mac=port.mac_address, ips=port.ips, rules=port.rules)
            for port in state.ports if (device := _device(port.port_id)) is not None]


@dataclass
class FakeHostNetwork:
    """The data plane in memory: which ports are plugged here, and in what order."""

    plugged: dict[str, Vif] = field(default_factory=dict)
    history: list[tuple[str, str]] = field(default_factory=list)

    async def plug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        del ctx
        for vif in vifs:
            self.plugged[vif.port_id] = vif
            self.history.append(("plug", vif.port_id))

    async def unplug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        del ctx
        for vif in vifs:
            self.plugged.pop(vif.port_id, None)
            self.history.append(("unplug", vif.port_id))

    async def refresh(self, ctx: RequestContext, *, full: bool = False) -> None:
        del ctx, full  # nothing to filter in memory

    async def close(self) -> None:
        return None
