"""The virt driver port: what the compute service asks of a hypervisor.

``strato.virt.fake`` implements it in memory (tests, scale benchmarks); the libvirt
driver implements it for real. Errors a driver raises are domain errors:
``RescheduleBuild`` when another host might succeed, ``AbortBuild`` when none would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from strato.domain.ids import ImageId, InstanceId, NodeName
from strato.domain.images import Image
from strato.domain.instances import PowerState
from strato.domain.networks import Vif
from strato.domain.requests import BootRequest
from strato.domain.resources import Flavor, NodeCapacity, Resources

__all__ = ["GuestInfo", "ImageSource", "VirtDriver"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestInfo:
    """What the hypervisor says about one guest."""

    instance_id: InstanceId
    power_state: PowerState
    node: NodeName


class ImageSource(Protocol):
    """Where a driver gets images: the image service, seen from a compute host."""

    async def get(self, image_id: ImageId) -> Image:
        """The image's record; ``NotFound`` if the caller may not see it."""
        ...

    async def download(self, image_id: ImageId, dest: Path) -> None:
        """Stream the image's data to ``dest`` (complete and checksum-verified, or not
        there at all)."""
        ...


class VirtDriver(Protocol):
    async def start(self) -> None:
        """Connect to the hypervisor; called once before anything else."""
        ...

    async def node_capacities(self) -> Sequence[NodeCapacity]:
        """Every node this driver manages, with its total capacity."""
        ...

    def instance_overhead(self, flavor: Flavor) -> Resources:
        """What a guest of ``flavor`` costs the host beyond the flavor itself (the
        emulator's own memory, say); the compute's claims add it."""
        ...

    async def prepare_image(self, req: BootRequest) -> None:
        """Fetch what the guest's disks are made from into this host's cache. ``spawn``
        does it too when needed; the compute calls this first so the download overlaps
        the allocation of the guest's ports."""
        ...

    async def spawn(self, req: BootRequest, *, node: NodeName,
                    vifs: Sequence[Vif] = ()) -> None:
        """Create and start the guest with a NIC per VIF (their taps are already
        plugged); return once it runs."""
        ...

    async def destroy(self, instance_id: InstanceId) -> None:
        """Stop and remove the guest and its local files; a missing guest is not an error."""
        ...

    async def get_info(self, instance_id: InstanceId) -> GuestInfo:
        """The guest's power state; raises ``NotFound`` for an unknown guest."""
        ...

    async def list_instances(self) -> Sequence[InstanceId]:
        """Every guest this driver knows on this host."""
        ...

    async def reboot(self, instance_id: InstanceId, *, hard: bool = False) -> None:
        """Soft: ask the guest to restart (forcing it after a timeout); hard: reset it."""
        ...

    async def power_off(self, instance_id: InstanceId, *, timeout: float | None = None) -> None:
        """Stop the guest, cleanly if it answers within ``timeout`` seconds."""
        ...

    async def power_on(self, instance_id: InstanceId) -> None:
        """Start a stopped guest."""
        ...

    async def pause(self, instance_id: InstanceId) -> None:
        """Freeze the guest's CPUs (memory stays in the host's RAM)."""
        ...

    async def unpause(self, instance_id: InstanceId) -> None:
        ...

    async def suspend(self, instance_id: InstanceId) -> None:
        """Save the guest's memory to disk and stop it."""
        ...

    async def resume(self, instance_id: InstanceId) -> None:
        ...

    async def console_output(self, instance_id: InstanceId, *, max_bytes: int = 100 * 1024
                             ) -> str:
        """The tail of the guest's serial console."""
        ...

    async def close(self) -> None:
        """Release the connection."""
        ...
