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
from typing import TYPE_CHECKING, Protocol

from strato.domain.context import RequestContext
from strato.domain.ids import HostName
from strato.domain.networks import HostPorts, Vif
from strato.network.firewall import Firewall, PortFilter
from strato.network.linuxbridge import LinuxBridge, tap_name

if TYPE_CHECKING:
    from strato.conductor.client import ConductorClient

__all__ = ["FakeHostNetwork", "HostNetwork", "LinuxBridgeHost"]

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
    def __init__(self, host: HostName, conductor: ConductorClient, *,
                 bridge: LinuxBridge | None = None, firewall: Firewall | None = None) -> None:
        self.host = host
        self._conductor = conductor
        self._bridge = bridge or LinuxBridge()
        self._firewall = firewall or Firewall()
        self._passes = _Passes()

    async def plug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        for vif in vifs:
            await self._bridge.plug(vif.port_id, vif.network_id, vif.mac_address, vif.mtu)
        if vifs:
            await self.refresh(ctx)

    async def unplug(self, ctx: RequestContext, vifs: Sequence[Vif]) -> None:
        for vif in vifs:
            await self._bridge.unplug(vif.port_id)
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
            await self._firewall.apply(
                [PortFilter(device=tap_name(p.port_id), mac=p.mac_address, ips=p.ips,
                            rules=p.rules) for p in state.ports],
                state.members)

    async def _replug(self, state: HostPorts) -> None:
        for port in state.ports:
            await self._bridge.plug(port.port_id, port.network_id, port.mac_address, port.mtu)
        removed = await self._bridge.cleanup((p.port_id for p in state.ports), state.networks)
        if removed:
            logger.info("removed stale network devices: %s", ", ".join(removed))

    async def close(self) -> None:
        return None


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
