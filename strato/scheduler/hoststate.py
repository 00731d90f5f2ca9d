"""The scheduler's host-state cache: every compute node's state in memory, kept fresh by
reading only what changed.

A full read of every node and compute service happens at start and then every
``full_refresh_interval`` seconds (a safety net). In between, at most every
``refresh_interval`` seconds, one indexed query reads the node and service rows whose
``updated_at`` moved since the previous read (less ``margin`` seconds, for transactions
that were still committing and for clocks a little apart). Every change to a node row
(claim, release, report) bumps its ``generation``; a row replaces the cached one only if
it is not older, so a slow read can never undo a newer claim.

Decisions this process has made but not yet written (pending claims) are added on top
of the rows; once a claim is written, the row it answered replaces them. Aggregates are
read again only when their stamp changes. So at 10,000 hosts a decision reads no table:
it works on memory, and the database's conditional UPDATE stays the one arbiter of room.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from strato.domain.aggregates import DEFAULT_ZONE
from strato.domain.ids import HostName, InstanceId, NodeName
from strato.domain.resources import Resources
from strato.scheduler.state import HostState

if TYPE_CHECKING:
    from strato.db.ports import ComputeServiceState, Database, NodeRecord

__all__ = ["CacheSettings", "HostStateCache", "NodeKey"]

NodeKey = tuple[HostName, NodeName]


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheSettings:
    service_down_time: float = 60.0
    refresh_interval: float = 1.0
    full_refresh_interval: float = 60.0
    margin: float = 5.0


class HostStateCache:
    def __init__(self, db: Database, settings: CacheSettings | None = None, *,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self._db = db
        self._settings = settings or CacheSettings()
        self._monotonic = monotonic
        self._records: dict[NodeKey, NodeRecord] = {}
        self._services: dict[HostName, ComputeServiceState] = {}
        self._zones: dict[HostName, str] = {}
        self._zones_stamp: str | None = None
        self._pending: dict[NodeKey, dict[InstanceId, Resources]] = {}
        self._states: dict[NodeKey, HostState] = {}
        self._since: datetime | None = None
        self._now: datetime | None = None
        self._next_down: datetime | None = None
        self._refreshed = float("-inf")
        self._full = float("-inf")
        self._refreshing = asyncio.Lock()
        self.reads = 0          # how many refreshes ran (full or not), for tests and logs
        self.full_reads = 0

    # -- reading -----------------------------------------------------------------------

    async def states(self, *, fresh: bool = False) -> Mapping[NodeKey, HostState]:
        """Every node's state; refreshed first when due (or when ``fresh``). A service
        whose heartbeat is now too old counts as down from this very call on."""
        due = self._monotonic() - self._refreshed >= self._settings.refresh_interval
        if fresh or due:
            await self.refresh()
        now = self._db.now()
        if self._next_down is not None and now >= self._next_down:
            self._now = now
            for key in self._records:
                if self._up_changed(key):
                    self._derive(key)
            self._next_down = self._earliest_down()
        return self._states

    def invalidate(self) -> None:
        """Read what changed before the next decision (an operator changed a service or
        an aggregate)."""
        self._refreshed = float("-inf")
        self._zones_stamp = None

    def _earliest_down(self) -> datetime | None:
        """When the first service that is up now stops counting as up."""
        window = timedelta(seconds=self._settings.service_down_time)
        seen = [s.last_seen for s in self._services.values() if s.last_seen is not None]
        if self._now is None or not seen:
            return None
        upcoming = [t + window for t in seen if t + window >= self._now]
        return min(upcoming) if upcoming else None

    async def refresh(self, *, full: bool = False) -> None:
        """Read what changed (everything when ``full`` or when the full read is due)."""
        async with self._refreshing:
            started = self._monotonic()
            previous = self._since
            full = full or previous is None or \
                started - self._full >= self._settings.full_refresh_interval
            since = None if full or previous is None else \
                previous - timedelta(seconds=self._settings.margin)
            changes = await self._db.nodes.changes(since)
            if full:
                # The stamp (count, newest updated_at) can miss a change stamped within
                # the same clock tick as the last one; a full read re-reads zones too.
                self._zones_stamp = None
            stamp = await self._db.aggregates.stamp()
            zones_changed = stamp != self._zones_stamp
            if zones_changed:
                self._zones = await self._db.aggregates.host_zones()
                self._zones_stamp = stamp
            if full:
                seen = {(r.capacity.host, r.capacity.node) for r in changes.nodes}
                for gone in set(self._records) - seen:
                    self._records.pop(gone, None)
                    self._states.pop(gone, None)
                self._services = {}
            for service in changes.services:
                self._services[service.host] = service
            changed = {self._store(record) for record in changes.nodes}
            self._now = changes.read_at
            self._since = changes.read_at
            self._refreshed = started
            if full:
                self._full = started
                self.full_reads += 1
            self.reads += 1
            service_hosts = {s.host for s in changes.services}
            for key in self._records:
                if full or zones_changed or key in changed or key[0] in service_hosts \
                        or self._up_changed(key):
                    self._derive(key)
            self._next_down = self._earliest_down()

    def _store(self, record: NodeRecord) -> NodeKey:
        key = (record.capacity.host, record.capacity.node)
        current = self._records.get(key)
        if current is None or record.generation >= current.generation:
            self._records[key] = record
        return key

    def _up(self, host: HostName) -> bool:
        service = self._services.get(host)
        if service is None or service.last_seen is None or self._now is None:
            return False
        age = abs((self._now - service.last_seen).total_seconds())
        return age <= self._settings.service_down_time

    def _up_changed(self, key: NodeKey) -> bool:
        state = self._states.get(key)
        return state is None or state.service_up != self._up(key[0])

    def _derive(self, key: NodeKey) -> None:
        record = self._records[key]
        pending = self._pending.get(key, {})
        used = record.used
        for need in pending.values():
            used = used + need
        service = self._services.get(key[0])
        self._states[key] = HostState(
            capacity=record.capacity, used=used, instances=record.instances + len(pending),
            service_up=self._up(key[0]),
            service_disabled=service.disabled if service is not None else False,
            disabled_reason=service.disabled_reason if service is not None else None,
            availability_zone=self._zones.get(key[0], DEFAULT_ZONE),
            failed_builds=record.failed_builds, generation=record.generation)

    # -- this process's decisions ------------------------------------------------------

    def consume(self, key: NodeKey, instance_id: InstanceId, need: Resources) -> None:
        """Count a decision not yet written to the database (Nova's
        ``consume_from_request``), so the next decision sees it."""
        self._pending.setdefault(key, {})[instance_id] = need
        if key in self._records:
            self._derive(key)

    def settle(self, key: NodeKey, instance_id: InstanceId,
               record: NodeRecord | None) -> None:
        """The claim of a :meth:`consume`\\ d decision was written (``record``: the node
        row it left) or refused (``None``: the row changed under us, read it again
        on the next decision)."""
        pending = self._pending.get(key)
        if pending is not None:
            pending.pop(instance_id, None)
            if not pending:
                del self._pending[key]
        if record is not None:
            self._store(record)
        else:
            self._refreshed = float("-inf")
        if key in self._records:
            self._derive(key)

    @property
    def pending(self) -> int:
        return sum(len(p) for p in self._pending.values())
