"""Instances: their states, the allowed moves between them, and the API status they show.

Nova's model, kept: ``vm_state`` is where the instance *is* (building, active, error,
deleted ...), ``task_state`` is what is being *done* to it right now (scheduling,
networking, spawning, deleting ...), ``power_state`` is what the hypervisor reported.
Every write of a state names the task state it expects to replace, so two writers racing
(a build and a delete) cannot both win: see :func:`check_task_transition`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from typing_extensions import TypedDict

from strato.domain.errors import InvalidState
from strato.domain.ids import HostName, ImageId, InstanceId, NodeName, ProjectId, UserId
from strato.domain.resources import Flavor

__all__ = ["BUILD_TASKS", "Fault", "Instance", "PowerState", "REBUILD_TASKS", "TaskState",
           "VmState", "api_status", "check_task_transition", "holds_resources"]


class VmState(enum.StrEnum):
    BUILDING = "building"
    ACTIVE = "active"
    STOPPED = "stopped"
    PAUSED = "paused"
    SUSPENDED = "suspended"
    ERROR = "error"
    DELETED = "deleted"
    # Deleted by the user while reclaim_instance_interval > 0: powered off, resources
    # kept, restorable until the compute reclaims it (Nova's "soft-delete").
    SOFT_DELETED = "soft-delete"


class TaskState(enum.StrEnum):
    SCHEDULING = "scheduling"
    NETWORKING = "networking"
    BLOCK_DEVICE_MAPPING = "block_device_mapping"
    SPAWNING = "spawning"
    DELETING = "deleting"
    # Server actions (Nova's names): the API sets the first, the compute clears it.
    REBOOTING = "rebooting"
    REBOOTING_HARD = "rebooting_hard"
    POWERING_OFF = "powering-off"
    POWERING_ON = "powering-on"
    PAUSING = "pausing"
    UNPAUSING = "unpausing"
    SUSPENDING = "suspending"
    RESUMING = "resuming"
    REBUILDING = "rebuilding"
    REBUILD_BLOCK_DEVICE_MAPPING = "rebuild_block_device_mapping"
    REBUILD_SPAWNING = "rebuild_spawning"
    SOFT_DELETING = "soft-deleting"
    RESTORING = "restoring"


# The task states of a build in progress, and of a rebuild (each in the order it passes
# them); the compare-and-swap writes of those steps expect one of them.
BUILD_TASKS = (TaskState.SCHEDULING, TaskState.NETWORKING, TaskState.BLOCK_DEVICE_MAPPING,
               TaskState.SPAWNING)
REBUILD_TASKS = (TaskState.REBUILDING, TaskState.REBUILD_BLOCK_DEVICE_MAPPING,
                 TaskState.REBUILD_SPAWNING)


class PowerState(enum.IntEnum):
    NOSTATE = 0
    RUNNING = 1
    PAUSED = 3
    SHUTDOWN = 4
    CRASHED = 6
    SUSPENDED = 7


# task state -> the task states it may move to.  DELETING can follow anything: a user may
# delete at any moment, and the writer that expected the old task state then loses.
_TASK_MOVES: dict[TaskState | None, frozenset[TaskState | None]] = {
    None: frozenset({TaskState.SCHEDULING, TaskState.DELETING, TaskState.REBOOTING,
                     TaskState.REBOOTING_HARD, TaskState.POWERING_OFF, TaskState.POWERING_ON,
                     TaskState.PAUSING, TaskState.UNPAUSING, TaskState.SUSPENDING,
                     TaskState.RESUMING, TaskState.REBUILDING, TaskState.SOFT_DELETING,
                     TaskState.RESTORING}),
    TaskState.SCHEDULING: frozenset({TaskState.NETWORKING, TaskState.SCHEDULING, None,
                                     TaskState.DELETING}),
    TaskState.NETWORKING: frozenset({TaskState.BLOCK_DEVICE_MAPPING, TaskState.SCHEDULING,
                                     None, TaskState.DELETING}),
    TaskState.BLOCK_DEVICE_MAPPING: frozenset({TaskState.SPAWNING, TaskState.SCHEDULING,
                                               None, TaskState.DELETING}),
    TaskState.SPAWNING: frozenset({None, TaskState.SCHEDULING, TaskState.DELETING}),
    TaskState.DELETING: frozenset({None, TaskState.DELETING}),
    # A server action starts from no task and ends there again (done or failed).
    **{task: frozenset({None, TaskState.DELETING}) for task in (
        TaskState.REBOOTING, TaskState.REBOOTING_HARD, TaskState.POWERING_OFF,
        TaskState.POWERING_ON, TaskState.PAUSING, TaskState.UNPAUSING,
        TaskState.SUSPENDING, TaskState.RESUMING, TaskState.REBUILD_SPAWNING,
        TaskState.SOFT_DELETING, TaskState.RESTORING)},
    TaskState.REBUILDING: frozenset({TaskState.REBUILD_BLOCK_DEVICE_MAPPING, None,
                                     TaskState.DELETING}),
    TaskState.REBUILD_BLOCK_DEVICE_MAPPING: frozenset({TaskState.REBUILD_SPAWNING, None,
                                                       TaskState.DELETING}),
}


def check_task_transition(current: TaskState | None, new: TaskState | None) -> None:
    """Raise :class:`InvalidState` unless ``current -> new`` is an allowed task move."""
    if new not in _TASK_MOVES[current]:
        raise InvalidState(f"task state cannot move from {current} to {new}")


def api_status(vm_state: VmState, task_state: TaskState | None) -> str:
    """The ``status`` field of the Compute API for a pair of states (Nova's mapping).

    Most tasks do not change the status (a building server being deleted still shows
    BUILD, as in Nova); a reboot shows REBOOT or HARD_REBOOT on an active server, and a
    rebuild shows REBUILD (``nova/api/openstack/common.py``, ``_STATE_MAP``).
    """
    if task_state in REBUILD_TASKS and vm_state in _REBUILD_SHOWN:
        return "REBUILD"
    if vm_state == VmState.ACTIVE and task_state == TaskState.REBOOTING:
        return "REBOOT"
    if vm_state == VmState.ACTIVE and task_state == TaskState.REBOOTING_HARD:
        return "HARD_REBOOT"
    return _STATUS[vm_state]


_REBUILD_SHOWN = frozenset({VmState.ACTIVE, VmState.STOPPED, VmState.ERROR})


_STATUS: dict[VmState, str] = {
    VmState.BUILDING: "BUILD",
    VmState.ACTIVE: "ACTIVE",
    VmState.STOPPED: "SHUTOFF",
    VmState.PAUSED: "PAUSED",
    VmState.SUSPENDED: "SUSPENDED",
    VmState.ERROR: "ERROR",
    VmState.DELETED: "DELETED",
    VmState.SOFT_DELETED: "SOFT_DELETED",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """Why an instance went to ERROR: shown as the server's ``fault`` in the API."""

    code: int
    message: str
    details: str = ""
    created_at: datetime | None = None

    @classmethod
    def internal(cls, error: str, created_at: datetime | None, *,
                 details: str | None = None) -> Fault:
        """A 500 for ``error``: cut to the 255 characters of Nova's ``message`` column,
        whole in ``details`` (unless other details are given: admins see them)."""
        return cls(code=500, message=error[:255], details=details or error,
                   created_at=created_at)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instance:
    """One server, as stored."""

    id: InstanceId
    display_name: str
    project_id: ProjectId
    user_id: UserId
    image_ref: ImageId
    flavor: Flavor
    vm_state: VmState = VmState.BUILDING
    task_state: TaskState | None = TaskState.SCHEDULING
    power_state: PowerState = PowerState.NOSTATE
    host: HostName | None = None
    node: NodeName | None = None
    availability_zone: str | None = None
    key_name: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    config_drive: bool = False
    reservation_id: str = ""
    launch_index: int = 0
    created_at: datetime | None = None
    updated_at: datetime | None = None
    launched_at: datetime | None = None
    terminated_at: datetime | None = None
    deleted: bool = False
    fault: Fault | None = None
    # Nova's lock: a locked server refuses actions (and delete) from everyone but admins.
    # ``locked_by`` is "owner" or "admin": who may unlock it without the admin override.
    locked: bool = False
    locked_by: str | None = None
    locked_reason: str | None = None
    # Nova's accessIPv4/accessIPv6: addresses the user names for the server (not checked
    # against its ports), set at create or by an update.
    access_ip_v4: str | None = None
    access_ip_v6: str | None = None

    @property
    def status(self) -> str:
        return api_status(self.vm_state, self.task_state)


def holds_resources(instance: Instance) -> bool:
    """Whether the instance should hold an allocation on its host: every instance that is
    not deleted, except a failed build (ERROR and never launched: the build gave its
    allocation back). The compute's resource audit and
    :meth:`strato.db.ports.NodeRepo.heal_host` both count by this rule."""
    if instance.deleted or instance.vm_state is VmState.DELETED:
        return False
    return not (instance.vm_state is VmState.ERROR and instance.launched_at is None)


class InstanceChanges(TypedDict, total=False):
    """Fields a state write may set; a key that is absent is left alone (so a key present
    with ``None`` clears the field, e.g. ``task_state``)."""

    vm_state: VmState
    task_state: TaskState | None
    power_state: PowerState
    host: HostName | None
    node: NodeName | None
    availability_zone: str | None
    launched_at: datetime | None
    terminated_at: datetime | None
    fault: Fault | None
    locked: bool
    locked_by: str | None
    locked_reason: str | None
    # What a rebuild replaces.
    image_ref: ImageId
    display_name: str
    metadata: dict[str, str]
    # What a server update (PUT /servers/{id}) may also set.
    access_ip_v4: str | None
    access_ip_v6: str | None


__all__ += ["InstanceChanges"]
