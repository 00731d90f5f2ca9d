"""``ServiceRepo`` on SQL: service heartbeats and the disabled flag."""

from __future__ import annotations

import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import Store, upsert
from strato.db._rows import service_from_row
from strato.db.ports import ServiceRecord
from strato.domain.errors import NotFound
from strato.domain.ids import HostName

__all__ = ["SqlServiceRepo"]

_S = t.services.c


class SqlServiceRepo:
    """Services in the ``services`` table (see :class:`strato.db.ports.services.ServiceRepo`).
    A service is up when its last heartbeat is within ``service_down_time`` of the clock."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def heartbeat(self, *, binary: str, host: HostName, topic: str) -> None:
        """Record that the service is alive now; the first heartbeat creates it."""
        now = self._store.now()
        row = {"binary": binary, "host": host, "topic": topic, "last_seen": now,
               "disabled": False, "created_at": now, "updated_at": now}
        # An upsert, so the disabled flag an operator set survives restarts.
        stmt = upsert(self._store.dialect, t.services, [row], keys=("binary", "host"),
                      update=("topic", "last_seen", "updated_at"))
        async with self._store.write() as conn:
            await conn.execute(stmt)

    async def list(self, *, binary: str | None = None) -> list[ServiceRecord]:
        """Services ordered by id, optionally only those of one binary."""
        query = sa.select(t.services).order_by(_S.id)
        if binary is not None:
            query = query.where(_S.binary == binary)
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
        now = self._store.now()
        return [service_from_row(row, now, self._store.service_down_time) for row in rows]

    async def set_disabled(self, service_id: int, disabled: bool,
                           reason: str | None = None) -> ServiceRecord:
        """Enable or disable the service (the reason is cleared on enable);
        ``NotFound`` for an unknown id."""
        stmt = (sa.update(t.services).where(_S.id == service_id)
                .values(disabled=disabled, disabled_reason=reason if disabled else None,
                        updated_at=self._store.now())
                .returning(*t.services.c))
        async with self._store.write() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"service {service_id} not found")
        return service_from_row(row, self._store.now(), self._store.service_down_time)
