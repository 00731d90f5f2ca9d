"""Messages the conductor serves (topic ``conductor``).

The first two drive builds; the rest are the database proxy computes use, since a
compute never opens the database itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.actions import EventResult
from strato.domain.ids import HostName, InstanceId, RequestId
from strato.domain.instances import InstanceChanges, TaskState
from strato.domain.requests import BootRequest, Destination
from strato.domain.resources import NodeCapacity

__all__ = ["BuildInstances", "FinishEvent", "GetInstance", "HealAllocations",
           "InstancesOnHost", "ListInstanceActions", "ReleaseAllocations", "ReportNodes",
           "RescheduleInstance", "SoftDeleteInstance", "StartEvent", "UpdateInstance", "TOPIC"]

TOPIC = "conductor"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildInstances:
    """Schedule and build these instances (cast by the API after writing their rows)."""

    requests: tuple[BootRequest, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RescheduleInstance:
    """A build failed on ``failed_host`` in a retryable way; try the alternates."""

    request: BootRequest
    failed_host: HostName
    alternates: tuple[Destination, ...]
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class UpdateInstance:
    """Compare-and-swap write of an instance's state (returns the updated Instance)."""

    instance_id: InstanceId
    changes: InstanceChanges
    expected_task_state: tuple[TaskState | None, ...] | None


@dataclass(frozen=True, slots=True, kw_only=True)
class GetInstance:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftDeleteInstance:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseAllocations:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class StartEvent:
    instance_id: InstanceId
    request_id: RequestId
    event: str
    host: HostName | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class FinishEvent:
    instance_id: InstanceId
    request_id: RequestId
    event: str
    result: EventResult
    traceback: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReportNodes:
    """A compute's periodic report: its nodes' capacity, which doubles as its heartbeat."""

    host: HostName
    capacities: tuple[NodeCapacity, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class InstancesOnHost:
    """The non-deleted instances whose ``host`` is ``host`` (answers ``list[Instance]``):
    what a compute reconciles at start-up and audits periodically."""

    host: HostName


@dataclass(frozen=True, slots=True, kw_only=True)
class HealAllocations:
    """Make the allocations on ``host``'s nodes match its instances (answers an
    ``AllocationHealing``); see ``NodeRepo.heal_host``."""

    host: HostName


@dataclass(frozen=True, slots=True, kw_only=True)
class ListInstanceActions:
    """The instance's actions with their events, newest first (answers
    ``list[InstanceAction]``): a restarted compute finds the requests whose work its
    previous run left unfinished."""

    instance_id: InstanceId
