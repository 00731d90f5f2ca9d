"""An in-memory virt driver: for tests, scale benchmarks and ``strato up --driver fake``.

It follows the :class:`~strato.virt.driver.VirtDriver` contract exactly, manages any
number of nodes per host (so one compute process can stand in for a rack), and injects
failures on demand: spawns of named instances, or every Nth spawn, fail with
``RescheduleBuild`` (or ``AbortBuild`` when configured not retryable).

A guest exists from the start of its spawn (as a hypervisor's domain and disk do, shut
off until it boots) and is removed again when its spawn fails. With ``state_file`` the
guests are kept in that JSON file too, so they outlive the compute process as a
hypervisor's would (a killed compute finds them again at start, and a test can read
what the host holds).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from strato.domain.errors import AbortBuild, InvalidState, NotFound, RescheduleBuild
from strato.domain.ids import HostName, InstanceId, NodeName
from strato.domain.instances import PowerState
from strato.domain.networks import Vif
from strato.domain.requests import BootRequest
from strato.domain.resources import Flavor, NodeCapacity, Resources
from strato.virt.driver import GuestInfo

__all__ = ["FakeDriver", "FakeDriverConfig", "FakeDriverStatistics"]


@dataclass(frozen=True, slots=True, kw_only=True)
class FakeDriverConfig:
    host: HostName
    nodes: int = 1
    capacity: Resources = Resources(vcpus=16, memory_mb=32768, disk_gb=500)
    spawn_delay: float = 0.0
    console_delay: float = 0.0  # seconds from the spawn to the first console line
    fail_names: frozenset[str] = frozenset()
    fail_every: int = 0
    fail_retryable: bool = True
    overhead: Resources = Resources()
    state_file: Path | None = None


@dataclass(frozen=True, slots=True)
class FakeDriverStatistics:
    spawned: int
    failed: int
    running: int


@dataclass
class _Guest:
    node: NodeName
    power_state: PowerState = PowerState.RUNNING
    console: list[str] = field(default_factory=list)
    macs: tuple[str, ...] = ()
    quiet_until: float = 0.0  # loop time before which the console shows nothing


@dataclass
class FakeDriver:
    """See the module docstring."""

    config: FakeDriverConfig
    _guests: dict[InstanceId, _Guest] = field(default_factory=dict)
    _spawning: set[InstanceId] = field(default_factory=set)  # defined, not booted yet
    _spawn_count: int = 0
    _failed: int = 0
    _started: bool = False

    async def start(self) -> None:
        self._started = True
        self._load()

    def _load(self) -> None:
        path = self.config.state_file
        if path is None or not path.exists():
            return
        for iid, saved in json.loads(path.read_text())["guests"].items():
            self._guests[InstanceId(iid)] = _Guest(
                node=NodeName(saved["node"]), power_state=PowerState(saved["power_state"]),
                console=list(saved["console"]), macs=tuple(saved["macs"]))

    def _save(self) -> None:
        path = self.config.state_file
        if path is None:
            return
        guests = {iid: {"node": g.node, "power_state": int(g.power_state),
                        "console": g.console, "macs": list(g.macs)}
                  for iid, g in self._guests.items()}
        temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temp.write_text(json.dumps({"host": self.config.host, "guests": guests}))
        os.replace(temp, path)

    def node_names(self) -> list[NodeName]:
        if self.config.nodes == 1:
            return [NodeName(self.config.host)]
        return [NodeName(f"{self.config.host}-n{i}") for i in range(self.config.nodes)]

    async def node_capacities(self) -> Sequence[NodeCapacity]:
        return [NodeCapacity(host=self.config.host, node=node, total=self.config.capacity,
                             cpu_info='{"arch": "x86_64"}',
                             supported_instances=(("x86_64", "fake", "hvm"),))
                for node in self.node_names()]

    def instance_overhead(self, flavor: Flavor) -> Resources:
        return self.config.overhead

    async def prepare_image(self, req: BootRequest) -> None:
        del req  # nothing to fetch: fake guests have no disks

    async def spawn(self, req: BootRequest, *, node: NodeName,
                    vifs: Sequence[Vif] = ()) -> None:
        if not self._started:
            raise InvalidState("driver not started")
        if node not in self.node_names():
            raise AbortBuild(f"node {node} is not on host {self.config.host}")
        self._spawn_count += 1
        # Defined (its disk made) at once, shut off until it boots.
        guest = _Guest(node=node, power_state=PowerState.SHUTDOWN,
                       macs=tuple(v.mac_address for v in vifs))
        self._guests[req.instance_id] = guest
        self._spawning.add(req.instance_id)
        self._save()
        try:
            if self.config.spawn_delay:
                await asyncio.sleep(self.config.spawn_delay)
            self._maybe_fail(req)
        except BaseException:
            if self._guests.get(req.instance_id) is guest:
                del self._guests[req.instance_id]
                self._save()
            raise
        finally:
            self._spawning.discard(req.instance_id)
        guest.power_state = PowerState.RUNNING
        guest.console.append(f"fake-guest: uuid={req.instance_id} booted on {node}")
        guest.quiet_until = asyncio.get_running_loop().time() + self.config.console_delay
        self._save()

    def _maybe_fail(self, req: BootRequest) -> None:
        every = self.config.fail_every
        if req.name in self.config.fail_names or (every and self._spawn_count % every == 0):
            self._failed += 1
            error = RescheduleBuild if self.config.fail_retryable else AbortBuild
            raise error(f"injected spawn failure of {req.name} on {self.config.host}")

    async def destroy(self, instance_id: InstanceId) -> None:
        if self._guests.pop(instance_id, None) is not None:
            self._save()

    async def get_info(self, instance_id: InstanceId) -> GuestInfo:
        guest = self._guest(instance_id)
        return GuestInfo(instance_id=instance_id, power_state=guest.power_state,
                         node=guest.node)

    async def list_instances(self) -> Sequence[InstanceId]:
        return list(self._guests)

    def _guest(self, instance_id: InstanceId) -> _Guest:
        guest = self._guests.get(instance_id)
        if guest is None:
            raise NotFound(f"no guest {instance_id} on {self.config.host}")
        return guest

    def _move(self, instance_id: InstanceId, allowed: tuple[PowerState, ...],
              new: PowerState, line: str) -> None:
        """Change a guest's power state as a hypervisor would, refusing what a real one
        refuses (pausing a stopped guest, say)."""
        guest = self._guest(instance_id)
        if guest.power_state not in allowed:
            raise InvalidState(f"guest {instance_id} is {guest.power_state.name.lower()}")
        guest.power_state = new
        guest.console.append(f"fake-guest: {line}")
        self._save()

    async def reboot(self, instance_id: InstanceId, *, hard: bool = False) -> None:
        guest = self._guest(instance_id)
        guest.power_state = PowerState.RUNNING
        guest.console.append(f"fake-guest: {'hard' if hard else 'soft'} reboot")
        self._save()

    async def power_off(self, instance_id: InstanceId, *, timeout: float | None = None) -> None:
        self._move(instance_id, tuple(PowerState), PowerState.SHUTDOWN, "power off")

    async def power_on(self, instance_id: InstanceId) -> None:
        self._move(instance_id, (PowerState.SHUTDOWN, PowerState.RUNNING,
                                 PowerState.CRASHED), PowerState.RUNNING, "power on")

    async def pause(self, instance_id: InstanceId) -> None:
        self._move(instance_id, (PowerState.RUNNING,), PowerState.PAUSED, "paused")

    async def unpause(self, instance_id: InstanceId) -> None:
        self._move(instance_id, (PowerState.PAUSED,), PowerState.RUNNING, "unpaused")

    async def suspend(self, instance_id: InstanceId) -> None:
        self._move(instance_id, (PowerState.RUNNING, PowerState.PAUSED),
                   PowerState.SUSPENDED, "suspended")

    async def resume(self, instance_id: InstanceId) -> None:
        self._move(instance_id, (PowerState.SUSPENDED,), PowerState.RUNNING, "resumed")

    async def console_output(self, instance_id: InstanceId, *, max_bytes: int = 100 * 1024
                             ) -> str:
        guest = self._guest(instance_id)
        if asyncio.get_running_loop().time() < guest.quiet_until:
            return ""  # still booting
        text = "".join(line + "\n" for line in guest.console)
        return text[-max_bytes:]

    async def close(self) -> None:
        self._started = False

    def statistics(self) -> FakeDriverStatistics:
        return FakeDriverStatistics(spawned=self._spawn_count, failed=self._failed,
                                    running=len(self._guests.keys() - self._spawning))

    def nics(self, instance_id: InstanceId) -> tuple[str, ...]:
        """The MACs of the guest's NICs, in order (``NotFound`` for an unknown guest)."""
        guest = self._guests.get(instance_id)
        if guest is None:
            raise NotFound(f"no guest {instance_id} on {self.config.host}")
        return guest.macs

