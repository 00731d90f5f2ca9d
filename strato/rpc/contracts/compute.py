"""Messages a compute serves (topic ``compute`` on its own host name)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.ids import InstanceId, NodeName
from strato.domain.requests import BootRequest, Destination

__all__ = ["BuildAndRunInstance", "GetConsoleOutput", "PauseInstance", "RebootInstance",
           "RebuildInstance", "RestoreInstance", "ResumeInstance", "SoftDeleteInstance",
           "StartInstance", "StopInstance", "SuspendInstance", "TOPIC",
           "TerminateInstance", "UnpauseInstance"]

TOPIC = "compute"


@dataclass(frozen=True, slots=True, kw_only=True)
class BuildAndRunInstance:
    """Build the instance on ``node`` of this host; ``alternates`` are where a retryable
    failure reschedules it."""

    request: BootRequest
    node: NodeName
    alternates: tuple[Destination, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TerminateInstance:
    """Destroy the instance's guest on this host, then mark it deleted."""

    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class GetConsoleOutput:
    """The tail of the guest's serial console: the last ``length`` lines (all when
    ``None``). The answer is the text."""

    instance_id: InstanceId
    length: int | None = None


# --- server actions: the API has set the task state; the compute runs the driver and
# clears it (see strato.compute.lifecycle).


@dataclass(frozen=True, slots=True, kw_only=True)
class RebootInstance:
    """Soft (ACPI, forced after a timeout) or hard (reset) reboot; task rebooting or
    rebooting_hard."""

    instance_id: InstanceId
    hard: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class StopInstance:
    """Power the guest off (cleanly if it answers in time); task powering-off."""

    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class StartInstance:
    """Power a stopped guest on; task powering-on."""

    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class PauseInstance:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class UnpauseInstance:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class SuspendInstance:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class ResumeInstance:
    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildInstance:
    """Destroy the guest and spawn it again from ``request.image`` on ``node`` (the
    instance keeps its host, node and claim); task rebuilding. A server that was
    stopped is powered off again afterwards, as in Nova."""

    request: BootRequest
    node: NodeName
    stopped: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class SoftDeleteInstance:
    """Power the guest off and keep it, restorable (task soft-deleting)."""

    instance_id: InstanceId


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreInstance:
    """Power a soft-deleted guest on again (task restoring)."""

    instance_id: InstanceId
