"""``ImageRepo`` on SQL: images in ``images``, their tags in ``image_tags`` and the
projects they are shared with in ``image_members``."""

from __future__ import annotations

import builtins
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db.ports import ImageQuery, ImageSort
from strato.domain.errors import InvalidState, NotFound, OverQuota
from strato.domain.ids import ImageId, ProjectId
from strato.domain.images import Image, ImageData, ImageMember, ImageStatus, MemberStatus

__all__ = ["SqlImageRepo"]

_G = t.images.c
_T = t.image_tags.c
_M = t.image_members.c

# The columns an update of the metadata writes (everything but data, status and dates).
_METADATA = ("name", "disk_format", "container_format", "min_disk", "min_ram",
             "visibility", "protected", "os_hidden", "owner", "properties")


class SqlImageRepo:
    """Images, tags and members (see :class:`strato.db.ports.images.ImageRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, image: Image) -> Image:
        """Insert the image and its tags; ``Conflict`` if its id exists."""
        values = _image_values(image, self._store.now())
        async with self._store.write(conflict=f"an image with id {image.id} exists") as conn:
            row = (await conn.execute(
                t.images.insert().values(values).returning(*t.images.c))).one()
            await _insert_tags(conn, image.id, image.tags)
        return _image_from_row(row, image.tags)

    async def get(self, image_id: ImageId) -> Image:
        """One image with its tags; ``NotFound`` if unknown."""
        async with self._store.read() as conn:
            row = (await conn.execute(sa.select(t.images).where(_G.id == image_id))).first()
            if row is None:
                raise NotFound(f"image {image_id} not found")
            tags = await _tags(conn, [image_id])
        return _image_from_row(row, tags[image_id])

    async def list(self, query: ImageQuery) -> list[Image]:
        """See :meth:`strato.db.ports.images.ImageRepo.list`."""
        visible = _visible(query)
        order = _sort_columns(query.sort)
        stmt = (sa.select(t.images).where(visible, *_filters(query))
                .order_by(*(col.asc() if asc else col.desc() for col, asc in order))
                .limit(query.limit))
        async with self._store.read() as conn:
            if query.marker is not None:
                stmt = stmt.where(await _after(conn, query.marker, visible, order))
            rows = (await conn.execute(stmt)).all()
            tags = await _tags(conn, [row.id for row in rows])
        return [_image_from_row(row, tags[row.id]) for row in rows]

    async def update(self, image: Image, *, expected: ImageStatus) -> Image:
        """See :meth:`strato.db.ports.images.ImageRepo.update`."""
        values = {key: value for key, value in _image_values(image, self._store.now()).items()
                  if key in _METADATA}
        values["updated_at"] = self._store.now()
        stmt = (sa.update(t.images).where(_G.id == image.id, _G.status == expected.value)
                .values(values).returning(*t.images.c))
        async with self._store.write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                await _explain_miss(conn, image.id, (expected,))
            await conn.execute(sa.delete(t.image_tags).where(_T.image_id == image.id))
            await _insert_tags(conn, image.id, image.tags)
        return _image_from_row(row, image.tags)

    async def set_status(self, image_id: ImageId, status: ImageStatus, *,
                         expected: tuple[ImageStatus, ...] | None = None,
                         size: int | None = None, checksum: str | None = None) -> Image:
        """Move the image to ``status`` (setting size/checksum when given) if its status
        is one of ``expected``; ``InvalidState`` naming the actual status otherwise."""
        values: dict[str, object] = {"status": status.value}
        values |= {k: v for k, v in (("size", size), ("checksum", checksum)) if v is not None}
        return await self._move(image_id, values, expected)

    async def activate(self, image_id: ImageId, data: ImageData) -> Image:
        """See :meth:`strato.db.ports.images.ImageRepo.activate`."""
        values = {"status": ImageStatus.ACTIVE.value, "size": data.size,
                  "checksum": data.checksum, "os_hash_algo": data.os_hash_algo,
                  "os_hash_value": data.os_hash_value, "virtual_size": data.virtual_size}
        return await self._move(image_id, values, (ImageStatus.SAVING,))

    async def _move(self, image_id: ImageId, values: dict[str, object],
                    expected: tuple[ImageStatus, ...] | None) -> Image:
        stmt = (sa.update(t.images).where(_G.id == image_id)
                .values({**values, "updated_at": self._store.now()})
                .returning(*t.images.c))
        if expected is not None:
            stmt = stmt.where(_G.status.in_([s.value for s in expected]))
        async with self._store.write() as conn:
            row = (await conn.execute(stmt)).first()
            if row is None:
                await _explain_miss(conn, image_id, expected)
            tags = await _tags(conn, [image_id])
        return _image_from_row(row, tags[image_id])

    async def add_tag(self, image_id: ImageId, tag: str, *, max_tags: int) -> None:
        """Tag the image (idempotent); ``OverQuota`` past ``max_tags`` tags."""
        async with self._store.write() as conn:
            await _touch(conn, image_id, self._store.now())
            tags = (await _tags(conn, [image_id]))[image_id]
            if tag in tags:
                return
            if len(tags) >= max_tags:
                raise OverQuota(f"Maximum number of tags ({max_tags}) exceeded for image "
                                f"{image_id}.")
            await _insert_tags(conn, image_id, (tag,))

    async def remove_tag(self, image_id: ImageId, tag: str) -> None:
        """Remove one tag; ``NotFound`` if the image or the tag is missing."""
        async with self._store.write() as conn:
            await _touch(conn, image_id, self._store.now())
            result = await conn.execute(sa.delete(t.image_tags).where(
                _T.image_id == image_id, _T.value == tag))
            if result.rowcount == 0:
                raise NotFound(f"Tag {tag} not found on image {image_id}.")

    async def delete(self, image_id: ImageId) -> None:
        """Remove the image, its tags and its members; ``NotFound`` if unknown."""
        async with self._store.write() as conn:
            # Explicit, not left to ON DELETE CASCADE: SQLite enforces foreign keys only
            # when a connection asks for it.
            await conn.execute(sa.delete(t.image_tags).where(_T.image_id == image_id))
            await conn.execute(sa.delete(t.image_members).where(_M.image_id == image_id))
            result = await conn.execute(sa.delete(t.images).where(_G.id == image_id))
        if result.rowcount == 0:
            raise NotFound(f"image {image_id} not found")

    async def add_member(self, member: ImageMember) -> ImageMember:
        """Share the image with a project; ``Conflict`` if it already is a member."""
        now = self._store.now()
        values = {"image_id": member.image_id, "member": member.member_id,
                  "status": member.status.value, "created_at": member.created_at or now,
                  "updated_at": member.updated_at or now}
        message = f"Member {member.member_id} already exists for image {member.image_id}."
        async with self._store.write(conflict=message) as conn:
            row = (await conn.execute(
                t.image_members.insert().values(values).returning(*t.image_members.c))).one()
        return _member_from_row(row)

    async def get_member(self, image_id: ImageId, member_id: ProjectId) -> ImageMember:
        """``NotFound`` if the project is not a member of the image."""
        async with self._store.read() as conn:
            row = (await conn.execute(sa.select(t.image_members).where(
                _M.image_id == image_id, _M.member == member_id))).first()
        if row is None:
            raise NotFound(f"{member_id} is not a member of image {image_id}.")
        return _member_from_row(row)

    async def list_members(self, image_id: ImageId) -> builtins.list[ImageMember]:
        """The image's members, oldest first."""
        async with self._store.read() as conn:
            rows = (await conn.execute(sa.select(t.image_members)
                                       .where(_M.image_id == image_id)
                                       .order_by(_M.created_at, _M.id))).all()
        return [_member_from_row(row) for row in rows]

    async def set_member_status(self, image_id: ImageId, member_id: ProjectId,
                                status: MemberStatus) -> ImageMember:
        """Record the member's answer; ``NotFound`` if it is not a member."""
        stmt = (sa.update(t.image_members)
                .where(_M.image_id == image_id, _M.member == member_id)
                .values(status=status.value, updated_at=self._store.now())
                .returning(*t.image_members.c))
        async with self._store.write() as conn:
            row = (await conn.execute(stmt)).first()
        if row is None:
            raise NotFound(f"{member_id} is not a member of image {image_id}.")
        return _member_from_row(row)

    async def remove_member(self, image_id: ImageId, member_id: ProjectId) -> None:
        """Stop sharing; ``NotFound`` if the project is not a member."""
        async with self._store.write() as conn:
            result = await conn.execute(sa.delete(t.image_members).where(
                _M.image_id == image_id, _M.member == member_id))
        if result.rowcount == 0:
            raise NotFound(f"{member_id} is not a member of image {image_id}.")


# ---- rows --------------------------------------------------------------------------------


def _image_values(image: Image, now: datetime) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "status": image.status.value,
            "disk_format": image.disk_format, "container_format": image.container_format,
            "size": image.size, "virtual_size": image.virtual_size,
            "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
            "os_hash_value": image.os_hash_value, "min_disk": image.min_disk,
            "min_ram": image.min_ram, "visibility": image.visibility,
            "protected": image.protected, "os_hidden": image.os_hidden,
            "owner": image.owner, "properties": dict(image.properties),
            "created_at": image.created_at or now, "updated_at": image.updated_at or now}


def _image_from_row(row: Any, tags: Sequence[str]) -> Image:
    return Image(id=ImageId(row.id), name=row.name, status=ImageStatus(row.status),
                 disk_format=row.disk_format, container_format=row.container_format,
                 size=row.size, virtual_size=row.virtual_size, checksum=row.checksum,
                 os_hash_algo=row.os_hash_algo, os_hash_value=row.os_hash_value,
                 min_disk=row.min_disk, min_ram=row.min_ram, visibility=row.visibility,
                 protected=row.protected, os_hidden=row.os_hidden,
                 owner=ProjectId(row.owner) if row.owner is not None else None,
                 properties=dict(row.properties), tags=tuple(sorted(tags)),
                 created_at=row.created_at, updated_at=row.updated_at)


def _member_from_row(row: Any) -> ImageMember:
    return ImageMember(image_id=ImageId(row.image_id), member_id=ProjectId(row.member),
                       status=MemberStatus(row.status), created_at=row.created_at,
                       updated_at=row.updated_at)


async def _insert_tags(conn: AsyncConnection, image_id: ImageId, tags: Sequence[str]) -> None:
    if tags:
        await conn.execute(t.image_tags.insert(),
                           [{"image_id": image_id, "value": tag} for tag in set(tags)])


async def _tags(conn: AsyncConnection, ids: Sequence[str]) -> dict[str, list[str]]:
    tags: dict[str, list[str]] = defaultdict(list)
    if ids:
        rows = await conn.execute(sa.select(_T.image_id, _T.value)
                                  .where(_T.image_id.in_(ids)))
        for row in rows:
            tags[row.image_id].append(row.value)
    return tags


async def _touch(conn: AsyncConnection, image_id: ImageId, now: datetime) -> None:
    result = await conn.execute(sa.update(t.images).where(_G.id == image_id)
                                .values(updated_at=now))
    if result.rowcount == 0:
        raise NotFound(f"image {image_id} not found")


async def _explain_miss(conn: AsyncConnection, image_id: ImageId,
                        expected: tuple[ImageStatus, ...] | None) -> NoReturn:
    actual = (await conn.execute(sa.select(_G.status).where(_G.id == image_id))).scalar()
    if actual is None:
        raise NotFound(f"image {image_id} not found")
    raise InvalidState(f"image {image_id} is {actual}, expected one of "
                       f"({', '.join(s.value for s in expected or ())})")


# ---- the list query ----------------------------------------------------------------------


def _membership(viewer: ProjectId, status: MemberStatus | None) -> sa.ColumnElement[bool]:
    member = sa.select(_M.id).where(_M.image_id == _G.id, _M.member == viewer)
    if status is not None:
        member = member.where(_M.status == status.value)
    return sa.exists(member)


def _visible(query: ImageQuery) -> sa.ColumnElement[bool]:
    """Which images the viewer's list may hold (Glance's visibility rules)."""
    wanted = query.visibility
    if query.viewer is None:  # an admin: every image, or every one of a visibility
        return sa.true() if wanted in (None, "all") else _G.visibility == wanted
    own = _G.owner == query.viewer
    shared = sa.and_(_G.visibility == "shared",
                     _membership(query.viewer, query.member_status))
    if wanted is None:
        return sa.or_(own, _G.visibility == "public", shared)
    if wanted == "all":
        return sa.or_(own, _G.visibility.in_(("public", "community")), shared)
    if wanted == "private":
        return sa.and_(own, _G.visibility == "private")
    if wanted == "shared":
        return sa.and_(_G.visibility == "shared", sa.or_(own, shared))
    return _G.visibility == wanted  # public, community


def _filters(query: ImageQuery) -> list[sa.ColumnElement[bool]]:
    equal: list[tuple[sa.ColumnElement[Any], object]] = [
        (_G.id, query.id), (_G.name, query.name), (_G.status, query.status),
        (_G.owner, query.owner),
        (_G.disk_format, query.disk_format), (_G.container_format, query.container_format),
        (_G.protected, query.protected), (_G.os_hidden, query.os_hidden)]
    where = [col == value for col, value in equal if value is not None]
    where += [_G[key].in_(values) for key, values in query.one_of]
    if query.size_min is not None:
        where.append(_G.size >= query.size_min)
    if query.size_max is not None:
        where.append(_G.size <= query.size_max)
    where += [sa.exists(sa.select(_T.value).where(_T.image_id == _G.id, _T.value == tag))
              for tag in query.tags]
    where += [_G.properties[key].as_string() == value for key, value in query.properties]
    return where


# Nullable sort keys are compared through COALESCE, so NULLs sort the same way on both
# backends (SQLite puts them first, PostgreSQL last) and the marker condition below can
# use plain comparisons.
_SORT_COLUMNS: dict[str, sa.ColumnElement[Any]] = {
    "name": sa.func.coalesce(_G.name, ""),
    "status": _G.status,
    "container_format": sa.func.coalesce(_G.container_format, ""),
    "disk_format": sa.func.coalesce(_G.disk_format, ""),
    "size": sa.func.coalesce(_G.size, -1),
    "id": _G.id,
    "created_at": _G.created_at,
    "updated_at": sa.func.coalesce(_G.updated_at, _G.created_at),
}


def _sort_columns(sort: Sequence[ImageSort]) -> list[tuple[sa.ColumnElement[Any], bool]]:
    keys = [(s.key, s.ascending) for s in sort]
    # created_at then id make the order total, so a marker names one position.
    keys += [(key, False) for key in ("created_at", "id") if key not in {k for k, _ in keys}]
    return [(_SORT_COLUMNS[key], ascending) for key, ascending in keys]


async def _after(conn: AsyncConnection, marker: ImageId, visible: sa.ColumnElement[bool],
                 order: list[tuple[sa.ColumnElement[Any], bool]]) -> sa.ColumnElement[bool]:
    """Rows strictly after the marker in ``order``: a lexicographic comparison."""
    row = (await conn.execute(sa.select(*(col for col, _ in order))
                              .where(_G.id == marker, visible))).first()
    if row is None:
        raise NotFound(f"marker {marker} not found")
    clauses = []
    for i, (col, ascending) in enumerate(order):
        ties = [order[j][0] == row[j] for j in range(i)]
        clauses.append(sa.and_(*ties, col > row[i] if ascending else col < row[i]))
    return sa.or_(*clauses)
