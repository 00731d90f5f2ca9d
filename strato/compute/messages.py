"""Messages a compute serves (topic ``compute`` on its own host name)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.ids import InstanceId, NodeName
from strato.domain.requests import BootRequest, Destination

__all__ = ["BuildAndRunInstance", "GetConsoleOutput", "TerminateInstance", "TOPIC"]

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
