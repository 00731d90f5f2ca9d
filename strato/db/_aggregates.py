"""``AggregateRepo`` on SQL: host aggregates, their hosts and metadata, and the zone rule.

An aggregate's zone is its metadata key ``availability_zone``. A host may belong to
several aggregates but to one zone only, so every write that could give a host a second
zone (adding a host to an aggregate with a zone, giving an aggregate with hosts a zone)
first looks at the other aggregates of the hosts concerned, in the same transaction.
That check reads before it writes: on PostgreSQL (read committed) two such writes could
both pass it, so every aggregate write holds one advisory lock until it commits (they
are rare, an operator's doing); a SQLite write transaction is already the only writer.

Every change, hosts and metadata included, sets the aggregate's ``updated_at`` (the
scheduler notices changes by the newest ``updated_at`` and the number of aggregates).
A new aggregate gets one too (Nova leaves it null until the first change): with it, a
create and a delete between two looks of the scheduler still move the newest stamp.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store, upsert
from strato.db._nodes import COMPUTE_BINARY
from strato.domain.aggregates import AZ_KEY, INTERNAL_ZONE, Aggregate
from strato.domain.errors import Conflict, Invalid, InvalidState, NotFound
from strato.domain.ids import HostName, new_uuid

__all__ = ["SqlAggregateRepo"]

_A = t.aggregates.c
_H = t.aggregate_hosts.c
_M = t.aggregate_metadata.c
_S = t.services.c

# First key of the aggregates' advisory lock ("aggr"), apart from the quota locks.
_LOCK_SPACE = 0x61676772
# The largest id the integer primary key holds; larger ids simply do not exist.
_MAX_ID = 2**31 - 1
_MAX_LEN = 255


async def _lock(conn: AsyncConnection) -> None:
    """Serialize aggregate writes until ``conn``'s transaction ends (PostgreSQL)."""
    if conn.dialect.name == "postgresql":
        await conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_LOCK_SPACE, 0)))


def _check_name(name: str) -> None:
    if not name or len(name) > _MAX_LEN:
        raise Invalid(f"Aggregate name must be 1 to {_MAX_LEN} characters long.")


def _check_zone(zone: str | None) -> None:
    """A zone name: 1 to 255 characters, no ``:`` (``zone:host`` is how a server
    create names a host), not the control services' zone."""
    if zone is None:
        return
    if not zone:
        raise Invalid("Aggregates do not support an empty named availability zone.")
    if len(zone) > _MAX_LEN:
        raise Invalid(f"Availability zone names are at most {_MAX_LEN} characters long.")
    if ":" in zone:
        raise Invalid(f"Availability zone {zone!r} is invalid: it cannot contain ':'.")
    if zone == INTERNAL_ZONE:
        raise Invalid(f"Availability zone {INTERNAL_ZONE!r} is reserved for the control "
                      "services.")


def _check_metadata(changes: Mapping[str, str | None]) -> None:
    for key, value in changes.items():
        if not key or len(key) > _MAX_LEN:
            raise Invalid(f"Metadata keys must be 1 to {_MAX_LEN} characters long.")
        if value is not None and len(value) > _MAX_LEN:
            raise Invalid(f"The value of metadata key {key!r} is longer than {_MAX_LEN} "
                          "characters.")
    if changes.get(AZ_KEY) is not None:
        _check_zone(changes[AZ_KEY])


async def _load(conn: AsyncConnection, aggregate_id: int | None = None) -> list[Aggregate]:
    """Aggregates by id with their hosts (in the order they were added) and metadata;
    only ``aggregate_id`` when given."""
    query = sa.select(t.aggregates).order_by(_A.id)
    hosts_query = sa.select(_H.aggregate_id, _H.host).order_by(_H.id)
    meta_query = sa.select(_M.aggregate_id, _M.key, _M.value).order_by(_M.key)
    if aggregate_id is not None:
        query = query.where(_A.id == aggregate_id)
        hosts_query = hosts_query.where(_H.aggregate_id == aggregate_id)
        meta_query = meta_query.where(_M.aggregate_id == aggregate_id)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    hosts: dict[int, list[HostName]] = defaultdict(list)
    for member in await conn.execute(hosts_query):
        hosts[member.aggregate_id].append(HostName(member.host))
    metadata: dict[int, dict[str, str]] = defaultdict(dict)
    for item in await conn.execute(meta_query):
        metadata[item.aggregate_id][item.key] = item.value
    return [Aggregate(id=row.id, uuid=row.uuid, name=row.name, hosts=tuple(hosts[row.id]),
                      metadata=dict(metadata[row.id]), created_at=row.created_at,
                      updated_at=row.updated_at)
            for row in rows]


async def _get(conn: AsyncConnection, aggregate_id: int) -> Aggregate:
    found = await _load(conn, aggregate_id) if 0 < aggregate_id <= _MAX_ID else []
    if not found:
        raise NotFound(f"Aggregate {aggregate_id} could not be found.")
    return found[0]


async def _check_hosts_zone(conn: AsyncConnection, aggregate_id: int,
                            hosts: Iterable[HostName], zone: str, *, action: str) -> None:
    """``Conflict`` if one of ``hosts`` is in another aggregate whose zone is not
    ``zone`` (the hosts would be in two zones)."""
    hosts = list(hosts)
    if not hosts:
        return
    query = (sa.select(_H.host, _M.value)
             .join(t.aggregate_metadata, _M.aggregate_id == _H.aggregate_id)
             .where(_M.key == AZ_KEY, _H.host.in_(hosts), _H.aggregate_id != aggregate_id,
                    _M.value != zone)
             .order_by(_H.host, _M.value))
    clashes = (await conn.execute(query)).all()
    if clashes:
        zones = sorted({row.value for row in clashes})
        where = ", ".join(sorted({f"{row.host} is in {row.value}" for row in clashes}))
        raise Conflict(f"Cannot {action} aggregate {aggregate_id}. Reason: One or more "
                       f"hosts already in availability zone(s) {zones} ({where}).")


async def _touch(conn: AsyncConnection, aggregate_id: int, now: datetime,
                 **values: object) -> None:
    await conn.execute(sa.update(t.aggregates).where(_A.id == aggregate_id)
                       .values(updated_at=now, **values))


async def _write_metadata(conn: AsyncConnection, dialect: str, aggregate_id: int,
                          changes: Mapping[str, str | None], now: datetime) -> None:
    """Set the keys with a value, delete those with ``None`` (missing ones are fine)."""
    removed = [key for key, value in changes.items() if value is None]
    if removed:
        await conn.execute(sa.delete(t.aggregate_metadata).where(
            _M.aggregate_id == aggregate_id, _M.key.in_(removed)))
    rows = [{"aggregate_id": aggregate_id, "key": key, "value": value, "created_at": now}
            for key, value in changes.items() if value is not None]
    if rows:
        await conn.execute(upsert(dialect, t.aggregate_metadata, rows,
                                  keys=("aggregate_id", "key"), update=("value",)))


class SqlAggregateRepo:
    """Aggregates in ``aggregates``, ``aggregate_hosts`` and ``aggregate_metadata``
    (see :class:`strato.db.ports.aggregates.AggregateRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, name: str, availability_zone: str | None = None) -> Aggregate:
        """A new aggregate, in ``availability_zone`` when given; ``Conflict`` when the
        name is taken, ``Invalid`` for an empty name or zone."""
        _check_name(name)
        _check_zone(availability_zone)
        now = self._store.now()
        async with self._store.write(conflict=f"Aggregate {name} already exists.") as conn:
            await _lock(conn)
            pk = (await conn.execute(t.aggregates.insert().values(
                uuid=new_uuid(), name=name, created_at=now, updated_at=now)
                .returning(_A.id))).scalar_one()
            if availability_zone is not None:
                await conn.execute(t.aggregate_metadata.insert().values(
                    aggregate_id=pk, key=AZ_KEY, value=availability_zone, created_at=now))
            return await _get(conn, pk)

    async def get(self, aggregate_id: int) -> Aggregate:
        """One aggregate with its hosts and metadata; ``NotFound`` for an unknown id."""
        async with self._store.read() as conn:
            return await _get(conn, aggregate_id)

    async def list(self) -> list[Aggregate]:
        """Every aggregate, by id."""
        async with self._store.read() as conn:
            return await _load(conn)

    async def update(self, aggregate_id: int, *, name: str | None = None,
                     availability_zone: str | None = None) -> Aggregate:
        """Rename and/or move to a zone (``None`` leaves a field alone); ``Conflict``
        when the name is taken or one of its hosts is in another zone already."""
        if name is not None:
            _check_name(name)
        _check_zone(availability_zone)
        now = self._store.now()
        conflict = f"Aggregate {name} already exists." if name is not None else None
        async with self._store.write(conflict=conflict) as conn:
            await _lock(conn)
            aggregate = await _get(conn, aggregate_id)
            if name is None and availability_zone is None:
                return aggregate
            if name is not None and name != aggregate.name:
                taken = (await conn.execute(sa.select(_A.id).where(
                    _A.name == name, _A.id != aggregate_id))).first()
                if taken is not None:
                    raise Conflict(f"Aggregate {name} already exists.")
            if (availability_zone is not None
                    and availability_zone != aggregate.availability_zone):
                await _check_hosts_zone(conn, aggregate_id, aggregate.hosts,
                                        availability_zone, action="update")
                await _write_metadata(conn, self._store.dialect, aggregate_id,
                                      {AZ_KEY: availability_zone}, now)
            await _touch(conn, aggregate_id, now,
                         **({"name": name} if name is not None else {}))
            return await _get(conn, aggregate_id)

    async def delete(self, aggregate_id: int) -> None:
        """Delete the aggregate and its metadata; ``InvalidState`` while it has hosts."""
        async with self._store.write() as conn:
            await _lock(conn)
            aggregate = await _get(conn, aggregate_id)
            if aggregate.hosts:
                raise InvalidState(f"Cannot remove aggregate {aggregate_id}. Reason: Host "
                                   "aggregate is not empty.")
            # Explicit, not left to ON DELETE CASCADE: SQLite enforces foreign keys only
            # when a connection asks for it.
            await conn.execute(sa.delete(t.aggregate_metadata)
                               .where(_M.aggregate_id == aggregate_id))
            await conn.execute(sa.delete(t.aggregates).where(_A.id == aggregate_id))

    async def add_host(self, aggregate_id: int, host: HostName) -> Aggregate:
        """Add a compute host; ``NotFound`` for an unknown aggregate or a host with no
        compute service, ``Conflict`` for a member or a host in another zone."""
        now = self._store.now()
        async with self._store.write(
                conflict=f"Aggregate {aggregate_id} already has host {host}.") as conn:
            await _lock(conn)
            aggregate = await _get(conn, aggregate_id)
            compute = (await conn.execute(sa.select(_S.id).where(
                _S.host == host, _S.binary == COMPUTE_BINARY))).first()
            if compute is None:
                raise NotFound(f"Compute host {host} could not be found.")
            if host in aggregate.hosts:
                raise Conflict(f"Aggregate {aggregate_id} already has host {host}.")
            if aggregate.availability_zone is not None:
                await _check_hosts_zone(conn, aggregate_id, [host],
                                        aggregate.availability_zone, action="add host to")
            await conn.execute(t.aggregate_hosts.insert().values(
                aggregate_id=aggregate_id, host=host, created_at=now))
            await _touch(conn, aggregate_id, now)
            return await _get(conn, aggregate_id)

    async def remove_host(self, aggregate_id: int, host: HostName) -> Aggregate:
        """Remove a member; ``NotFound`` when the host is not one (or no aggregate)."""
        now = self._store.now()
        async with self._store.write() as conn:
            await _lock(conn)
            await _get(conn, aggregate_id)
            removed = await conn.execute(sa.delete(t.aggregate_hosts).where(
                _H.aggregate_id == aggregate_id, _H.host == host))
            if removed.rowcount == 0:
                raise NotFound(f"Aggregate {aggregate_id} has no host {host}.")
            await _touch(conn, aggregate_id, now)
            return await _get(conn, aggregate_id)

    async def set_metadata(self, aggregate_id: int,
                           changes: Mapping[str, str | None]) -> Aggregate:
        """Set keys, delete those whose value is ``None``; all or nothing. ``Conflict``
        when a new zone would put one of its hosts in two zones."""
        _check_metadata(changes)
        now = self._store.now()
        async with self._store.write() as conn:
            await _lock(conn)
            aggregate = await _get(conn, aggregate_id)
            zone = changes.get(AZ_KEY)
            if zone is not None and zone != aggregate.availability_zone:
                await _check_hosts_zone(conn, aggregate_id, aggregate.hosts, zone,
                                        action="update metadata of")
            await _write_metadata(conn, self._store.dialect, aggregate_id, changes, now)
            await _touch(conn, aggregate_id, now)
            return await _get(conn, aggregate_id)

    async def stamp(self) -> str:
        """An opaque value that changes whenever an aggregate is created, changed (hosts
        and metadata included) or deleted: every change sets ``updated_at``."""
        async with self._store.read() as conn:
            count, latest = (await conn.execute(
                sa.select(sa.func.count(), sa.func.max(t.aggregates.c.updated_at)))).one()
        return f"{count}/{latest}"

    async def host_zones(self) -> dict[HostName, str]:
        """The zone of every host in an aggregate with a zone (hosts in none are in
        the default zone, which this does not list)."""
        query = (sa.select(_H.host, _M.value)
                 .join(t.aggregate_metadata, _M.aggregate_id == _H.aggregate_id)
                 .where(_M.key == AZ_KEY)
                 .order_by(_H.host, _H.aggregate_id))
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
        zones: dict[HostName, str] = {}
        for row in rows:
            # One zone per host is the rule; should it ever be broken, the oldest wins.
            zones.setdefault(HostName(row.host), row.value)
        return zones
