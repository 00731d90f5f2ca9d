"""The compute node repository: capacity, claims, allocations (its adapter:
:mod:`strato.db._nodes`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from strato.domain.ids import HostName, InstanceId, NodeName
from strato.domain.requests import Destination
from strato.domain.resources import Allocation, NodeCapacity, NodeUsage, Resources

__all__ = ["AllocationHealing", "ComputeServiceState", "HealedAllocation", "NodeChanges",
           "NodeRecord", "NodeRepo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HealedAllocation:
    """One allocation :meth:`NodeRepo.heal_host` removed or created, and why."""

    allocation: Allocation
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationHealing:
    """What :meth:`NodeRepo.heal_host` changed; ``skipped`` says what looked wrong but was
    left alone (an allocation of an unknown instance, an instance on no known node)."""

    removed: tuple[HealedAllocation, ...] = ()
    created: tuple[HealedAllocation, ...] = ()
    skipped: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """One ``compute_nodes`` row: capacity, usage, and the generation every change bumps."""

    capacity: NodeCapacity
    used: Resources
    instances: int
    generation: int
    failed_builds: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeServiceState:
    """The compute service of one host, as placement needs it."""

    host: HostName
    last_seen: datetime | None
    disabled: bool = False
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeChanges:
    """What :meth:`NodeRepo.changes` read, and when."""

    nodes: tuple[NodeRecord, ...]
    services: tuple[ComputeServiceState, ...]
    read_at: datetime


class NodeRepo(Protocol):
    async def report(self, capacities: Sequence[NodeCapacity]) -> None:
        """Insert or update the nodes' totals and ratios (usage is left alone)."""
        ...

    async def usages(self) -> list[NodeUsage]:
        """Every node with its usage and its compute service's state (up, disabled)."""
        ...

    async def exists(self, *, host: HostName | None = None, node: NodeName | None = None,
                     unzoned: bool = False) -> bool:
        """Whether a compute node matches (on ``host``, called ``node``, on a host in no
        availability zone), without reading every node."""
        ...

    async def claim(self, instance_id: InstanceId, dest: Destination, need: Resources) -> bool:
        """Atomically allocate ``need`` on ``dest`` for the instance, moving any allocation
        the instance already holds. False (and no change) when it no longer fits."""
        ...

    async def claim_node(self, instance_id: InstanceId, dest: Destination,
                         need: Resources) -> NodeRecord | None:
        """:meth:`claim`, answering the claimed node's row after the claim (or None)."""
        ...

    async def changes(self, since: datetime | None) -> NodeChanges:
        """Nodes and compute services changed at or after ``since`` (all when None)."""
        ...

    async def record_build(self, dest: Destination, *, succeeded: bool) -> None:
        """Count a failed build on the node, or reset its count after a success."""
        ...

    async def release(self, instance_id: InstanceId) -> None:
        """Free every allocation of the instance; idempotent."""
        ...

    async def allocations(self, instance_id: InstanceId) -> list[Allocation]: ...

    async def heal_host(self, host: HostName) -> AllocationHealing:
        """Make the allocations on ``host``'s nodes match the instances on it, in one
        transaction. Removed: those of deleted instances and, when no task is in
        progress, of instances on another host (or none) or that hold nothing
        (:func:`holds_resources`). Created: one on its node for every instance on the
        host that holds resources, has no task in progress and no allocation here, with
        no limit check (it runs there already). An allocation of an instance being
        scheduled, or of an instance with no record, is left alone."""
        ...
