"""``FlavorRepo`` on SQL: the flavors an instance is built from (images: ``_images``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._rows import flavor_from_row, flavor_values
from strato.domain.errors import NotFound
from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor

__all__ = ["SqlFlavorRepo"]

_F = t.flavors.c
_X = t.flavor_extra_specs.c


class SqlFlavorRepo:
    """Flavors in ``flavors`` + ``flavor_extra_specs`` (see
    :class:`strato.db.ports.catalog.FlavorRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def list(self, *, include_private: bool = False, min_ram: int = 0, min_disk: int = 0,
                   limit: int | None = None, marker: FlavorId | None = None) -> list[Flavor]:
        """Flavors ordered by flavor id, after ``marker`` (``NotFound`` if unknown)."""
        query = (sa.select(t.flavors)
                 .where(_F.memory_mb >= min_ram, _F.root_gb >= min_disk)
                 .order_by(_F.flavorid).limit(limit))
        if not include_private:
            query = query.where(_F.is_public == sa.true())
        if marker is not None:
            query = query.where(_F.flavorid > marker)
        async with self._store.read() as conn:
            if marker is not None:
                await _flavor_pk(conn, marker)
            rows = (await conn.execute(query)).all()
            specs = await _extra_specs(conn, [row.id for row in rows])
        return [flavor_from_row(row, specs[row.id]) for row in rows]

    async def get(self, flavor_id: FlavorId) -> Flavor:
        """One flavor with its extra specs; ``NotFound`` if unknown."""
        async with self._store.read() as conn:
            row = (await conn.execute(
                sa.select(t.flavors).where(_F.flavorid == flavor_id))).first()
            if row is None:
                raise NotFound(f"flavor {flavor_id} not found")
            specs = await _extra_specs(conn, [row.id])
        return flavor_from_row(row, specs[row.id])

    async def create(self, flavor: Flavor) -> Flavor:
        """Insert the flavor and its extra specs; ``Conflict`` if the id or name exists."""
        message = f"a flavor with id {flavor.id} or name {flavor.name!r} exists"
        async with self._store.write(conflict=message) as conn:
            pk = (await conn.execute(t.flavors.insert().values(
                flavor_values(flavor, self._store.now())).returning(_F.id))).scalar_one()
            if flavor.extra_specs:
                await conn.execute(t.flavor_extra_specs.insert(), [
                    {"flavor_id": pk, "key": key, "value": value}
                    for key, value in flavor.extra_specs.items()])
        return flavor

    async def delete(self, flavor_id: FlavorId) -> None:
        """Delete the flavor (instances keep their snapshot); ``NotFound`` if unknown."""
        async with self._store.write() as conn:
            pk = await _flavor_pk(conn, flavor_id)
            # Explicit, not left to ON DELETE CASCADE: SQLite enforces foreign keys only
            # when a connection asks for it.
            await conn.execute(sa.delete(t.flavor_extra_specs).where(_X.flavor_id == pk))
            await conn.execute(sa.delete(t.flavors).where(_F.id == pk))


async def _flavor_pk(conn: AsyncConnection, flavor_id: FlavorId) -> int:
    pk = (await conn.execute(sa.select(_F.id).where(_F.flavorid == flavor_id))).scalar()
    if pk is None:
        raise NotFound(f"flavor {flavor_id} not found")
    return int(pk)


async def _extra_specs(conn: AsyncConnection, pks: Sequence[int]) -> dict[int, dict[str, str]]:
    specs: dict[int, dict[str, str]] = defaultdict(dict)
    if pks:
        rows = await conn.execute(sa.select(_X.flavor_id, _X.key, _X.value)
                                  .where(_X.flavor_id.in_(pks)))
        for row in rows:
            specs[row.flavor_id][row.key] = row.value
    return specs
