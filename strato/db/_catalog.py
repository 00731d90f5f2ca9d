"""``FlavorRepo`` and ``ImageRepo`` on SQL: the catalogue an instance is built from."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import NoReturn

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._rows import flavor_from_row, flavor_values, image_from_row, image_values
from strato.domain.errors import InvalidState, NotFound
from strato.domain.ids import FlavorId, ImageId, ProjectId
from strato.domain.images import Image, ImageStatus
from strato.domain.resources import Flavor

__all__ = ["SqlFlavorRepo", "SqlImageRepo"]

_F = t.flavors.c
_X = t.flavor_extra_specs.c
_G = t.images.c


class SqlFlavorRepo:
    """Flavors in ``flavors`` + ``flavor_extra_specs`` (see :class:`strato.db.uow.FlavorRepo`)."""

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


class SqlImageRepo:
    """Image records in ``images`` (see :class:`strato.db.uow.ImageRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, image: Image) -> Image:
        """Insert the image; ``Conflict`` if its id exists. Returns it as stored."""
        values = image_values(image, self._store.now())
        async with self._store.write(conflict=f"an image with id {image.id} exists") as conn:
            row = (await conn.execute(
                t.images.insert().values(values).returning(*t.images.c))).one()
        return image_from_row(row)

    async def get(self, image_id: ImageId) -> Image:
        """One image; ``NotFound`` if unknown."""
        async with self._store.read() as conn:
            row = (await conn.execute(sa.select(t.images).where(_G.id == image_id))).first()
        if row is None:
            raise NotFound(f"image {image_id} not found")
        return image_from_row(row)

    async def list(self, *, owner: ProjectId | None = None, limit: int | None = None,
                   marker: ImageId | None = None) -> list[Image]:
        """Images ``owner`` may see (its own and public ones; all for ``None``), newest
        first, after ``marker`` (``NotFound`` if unknown)."""
        query = sa.select(t.images).order_by(_G.created_at.desc(), _G.id.desc()).limit(limit)
        if owner is not None:
            query = query.where(sa.or_(_G.owner == owner, _G.visibility == "public"))
        async with self._store.read() as conn:
            if marker is not None:
                query = query.where(await _after_image(conn, marker))
            rows = (await conn.execute(query)).all()
        return [image_from_row(row) for row in rows]

    async def set_status(self, image_id: ImageId, status: ImageStatus, *,
                         expected: tuple[ImageStatus, ...] | None = None,
                         size: int | None = None, checksum: str | None = None) -> Image:
        """Move the image to ``status`` (setting size/checksum when given) if its status
        is one of ``expected``; ``InvalidState`` naming the actual status otherwise."""
        values: dict[str, object] = {"status": status.value, "updated_at": self._store.now()}
        values |= {k: v for k, v in (("size", size), ("checksum", checksum)) if v is not None}
        stmt = (sa.update(t.images).where(_G.id == image_id).values(values)
                .returning(*t.images.c))
        if expected is not None:
            stmt = stmt.where(_G.status.in_([s.value for s in expected]))
        async with self._store.write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                await _explain_image_miss(conn, image_id, expected)
        return image_from_row(row)

    async def delete(self, image_id: ImageId) -> None:
        """Remove the image record; ``NotFound`` if unknown."""
        async with self._store.write() as conn:
            result = await conn.execute(sa.delete(t.images).where(_G.id == image_id))
        if result.rowcount == 0:
            raise NotFound(f"image {image_id} not found")


async def _explain_image_miss(conn: AsyncConnection, image_id: ImageId,
                              expected: tuple[ImageStatus, ...] | None) -> NoReturn:
    actual = (await conn.execute(sa.select(_G.status).where(_G.id == image_id))).scalar()
    if actual is None:
        raise NotFound(f"image {image_id} not found")
    raise InvalidState(f"image {image_id} is {actual}, expected one of "
                       f"({', '.join(s.value for s in expected or ())})")


async def _after_image(conn: AsyncConnection, marker: ImageId) -> sa.ColumnElement[bool]:
    row = (await conn.execute(sa.select(_G.created_at, _G.id).where(_G.id == marker))).first()
    if row is None:
        raise NotFound(f"marker {marker} not found")
    return sa.or_(_G.created_at < row.created_at,
                  sa.and_(_G.created_at == row.created_at, _G.id < row.id))
