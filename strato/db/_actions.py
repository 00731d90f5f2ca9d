"""``ActionRepo`` on SQL: instance actions and their events (``os-instance-actions``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._rows import action_from_row, event_from_row
from strato.domain.actions import ActionEvent, EventResult, InstanceAction, TimedEvent
from strato.domain.errors import NotFound
from strato.domain.ids import HostName, InstanceId, ProjectId, RequestId, UserId

__all__ = ["SqlActionRepo"]

_A = t.instance_actions.c
_E = t.instance_actions_events.c


class SqlActionRepo:
    """Actions in ``instance_actions`` and events in ``instance_actions_events``
    (see :class:`strato.db.ports.actions.ActionRepo`). An action is found by (instance, request
    id); should one request have started two, the newest is meant."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def start_action(self, *, instance_id: InstanceId, action: str,
                           request_id: RequestId, user_id: UserId,
                           project_id: ProjectId) -> None:
        """Record that ``action`` started now; ``NotFound`` for an unknown instance."""
        values = {"instance_uuid": instance_id, "action": action, "request_id": request_id,
                  "user_id": user_id, "project_id": project_id,
                  "start_time": self._store.now()}
        async with self._store.write() as conn:
            # Checked here rather than left to the foreign key, whose violation would
            # read as a Conflict.
            if (await conn.execute(sa.select(t.instances.c.uuid)
                                   .where(t.instances.c.uuid == instance_id))).first() is None:
                raise NotFound(f"instance {instance_id} not found")
            await conn.execute(t.instance_actions.insert().values(values))

    async def start_event(self, *, instance_id: InstanceId, request_id: RequestId,
                          event: str, host: HostName | None = None) -> None:
        """Open ``event`` under the request's action; ``NotFound`` without that action."""
        async with self._store.write() as conn:
            action_id = await _action_id(conn, instance_id, request_id)
            await conn.execute(t.instance_actions_events.insert().values(
                action_id=action_id, event=event, start_time=self._store.now(), host=host))

    async def finish_event(self, *, instance_id: InstanceId, request_id: RequestId,
                           event: str, result: EventResult,
                           traceback: str | None = None, host: HostName | None = None,
                           details: str | None = None,
                           alternates: Sequence[HostName] | None = None) -> None:
        """Close the newest open ``event`` of the request's action with ``result``; an
        error also sets the action's message to ``Error`` (as Nova shows it). ``host``,
        ``details`` and ``alternates``, when given, are recorded too (a host given at
        the start stays otherwise). ``NotFound`` when there is no such open event."""
        values: dict[str, Any] = {"finish_time": self._store.now(), "result": result.value,
                                  "traceback": traceback}
        if host is not None:
            values["host"] = host
        if details is not None:
            values["details"] = details
        if alternates is not None:
            values["alternates"] = list(alternates)
        async with self._store.write() as conn:
            action_id = await _action_id(conn, instance_id, request_id)
            event_id = await _open_event_id(conn, action_id, event)
            await conn.execute(sa.update(t.instance_actions_events)
                               .where(_E.id == event_id).values(values))
            if result is EventResult.ERROR:
                await _mark_error(conn, action_id)

    async def record_events(self, *, instance_id: InstanceId, request_id: RequestId,
                            events: Sequence[TimedEvent]) -> None:
        """Add finished events, timed where they ran, to the request's action in one
        transaction (an error among them marks the action ``Error``, as
        :meth:`finish_event` does). ``NotFound`` without that action."""
        if not events:
            return
        async with self._store.write() as conn:
            action_id = await _action_id(conn, instance_id, request_id)
            await conn.execute(t.instance_actions_events.insert(), [
                {"action_id": action_id, "event": e.event, "start_time": e.start_time,
                 "finish_time": e.finish_time, "result": e.result.value,
                 "traceback": e.traceback, "host": e.host} for e in events])
            if any(e.result is EventResult.ERROR for e in events):
                await _mark_error(conn, action_id)

    async def list(self, instance_id: InstanceId) -> list[InstanceAction]:
        """The instance's actions newest first, each with its events in start order."""
        query = (sa.select(t.instance_actions).where(_A.instance_uuid == instance_id)
                 .order_by(_A.start_time.desc(), _A.id.desc()))
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
            events = await _events(conn, [row.id for row in rows])
        return [action_from_row(row, events[row.id]) for row in rows]

    async def get(self, instance_id: InstanceId, request_id: RequestId) -> InstanceAction:
        """The request's action on the instance, with its events; ``NotFound`` if none."""
        async with self._store.read() as conn:
            row = (await conn.execute(_action_query(instance_id, request_id))).first()
            if row is None:
                raise NotFound(f"no action of request {request_id} on instance {instance_id}")
            events = await _events(conn, [row.id])
        return action_from_row(row, events[row.id])


def _action_query(instance_id: InstanceId, request_id: RequestId) -> sa.Select[Any]:
    return (sa.select(t.instance_actions)
            .where(_A.instance_uuid == instance_id, _A.request_id == request_id)
            .order_by(_A.id.desc()).limit(1))


async def _action_id(conn: AsyncConnection, instance_id: InstanceId,
                     request_id: RequestId) -> int:
    row = (await conn.execute(_action_query(instance_id, request_id))).first()
    if row is None:
        raise NotFound(f"no action of request {request_id} on instance {instance_id}")
    return int(row.id)


async def _mark_error(conn: AsyncConnection, action_id: int) -> None:
    await conn.execute(sa.update(t.instance_actions)
                       .where(_A.id == action_id).values(message="Error"))


async def _open_event_id(conn: AsyncConnection, action_id: int, event: str) -> int:
    event_id = (await conn.execute(
        sa.select(_E.id).where(_E.action_id == action_id, _E.event == event,
                               _E.finish_time.is_(None))
        .order_by(_E.id.desc()).limit(1))).scalar()
    if event_id is None:
        raise NotFound(f"no open event {event!r}")
    return int(event_id)


async def _events(conn: AsyncConnection,
                  action_ids: Sequence[int]) -> dict[int, list[ActionEvent]]:
    events: dict[int, list[ActionEvent]] = defaultdict(list)
    if action_ids:
        rows = await conn.execute(sa.select(t.instance_actions_events)
                                  .where(_E.action_id.in_(action_ids))
                                  .order_by(_E.start_time, _E.id))
        for row in rows:
            events[row.action_id].append(replace(
                event_from_row(row), details=row.details,
                alternates=tuple(str(h) for h in row.alternates or ())))
    return events
