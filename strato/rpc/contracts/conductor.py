"""Messages the conductor serves (topic ``conductor``).

The first two drive builds; the rest are the database proxy computes use, since a
compute never opens the database itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.actions import EventResult, TimedEvent
from strato.domain.ids import HostName, InstanceId, ProjectId, RequestId
from strato.domain.instances import InstanceChanges, TaskState
from strato.domain.networks import PortStatus
from strato.domain.requests import BootRequest, Destination, RequestedNetwork
from strato.domain.resources import NodeCapacity

__all__ = ["AllocateNetworks", "BuildInstances", "FinishEvent", "GetInstance",
           "HealAllocations", "HostNetworkState", "InstanceVifs", "InstancesOnHost",
           "ListInstanceActions", "RecordBuild", "RecordEvents", "ReleaseAllocations",
           "ReleaseNetworks", "ReportNodes", "RescheduleInstance", "SetPortsStatus",
           "RecordSoftDelete", "StartBuild", "StartEvent", "TOPIC", "UpdateInstance"]

TOPIC = "conductor"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildInstances:
    """Schedule and build these instances (cast by the API after writing their rows)."""

    requests: tuple[BootRequest, ...]
    # A multi-create's min_count: build as many as fit, at least this many (None: all).
    min_count: int | None = None


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
class RecordSoftDelete:
    """The compute stopped a soft-deleted instance's guest: mark the row soft-deleted, so
    the reclaim period starts (the compute's own message is ``SoftDeleteInstance``)."""

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
class RecordEvents:
    """Finished events timed where they ran (a compute's build steps), recorded under
    the request's action in one transaction: one cast per build try instead of a start
    and a finish call per step. Skipped when the action is gone."""

    instance_id: InstanceId
    request_id: RequestId
    events: tuple[TimedEvent, ...]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class StartBuild:
    """Admit a build on ``host`` against the instance's server-group policies and move
    it from scheduling to networking (returns the violated rule, or None)."""

    instance_id: InstanceId
    host: HostName


@dataclass(frozen=True, slots=True, kw_only=True)
class RecordBuild:
    """A build on the node succeeded or failed (the build-failure weigher's count)."""

    dest: Destination
    succeeded: bool


# --- networks: the build's ports, and what a host plugs and filters


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocateNetworks:
    """Make (or bind) the instance's ports on ``host``, in order (answers
    ``list[Vif]``); allocating again first releases what an earlier try held."""

    instance_id: InstanceId
    project_id: ProjectId
    host: HostName
    networks: tuple[RequestedNetwork, ...]
    security_groups: tuple[str, ...] = ()
    availability_zone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ReleaseNetworks:
    """Delete the ports the build made for the instance and unbind the user's."""

    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceVifs:
    """The instance's ports as VIFs (answers ``list[Vif]``)."""

    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class HostNetworkState:
    """What ``host`` must plug and filter (answers ``HostPorts``)."""

    host: HostName


@dataclass(frozen=True, slots=True, kw_only=True)
class SetPortsStatus:
    """Ports plugged (``ACTIVE``) or unplugged (``DOWN``) on their host."""

    port_ids: tuple[str, ...]
    status: PortStatus

