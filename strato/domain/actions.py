"""Instance actions and their events: the audit trail a user reads to see where a
build spent its time and why it failed (``os-instance-actions``)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.ids import InstanceId, ProjectId, RequestId, UserId

__all__ = ["ActionEvent", "EventResult", "InstanceAction"]


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
