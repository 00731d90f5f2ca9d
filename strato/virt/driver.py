"""The virt driver port: what the compute service asks of a hypervisor.

``strato.virt.fake`` implements it in memory (tests, scale benchmarks); the libvirt
driver implements it for real. Errors a driver raises are domain errors:
``RescheduleBuild`` when another host might succeed, ``AbortBuild`` when none would.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from strato.domain.ids import InstanceId, NodeName
from strato.domain.instances import PowerState
from strato.domain.requests import BootRequest
from strato.domain.resources import NodeCapacity

__all__ = ["GuestInfo", "VirtDriver"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestInfo:
    """What the hypervisor says about one guest."""

    instance_id: InstanceId
    power_state: PowerState
    node: NodeName


class VirtDriver(Protocol):
    async def start(self) -> None:
        """Connect to the hypervisor; called once before anything else."""
        ...

    async def node_capacities(self) -> Sequence[NodeCapacity]:
        """Every node this driver manages, with its total capacity."""
        ...

    async def spawn(self, req: BootRequest, *, node: NodeName) -> None:
        """Create and start the guest; return once it runs."""
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

    async def close(self) -> None:
        """Release the connection."""
        ...
