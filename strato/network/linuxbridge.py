"""The data plane on one host, as Neutron's Linux bridge agent builds it: one bridge per
network (``brq`` + the network id's first 11 characters), one tap per port (``tap`` + the
port id's first 11; :mod:`strato.domain.devices` names them), plugged into its network's
bridge before the guest starts.

Bridges and taps carry no IP address, not even an IPv6 link-local one (``addrgenmode
none`` is set before a device goes up): the host's root namespace never talks on a VM
network. Every operation is idempotent — plugging a plugged port, unplugging a gone one
or deleting a missing bridge changes nothing — so a compute can replay them after a
restart, and :meth:`LinuxBridge.cleanup` removes devices no port or network owns any
more. Commands run without a shell (``ip`` with an argument list); names are built from
UUIDs, never from user text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from strato.domain.devices import TAP_PREFIX, bridge_name, tap_mac, tap_name
from strato.process import execute

__all__ = ["Device", "LinuxBridge"]

# Only devices named as strato.domain.devices names them are ever touched (never vnetN,
# virbrN...).
_OURS = re.compile(r"^(brq|tap)[0-9a-f-]{11}$")

Runner = Callable[..., Awaitable[bytes]]


@dataclass(frozen=True, slots=True)
class Device:
    name: str
    master: str | None
    mtu: int
    up: bool
    addresses: tuple[str, ...]


class LinuxBridge:
    def __init__(self, run: Runner = execute) -> None:
        self._run = run

    async def devices(self) -> dict[str, Device]:
        """Our bridges and taps on this host, with master, MTU and addresses."""
        raw = json.loads(await self._run("ip", "-j", "addr", "show") or b"[]")
        return {d["ifname"]: Device(name=d["ifname"], master=d.get("master"),
                                    mtu=int(d.get("mtu", 0)), up="UP" in d.get("flags", ()),
                                    addresses=tuple(a.get("local", "")
                                                    for a in d.get("addr_info", ())))
                for d in raw if _OURS.fullmatch(d["ifname"])}

    async def exists(self, name: str) -> bool:
        """Whether the device ``name`` exists on this host (any device, not only ours)."""
        try:
            await self._run("ip", "link", "show", "dev", name)
        except Exception:  # noqa: BLE001 - "does not exist" is the answer
            return False
        return True

    async def ensure_bridge(self, network_id: str, mtu: int) -> str:
        """The network's bridge, created (up, no address) if missing."""
        name = bridge_name(network_id)
        if not await self.exists(name):
            await self._run("ip", "link", "add", "name", name, "type", "bridge")
            await self._run("ip", "link", "set", "dev", name, "addrgenmode", "none")
        await self._run("ip", "link", "set", "dev", name, "mtu", str(mtu), "up")
        return name

    async def plug(self, port_id: str, network_id: str, mac: str, mtu: int) -> str:
        """The port's tap, created if missing and plugged into the network's bridge."""
        bridge = await self.ensure_bridge(network_id, mtu)
        tap = tap_name(port_id)
        if not await self.exists(tap):
            await self._run("ip", "tuntap", "add", "dev", tap, "mode", "tap")
            await self._run("ip", "link", "set", "dev", tap, "addrgenmode", "none")
        await self._run("ip", "link", "set", "dev", tap, "address", tap_mac(mac),
                        "mtu", str(mtu), "master", bridge, "up")
        return tap

    async def unplug(self, port_id: str) -> None:
        """Remove the port's tap (nothing to do when it is gone)."""
        tap = tap_name(port_id)
        if await self.exists(tap):
            await self._run("ip", "link", "del", "dev", tap)

    async def delete_bridge(self, network_id: str) -> None:
        """Remove the network's bridge (nothing to do when it is gone)."""
        name = bridge_name(network_id)
        if await self.exists(name):
            await self._run("ip", "link", "del", "dev", name)

    async def cleanup(self, ports: Iterable[str], networks: Iterable[str]) -> list[str]:
        """Delete our taps and bridges that belong to no port or network in the given
        sets (the compute passes its own, at start). Taps go first. Returns the names."""
        keep = {tap_name(p) for p in ports} | {bridge_name(n) for n in networks}
        found = await self.devices()
        stale = sorted((name for name in found if name not in keep),
                       key=lambda name: (not name.startswith(TAP_PREFIX), name))
        for name in stale:
            await self._run("ip", "link", "del", "dev", name)
        return stale
