"""``InstanceRepo`` on SQL: instances, their compare-and-swap state writes, soft delete,
and the quota-checked create (count and insert in one transaction, see ``_quotas``)."""

from __future__ import annotations

import builtins
import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._networks import release_instance_ports
from strato.db._nodes import release_allocations
from strato.db._quotas import count_usage, effective_limits, lock_project
from strato.db._rows import change_values, instance_from_row, instance_values
from strato.db.ports import InstanceQuery
from strato.domain.errors import Invalid, InvalidState, NotFound, OverQuota
from strato.domain.ids import GroupId, InstanceId, ProjectId, RequestId
from strato.domain.instances import Instance, InstanceChanges, TaskState, VmState
from strato.domain.quotas import allowed_count, exceeds
from strato.domain.resources import Flavor

__all__ = ["SqlInstanceRepo"]

_I = t.instances.c


class SqlInstanceRepo:
    """Instances in the ``instances`` table (see
    :class:`strato.db.ports.instances.InstanceRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create_many(self, instances: Sequence[Instance], *, request_id: RequestId) -> None:
        """Insert the instances and a "create" action each, all in one transaction;
        ``Conflict`` if any id exists."""
        if not instances:
            return
        now = self._store.now()
        async with self._store.write(conflict="an instance with this id exists") as conn:
            await _insert(conn, instances, request_id, now)

    async def create_within_quota(self, build: Callable[[int], Sequence[Instance]], *,
                                  project_id: ProjectId, flavor: Flavor, min_count: int,
                                  max_count: int, defaults: Mapping[str, int],
                                  request_id: RequestId,
                                  group: GroupId | None = None) -> builtins.list[Instance]:
        """Count the project's usage, choose how many instances fit (``OverQuota`` when
        fewer than ``min_count``), insert ``build(count)`` with their "create" actions
        (and as members of ``group``, within its ``server_group_members`` quota): one
        write transaction under the project's quota lock, so parallel creates cannot
        both take the last free place."""
        now = self._store.now()
        async with self._store.write(conflict="an instance with this id exists") as conn:
            await lock_project(conn, project_id)
            limits = await effective_limits(conn, project_id, defaults)
            used = await count_usage(conn, project_id)
            count = allowed_count(limits, used, vcpus=flavor.vcpus,
                                  memory_mb=flavor.memory_mb, min_count=min_count,
                                  max_count=max_count)
            instances = list(build(count))
            if len(instances) != count or any(i.project_id != project_id
                                              for i in instances):
                raise Invalid(f"build({count}) must make {count} instances of project "
                              f"{project_id}")
            await _insert(conn, instances, request_id, now)
            if group is not None:
                await _join_group(conn, group, instances, limits["server_group_members"], now)
        return instances

    async def get(self, instance_id: InstanceId, *, project_id: ProjectId | None = None,
                  include_deleted: bool = False) -> Instance:
        """One instance; ``NotFound`` if missing, deleted (unless asked) or in another
        project than ``project_id``."""
        query = sa.select(t.instances).where(_I.uuid == instance_id)
        if project_id is not None:
            query = query.where(_I.project_id == project_id)
        if not include_deleted:
            query = query.where(_I.deleted == sa.false())
        async with self._store.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"instance {instance_id} not found")
        return instance_from_row(row)

    async def list(self, query: InstanceQuery) -> list[Instance]:
        """Instances matching ``query``, newest first (created_at desc, uuid desc)."""
        stmt = sa.select(t.instances).where(*_filters(query))
        stmt = stmt.order_by(_I.created_at.desc(), _I.uuid.desc())
        if query.limit is not None:
            stmt = stmt.limit(query.limit)
        async with self._store.read() as conn:
            if query.marker is not None:
                stmt = stmt.where(await _after_marker(conn, query))
            rows = (await conn.execute(stmt)).all()
        return [instance_from_row(row) for row in rows]

    async def update(self, instance_id: InstanceId, changes: InstanceChanges, *,
                     expected_task_state: tuple[TaskState | None, ...] | None) -> Instance:
        """Apply ``changes`` in one conditional UPDATE guarded by the expected task state;
        ``InvalidState`` (naming the actual state) or ``NotFound`` when it matches nothing."""
        stmt = (sa.update(t.instances)
                .where(_I.uuid == instance_id, _I.deleted == sa.false())
                .values(change_values(changes, self._store.now()))
                .returning(*t.instances.c))
        if expected_task_state is not None:
            stmt = stmt.where(_task_state_in(expected_task_state))
        async with self._store.write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                # Read in the same transaction, so the reason given is the one that held.
                await explain_miss(conn, instance_id, expected_task_state)
        return instance_from_row(row)

    async def soft_delete(self, instance_id: InstanceId) -> Instance:
        """Mark the instance deleted and free its allocations, in one transaction.
        Deleting a deleted instance changes nothing and returns it again."""
        now = self._store.now()
        mark = (sa.update(t.instances)
                .where(_I.uuid == instance_id, _I.deleted == sa.false())
                .values(vm_state=VmState.DELETED.value, task_state=None, deleted=True,
                        deleted_at=now, terminated_at=now, updated_at=now))
        async with self._store.write() as conn:
            await conn.execute(mark)
            await release_allocations(conn, InstanceId(instance_id), self._store.now())
            # Its ports go with it (the build's are deleted, a user's are unbound).
            await release_instance_ports(conn, instance_id, now)
            row = (await conn.execute(
                sa.select(t.instances).where(_I.uuid == instance_id))).first()
        if row is None:
            raise NotFound(f"instance {instance_id} not found")
        return instance_from_row(row)


async def _join_group(conn: AsyncConnection, group: GroupId, instances: Sequence[Instance],
                      limit: int, now: datetime) -> None:
    """Make the new instances members of the group (``NotFound`` if it is gone,
    ``OverQuota`` past ``server_group_members``; the caller's transaction rolls back)."""
    group_id = (await conn.execute(sa.select(t.server_groups.c.id).where(
        t.server_groups.c.uuid == group).with_for_update())).scalar()
    if group_id is None:
        raise NotFound(f"Instance group {group} could not be found.")
    members = t.server_group_members.c
    live = (await conn.execute(
        sa.select(sa.func.count()).select_from(t.server_group_members)
        .join(t.instances, _I.uuid == members.instance_uuid)
        .where(members.group_id == group_id, _I.deleted == sa.false()))).scalar_one()
    if exceeds(limit, live, len(instances)):
        raise OverQuota(f"Quota exceeded, too many servers in group (at most {limit} "
                        f"members; {live} already)")
    await conn.execute(t.server_group_members.insert(), [
        {"group_id": group_id, "instance_uuid": i.id, "created_at": now} for i in instances])


async def _insert(conn: AsyncConnection, instances: Sequence[Instance], request_id: RequestId,
                  now: datetime) -> None:
    actions = [{"instance_uuid": i.id, "action": "create", "request_id": request_id,
                "user_id": i.user_id, "project_id": i.project_id, "start_time": now}
               for i in instances]
    await conn.execute(t.instances.insert(), [instance_values(i, now) for i in instances])
    await conn.execute(t.instance_actions.insert(), actions)


def _task_state_in(expected: tuple[TaskState | None, ...]) -> sa.ColumnElement[bool]:
    # SQL's IN never matches NULL, so "no task" needs its own IS NULL term.
    states = [state.value for state in expected if state is not None]
    terms: list[sa.ColumnElement[bool]] = []
    if states:
        terms.append(_I.task_state.in_(states))
    if None in expected:
        terms.append(_I.task_state.is_(None))
    return sa.or_(*terms) if terms else sa.false()


async def explain_miss(conn: AsyncConnection, instance_id: InstanceId,
                        expected: tuple[TaskState | None, ...] | None) -> NoReturn:
    row = (await conn.execute(sa.select(_I.task_state, _I.deleted)
                              .where(_I.uuid == instance_id))).first()
    if row is None or row.deleted:
        raise NotFound(f"instance {instance_id} not found")
    wanted = ", ".join(str(state) for state in expected or ())
    raise InvalidState(f"instance {instance_id} is in task state {row.task_state}, "
                       f"expected one of ({wanted})")


def _filters(query: InstanceQuery) -> list[sa.ColumnElement[bool]]:
    terms: list[sa.ColumnElement[bool]] = []
    # changes-since must show what was deleted since then (Nova's rule).
    if not (query.include_deleted or query.changes_since is not None):
        terms.append(_I.deleted == sa.false())
    if query.project_id is not None:
        terms.append(_I.project_id == query.project_id)
    if query.name is not None:
        terms.append(_name_matches(query.name))
    if query.vm_states is not None:
        terms.append(_I.vm_state.in_([state.value for state in query.vm_states]))
    if query.changes_since is not None:
        # A never-updated instance changed when it was created.
        terms.append(sa.func.coalesce(_I.updated_at, _I.created_at) >= query.changes_since)
    if query.host is not None:
        terms.append(_I.host == query.host)
    if query.reservation_id is not None:
        terms.append(_I.reservation_id == query.reservation_id)
    if query.image_ref is not None:
        terms.append(_I.image_ref == query.image_ref)
    if query.flavor_id is not None:
        terms.append(_I.flavorid == query.flavor_id)
    if query.ip is not None:
        terms.append(_has_address(query.ip, version=4))
    if query.ip6 is not None:
        terms.append(_has_address(query.ip6, version=6))
    return terms


def _has_address(pattern: str, *, version: int) -> sa.ColumnElement[bool]:
    """Whether one of the instance's ports has a fixed IP of ``version`` that
    ``pattern`` matches from its start (Nova's ``re.match`` of the ``ip``/``ip6``
    filters); an IPv6 address is the one with a colon."""
    _check_pattern("ip" if version == 4 else "ip6", pattern)
    ports, ips = t.ports.c, t.ip_allocations.c
    address = ips.ip_address
    family = address.contains(":") if version == 6 else sa.not_(address.contains(":"))
    return sa.exists(
        sa.select(ips.id).select_from(t.ip_allocations.join(t.ports, ports.id == ips.port_id))
        .where(ports.device_id == _I.uuid, family,
               address.regexp_match(f"^(?:{pattern})")))


def _name_matches(pattern: str) -> sa.ColumnElement[bool]:
    # SQLite runs Python's re.search through the REGEXP function SQLAlchemy's sqlite
    # dialect registers on every connection; PostgreSQL uses its ~ operator. Check the
    # syntax here, so a bad pattern is the caller's error and not a database failure.
    _check_pattern("name", pattern)
    return _I.display_name.regexp_match(pattern)


def _check_pattern(field: str, pattern: str) -> None:
    try:
        re.compile(pattern)
    except re.error as exc:
        raise Invalid(f"invalid {field} filter {pattern!r}: {exc}") from exc


async def _after_marker(conn: AsyncConnection, query: InstanceQuery) -> sa.ColumnElement[bool]:
    # The marker must be an instance the same query could see, or paging would leak
    # (or skip) other projects' servers.
    marker_query = sa.select(_I.created_at, _I.uuid).where(_I.uuid == query.marker)
    if query.project_id is not None:
        marker_query = marker_query.where(_I.project_id == query.project_id)
    marker: Any = (await conn.execute(marker_query)).first()
    if marker is None:
        raise NotFound(f"marker {query.marker} not found")
    return sa.or_(_I.created_at < marker.created_at,
                  sa.and_(_I.created_at == marker.created_at, _I.uuid < marker.uuid))
