"""``QuotaRepo`` on SQL: quota limits, usage counted from the instances, and the
per-project lock that makes "count, then write" atomic.

Usage (instances, cores, ram) is always counted from the project's non-deleted
instances, in the transaction that needs it; nothing keeps a running total that could
drift. A quota-checked write counts and writes in one write transaction after
:func:`lock_project`: SQLite serializes every write transaction (``BEGIN IMMEDIATE``,
see ``_engine``), and PostgreSQL, whose read-committed transactions would each count the
same rows, serializes the project's quota-checked transactions on an advisory lock that
is released at commit, so the next one counts what the previous one wrote.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store, upsert
from strato.domain.errors import Invalid
from strato.domain.ids import ProjectId
from strato.domain.quotas import (
    COUNTED,
    DEFAULT_CLASS,
    RESOURCES,
    UNLIMITED,
    Usage,
    check_new_limit,
    merge,
)

__all__ = ["SqlQuotaRepo", "count_usage", "effective_limits", "lock_project"]

_Q = t.quotas.c
_C = t.quota_classes.c
_I = t.instances.c

# First key of strato's quota advisory locks ("quot"), so they cannot collide with
# advisory locks taken for anything else.
_LOCK_SPACE = 0x71756F74


async def lock_project(conn: AsyncConnection, project_id: ProjectId) -> None:
    """Hold the project's quota lock until ``conn``'s transaction ends (PostgreSQL; a
    SQLite write transaction is already the only writer)."""
    if conn.dialect.name != "postgresql":
        return
    digest = hashlib.blake2b(project_id.encode(), digest_size=4).digest()
    key = int.from_bytes(digest, "big", signed=True)
    # Two projects that hash alike only wait for each other; they never share a count.
    await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_SPACE, key)))


async def count_usage(conn: AsyncConnection, project_id: ProjectId) -> Usage:
    """The project's non-deleted instances, their vCPUs and RAM (from each instance's
    flavor snapshot), counted now."""
    query = (sa.select(sa.func.count(),
                       sa.func.coalesce(sa.func.sum(_I.flavor["vcpus"].as_integer()), 0),
                       sa.func.coalesce(sa.func.sum(_I.flavor["memory_mb"].as_integer()), 0))
             .where(_I.project_id == project_id, _I.deleted == sa.false()))
    instances, cores, ram = (await conn.execute(query)).one()
    return Usage(instances=int(instances), cores=int(cores), ram=int(ram))


async def _class_rows(conn: AsyncConnection, class_name: str) -> dict[str, int]:
    rows = await conn.execute(sa.select(_C.resource, _C.hard_limit)
                              .where(_C.class_name == class_name))
    return {row.resource: row.hard_limit for row in rows}


async def _project_rows(conn: AsyncConnection, project_id: ProjectId) -> dict[str, int]:
    rows = await conn.execute(sa.select(_Q.resource, _Q.hard_limit)
                              .where(_Q.project_id == project_id))
    return {row.resource: row.hard_limit for row in rows}


async def effective_limits(conn: AsyncConnection, project_id: ProjectId,
                           defaults: Mapping[str, int]) -> dict[str, int]:
    """The project's limit of every resource: its own values over the default class's
    over ``defaults``."""
    return merge(defaults, await _class_rows(conn, DEFAULT_CLASS),
                 await _project_rows(conn, project_id))


def _check_values(limits: Mapping[str, int]) -> None:
    unknown = sorted(set(limits) - set(RESOURCES))
    if unknown:
        raise Invalid(f"unknown quota resources: {', '.join(unknown)}")
    for resource, limit in limits.items():
        if limit < UNLIMITED:
            raise Invalid(f"quota limit {limit} for {resource} is below {UNLIMITED}")


class SqlQuotaRepo:
    """Limits in ``quotas`` and ``quota_classes`` (see
    :class:`strato.db.ports.quotas.QuotaRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def limits(self, project_id: ProjectId, *,
                     defaults: Mapping[str, int]) -> dict[str, int]:
        """The project's effective limits (its values, the default class, ``defaults``)."""
        async with self._store.read() as conn:
            return await effective_limits(conn, project_id, defaults)

    async def class_limits(self, class_name: str, *,
                           defaults: Mapping[str, int]) -> dict[str, int]:
        """The quota class's values over ``defaults``."""
        async with self._store.read() as conn:
            return merge(defaults, await _class_rows(conn, class_name))

    async def usage(self, project_id: ProjectId) -> Usage:
        """What the project's non-deleted instances use, counted now."""
        async with self._store.read() as conn:
            return await count_usage(conn, project_id)

    async def set_limits(self, project_id: ProjectId, limits: Mapping[str, int], *,
                         defaults: Mapping[str, int], force: bool) -> dict[str, int]:
        """Store the project's values for the resources in ``limits``. Unless ``force``,
        a counted resource's new limit must not be below its usage (``Invalid``); the
        check and the write hold the project's quota lock, so a create cannot slip in
        between. Returns the effective limits afterwards."""
        _check_values(limits)
        now = self._store.now()
        rows = [{"project_id": project_id, "resource": resource, "hard_limit": limit,
                 "created_at": now, "updated_at": now} for resource, limit in limits.items()]
        async with self._store.write() as conn:
            await lock_project(conn, project_id)
            if not force and any(r in COUNTED for r in limits):
                used = await count_usage(conn, project_id)
                for resource in COUNTED:
                    if resource in limits:
                        check_new_limit(resource, limits[resource], used.of(resource))
            if rows:
                await conn.execute(upsert(self._store.dialect, t.quotas, rows,
                                          keys=("project_id", "resource"),
                                          update=("hard_limit", "updated_at")))
            return await effective_limits(conn, project_id, defaults)

    async def set_class_limits(self, class_name: str, limits: Mapping[str, int], *,
                               defaults: Mapping[str, int]) -> dict[str, int]:
        """Store the quota class's values for the resources in ``limits``; returns the
        class's limits afterwards."""
        _check_values(limits)
        now = self._store.now()
        rows = [{"class_name": class_name, "resource": resource, "hard_limit": limit,
                 "created_at": now, "updated_at": now} for resource, limit in limits.items()]
        async with self._store.write() as conn:
            if rows:
                await conn.execute(upsert(self._store.dialect, t.quota_classes, rows,
                                          keys=("class_name", "resource"),
                                          update=("hard_limit", "updated_at")))
            return merge(defaults, await _class_rows(conn, class_name))

    async def reset(self, project_id: ProjectId) -> None:
        """Forget the project's own values (it falls back to the defaults); idempotent."""
        async with self._store.write() as conn:
            await conn.execute(sa.delete(t.quotas).where(_Q.project_id == project_id))
