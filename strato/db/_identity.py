"""``IdentityRepo`` on SQL: projects and users."""

from __future__ import annotations

import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import Store
from strato.domain.errors import Conflict, NotFound
from strato.domain.identity import Project, User
from strato.domain.ids import ProjectId, UserId, new_uuid

__all__ = ["SqlIdentityRepo"]


def _project(row: sa.Row[tuple[object, ...]]) -> Project:
    m = row._mapping
    return Project(id=ProjectId(m["id"]), name=m["name"], description=m["description"],
                   enabled=bool(m["enabled"]))


def _user(row: sa.Row[tuple[object, ...]]) -> User:
    m = row._mapping
    return User(id=UserId(m["id"]), name=m["name"],
                default_project_id=ProjectId(m["default_project_id"])
                if m["default_project_id"] else None,
                enabled=bool(m["enabled"]))


class SqlIdentityRepo:
    """Projects and users (see :class:`strato.db.uow.IdentityRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def project_by_name(self, name: str) -> Project:
        async with self._store.read() as conn:
            row = (await conn.execute(
                sa.select(t.projects).where(t.projects.c.name == name))).first()
        if row is None:
            raise NotFound(f"project {name} could not be found")
        return _project(row)

    async def user_by_name(self, name: str) -> User:
        async with self._store.read() as conn:
            row = (await conn.execute(sa.select(t.users).where(t.users.c.name == name))).first()
        if row is None:
            raise NotFound(f"user {name} could not be found")
        return _user(row)

    async def ensure_project(self, name: str, description: str = "") -> Project:
        """The project called ``name``, created when missing."""
        await self._insert_missing(t.projects, name, {"description": description})
        return await self.project_by_name(name)

    async def ensure_user(self, name: str, default_project_id: ProjectId | None) -> User:
        """The user called ``name``, created when missing."""
        await self._insert_missing(t.users, name, {"default_project_id": default_project_id})
        return await self.user_by_name(name)

    async def _insert_missing(self, table: sa.Table, name: str,
                              values: dict[str, object]) -> None:
        """Insert a row called ``name`` unless one exists. A concurrent creator wins the
        unique constraint and the loser's Conflict is the expected outcome."""
        async with self._store.read() as conn:
            found = (await conn.execute(
                sa.select(table.c.id).where(table.c.name == name))).first()
        if found is not None:
            return
        row = {"id": new_uuid().replace("-", ""), "name": name, "enabled": True,
               "created_at": self._store.now(), **values}
        try:
            async with self._store.write(conflict=f"{table.name} {name} exists") as conn:
                await conn.execute(sa.insert(table).values(row))
        except Conflict:
            pass
