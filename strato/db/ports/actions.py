"""The instance action repository (its adapter: :mod:`strato.db._actions`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from strato.domain.actions import EventResult, InstanceAction, TimedEvent
from strato.domain.ids import HostName, InstanceId, ProjectId, RequestId, UserId

__all__ = ["ActionRepo"]


class ActionRepo(Protocol):
    async def start_action(self, *, instance_id: InstanceId, action: str,
                           request_id: RequestId, user_id: UserId,
                           project_id: ProjectId) -> None: ...

    async def start_event(self, *, instance_id: InstanceId, request_id: RequestId,
                          event: str, host: HostName | None = None) -> None: ...

    async def finish_event(self, *, instance_id: InstanceId, request_id: RequestId,
                           event: str, result: EventResult,
                           traceback: str | None = None, host: HostName | None = None,
                           details: str | None = None,
                           alternates: Sequence[HostName] | None = None) -> None:
        """Close the event (and on error mark the action's message ``Error``); ``host``,
        ``details`` and ``alternates`` are recorded when given."""
        ...

    async def record_events(self, *, instance_id: InstanceId, request_id: RequestId,
                            events: Sequence[TimedEvent]) -> None:
        """Add finished events timed elsewhere, in one transaction; ``NotFound``
        without the request's action."""
        ...

    async def list(self, instance_id: InstanceId) -> list[InstanceAction]:
        """Actions newest first, each with its events."""
        ...

    async def get(self, instance_id: InstanceId, request_id: RequestId) -> InstanceAction: ...
