"""``ServerGroupRepo`` on SQL: server groups and their members.

Members are written by the instance creation transaction, never here. A member whose
instance is deleted (or has no row at all) is no member: reads join ``instances`` and
keep only live ones, in the order they joined (member row id).

Creating a group is quota-checked like creating an instance: the count of the project's
groups and the insert run in one write transaction under the project's quota lock
(:func:`strato.db._quotas.lock_project`), so parallel creates never pass the limit.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._quotas import lock_project
from strato.domain.errors import NotFound, OverQuota
from strato.domain.groups import GroupPolicy, ServerGroup
from strato.domain.ids import GroupId, InstanceId, ProjectId, UserId

__all__ = ["SqlServerGroupRepo"]

_G = t.server_groups.c
_M = t.server_group_members.c
_I = t.instances.c


async def _count(conn: AsyncConnection, project_id: ProjectId) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(t.server_groups)
                                   .where(_G.project_id == project_id))).scalar_one())


def _not_found(group_id: GroupId) -> NotFound:
    return NotFound(f"Instance group {group_id} could not be found.")


def _group_from_row(row: Any, members: Sequence[InstanceId]) -> ServerGroup:
    return ServerGroup(id=GroupId(row.uuid), name=row.name, project_id=ProjectId(row.project_id),
                       user_id=UserId(row.user_id), policy=GroupPolicy(row.policy),
                       rules={str(k): int(v) for k, v in (row.rules or {}).items()},
                       members=tuple(members), created_at=row.created_at)


async def _live_members(conn: AsyncConnection,
                        pks: Sequence[int]) -> dict[int, list[InstanceId]]:
    """The non-deleted member instances of each group (by group row id), in the order
    they joined."""
    members: dict[int, list[InstanceId]] = defaultdict(list)
    if pks:
        rows = await conn.execute(
            sa.select(_M.group_id, _M.instance_uuid)
            .join(t.instances, _I.uuid == _M.instance_uuid)
            .where(_M.group_id.in_(pks), _I.deleted == sa.false())
            .order_by(_M.id))
        for row in rows:
            members[row.group_id].append(InstanceId(row.instance_uuid))
    return members


def _visible(query: sa.Select[Any], group_id: GroupId,
             project_id: ProjectId | None) -> sa.Select[Any]:
    query = query.where(_G.uuid == group_id)
    return query if project_id is None else query.where(_G.project_id == project_id)


class SqlServerGroupRepo:
    """Groups in ``server_groups`` + ``server_group_members`` (see
    :class:`strato.db.ports.server_groups.ServerGroupRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def count(self, project_id: ProjectId) -> int:
        """How many groups the project has (``/limits``' ``totalServerGroupsUsed``)."""
        async with self._store.read() as conn:
            return await _count(conn, project_id)

    async def create(self, group: ServerGroup, *, limit: int) -> ServerGroup:
        """Insert ``group`` (without members) unless its project already has ``limit``
        groups (``OverQuota``; a negative limit is no limit). The count and the insert
        hold the project's quota lock. ``Conflict`` if the id exists."""
        now = self._store.now()
        values = {"uuid": group.id, "name": group.name, "project_id": group.project_id,
                  "user_id": group.user_id, "policy": group.policy.value,
                  "rules": dict(group.rules), "created_at": now, "updated_at": None}
        message = f"an instance group with id {group.id} exists"
        async with self._store.write(conflict=message) as conn:
            await lock_project(conn, group.project_id)
            if limit >= 0 and await _count(conn, group.project_id) + 1 > limit:
                raise OverQuota("Quota exceeded, too many server groups.")
            await conn.execute(t.server_groups.insert().values(values))
        return replace(group, members=(), created_at=now)

    async def get(self, group_id: GroupId, *, project_id: ProjectId | None = None) -> ServerGroup:
        """The group with its live members; ``NotFound`` if unknown or, when
        ``project_id`` is given, of another project."""
        async with self._store.read() as conn:
            row = (await conn.execute(
                _visible(sa.select(t.server_groups), group_id, project_id))).first()
            if row is None:
                raise _not_found(group_id)
            members = await _live_members(conn, [row.id])
        return _group_from_row(row, members[row.id])

    async def list(self, *, project_id: ProjectId | None = None, limit: int | None = None,
                   offset: int = 0) -> list[ServerGroup]:
        """The groups of ``project_id`` (every project's when ``None``), oldest first,
        ``offset`` skipped and at most ``limit`` of them, each with its live members."""
        query = (sa.select(t.server_groups).order_by(_G.created_at, _G.id)
                 .limit(limit).offset(offset or None))
        if project_id is not None:
            query = query.where(_G.project_id == project_id)
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
            members = await _live_members(conn, [row.id for row in rows])
        return [_group_from_row(row, members[row.id]) for row in rows]

    async def delete(self, group_id: GroupId, *, project_id: ProjectId | None = None) -> None:
        """Delete the group and its member rows (the instances stay); ``NotFound`` as
        :meth:`get`."""
        async with self._store.write() as conn:
            pk = (await conn.execute(
                _visible(sa.select(_G.id), group_id, project_id))).scalar()
            if pk is None:
                raise _not_found(group_id)
            # Explicit, not left to ON DELETE CASCADE: SQLite enforces foreign keys only
            # when a connection asks for it.
            await conn.execute(sa.delete(t.server_group_members).where(_M.group_id == pk))
            await conn.execute(sa.delete(t.server_groups).where(_G.id == pk))
