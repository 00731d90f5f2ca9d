"""Instance actions and their events: the audit trail a user reads to see where a
build spent its time and why it failed (``os-instance-actions``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.ids import HostName, InstanceId, ProjectId, RequestId, UserId

__all__ = ["ActionEvent", "EventResult", "InstanceAction", "TimedEvent"]


class EventResult(enum.StrEnum):
    SUCCESS = "Success"
    ERROR = "Error"


@dataclass(frozen=True, slots=True, kw_only=True)
class ActionEvent:
    event: str
    start_time: datetime
    finish_time: datetime | None = None
    result: EventResult | None = None
    traceback: str | None = None
    host: str | None = None
    # What the step decided, in plain words and without host names (everyone sees it).
    details: str | None = None
    # The hosts a scheduling step kept for reschedules, in order (admins only).
    alternates: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class TimedEvent:
    """An event timed where it ran and recorded after the fact, finished: a compute's
    build steps reach the conductor together in one message at the end of the try."""

    event: str
    start_time: datetime
    finish_time: datetime
    result: EventResult
    traceback: str | None = None
    host: HostName | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceAction:
    action: str
    instance_id: InstanceId
    request_id: RequestId
    user_id: UserId
    project_id: ProjectId
    start_time: datetime
    message: str | None = None
    events: tuple[ActionEvent, ...] = field(default_factory=tuple)
