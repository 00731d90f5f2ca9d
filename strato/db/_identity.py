"""``IdentityRepo`` on SQL: domains, projects, users, passwords, roles, assignments and
revoked tokens."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import Store
from strato.domain.errors import Conflict, NotFound
from strato.domain.identity import Domain, DomainId, Project, Role, RoleId, User
from strato.domain.ids import ProjectId, UserId, new_uuid

__all__ = ["SqlIdentityRepo"]

Row = sa.Row[tuple[object, ...]]


def _project(row: Row) -> Project:
    m = row._mapping
    return Project(id=ProjectId(m["id"]), name=m["name"], description=m["description"],
                   enabled=bool(m["enabled"]), domain_id=DomainId(m["domain_id"]))


def _user(row: Row) -> User:
    m = row._mapping
    return User(id=UserId(m["id"]), name=m["name"],
                default_project_id=ProjectId(m["default_project_id"])
                if m["default_project_id"] else None,
                enabled=bool(m["enabled"]), domain_id=DomainId(m["domain_id"]))


def _domain(row: Row) -> Domain:
    m = row._mapping
    return Domain(id=DomainId(m["id"]), name=m["name"], description=m["description"],
                  enabled=bool(m["enabled"]))


def _role(row: Row) -> Role:
    return Role(id=RoleId(row._mapping["id"]), name=row._mapping["name"])


def _new_id() -> str:
    return new_uuid().replace("-", "")


_USER_COLUMNS = [c for c in t.users.c if c.name != "password_hash"]


class SqlIdentityRepo:
    """See :class:`strato.db.uow.IdentityRepo`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _one(self, query: sa.Select[tuple[object, ...]], what: str) -> Row:
        async with self._store.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise NotFound(f"{what} could not be found")
        return row

    # ---- lookups ---------------------------------------------------------------------

    async def project(self, project_id: ProjectId) -> Project:
        return _project(await self._one(
            sa.select(t.projects).where(t.projects.c.id == project_id),
            f"project {project_id}"))

    async def project_by_name(self, name: str,
                              domain_id: DomainId | None = None) -> Project:
        query = sa.select(t.projects).where(t.projects.c.name == name)
        if domain_id is not None:
            query = query.where(t.projects.c.domain_id == domain_id)
        return _project(await self._one(query, f"project {name}"))

    async def user(self, user_id: UserId) -> User:
        return _user(await self._one(
            sa.select(*_USER_COLUMNS).where(t.users.c.id == user_id), f"user {user_id}"))

    async def user_by_name(self, name: str, domain_id: DomainId | None = None) -> User:
        query = sa.select(*_USER_COLUMNS).where(t.users.c.name == name)
        if domain_id is not None:
            query = query.where(t.users.c.domain_id == domain_id)
        return _user(await self._one(query, f"user {name}"))

    async def domain(self, domain_id: DomainId) -> Domain:
        return _domain(await self._one(
            sa.select(t.domains).where(t.domains.c.id == domain_id), f"domain {domain_id}"))

    async def domain_by_name(self, name: str) -> Domain:
        return _domain(await self._one(
            sa.select(t.domains).where(t.domains.c.name == name), f"domain {name}"))

    # ---- creation (idempotent, safe to race) -----------------------------------------

    async def ensure_domain(self, domain_id: DomainId, name: str) -> Domain:
        await self._insert_ignoring_conflict(t.domains, {
            "id": domain_id, "name": name, "description": "", "enabled": True,
            "created_at": self._store.now()})
        return await self.domain(domain_id)

    async def ensure_project(self, name: str, description: str = "") -> Project:
        """The project called ``name``, created when missing."""
        await self._insert_missing(t.projects, name, {"description": description})
        return await self.project_by_name(name)

    async def ensure_user(self, name: str, default_project_id: ProjectId | None) -> User:
        """The user called ``name``, created when missing."""
        await self._insert_missing(t.users, name, {"default_project_id": default_project_id})
        return await self.user_by_name(name)

    async def ensure_role(self, name: str) -> Role:
        await self._insert_missing(t.roles, name, {})
        return _role(await self._one(sa.select(t.roles).where(t.roles.c.name == name),
                                     f"role {name}"))

    async def assign_role(self, user_id: UserId, project_id: ProjectId,
                          role_id: RoleId) -> None:
        await self._insert_ignoring_conflict(t.role_assignments, {
            "user_id": user_id, "project_id": project_id, "role_id": role_id})

    async def _insert_missing(self, table: sa.Table, name: str,
                              values: dict[str, object]) -> None:
        """Insert a row called ``name`` unless one exists. A concurrent creator wins the
        unique constraint and the loser's Conflict is the expected outcome."""
        async with self._store.read() as conn:
            found = (await conn.execute(
                sa.select(table.c.id).where(table.c.name == name))).first()
        if found is not None:
            return
        row = {"id": _new_id(), "name": name, "created_at": self._store.now(), **values}
        if "enabled" in table.c:
            row.setdefault("enabled", True)
        await self._insert_ignoring_conflict(table, row)

    async def _insert_ignoring_conflict(self, table: sa.Table, row: dict[str, object]) -> None:
        try:
            async with self._store.write(conflict=f"{table.name} row exists") as conn:
                await conn.execute(sa.insert(table).values(row))
        except Conflict:
            pass

    # ---- passwords and roles ---------------------------------------------------------

    async def password_hash(self, user_id: UserId) -> str | None:
        row = await self._one(sa.select(t.users.c.password_hash)
                              .where(t.users.c.id == user_id), f"user {user_id}")
        value = row._mapping["password_hash"]
        return str(value) if value else None

    async def set_password_hash(self, user_id: UserId, password_hash: str | None) -> None:
        async with self._store.write() as conn:
            done = await conn.execute(sa.update(t.users).where(t.users.c.id == user_id)
                                      .values(password_hash=password_hash,
                                              updated_at=self._store.now()))
        if done.rowcount == 0:
            raise NotFound(f"user {user_id} could not be found")

    async def roles_on(self, user_id: UserId, project_id: ProjectId) -> list[Role]:
        a = t.role_assignments
        query = (sa.select(t.roles).join(a, a.c.role_id == t.roles.c.id)
                 .where(a.c.user_id == user_id, a.c.project_id == project_id)
                 .order_by(t.roles.c.name))
        async with self._store.read() as conn:
            return [_role(row) for row in await conn.execute(query)]

    async def projects_of(self, user_id: UserId) -> list[Project]:
        a = t.role_assignments
        query = (sa.select(t.projects).where(t.projects.c.id.in_(
            sa.select(a.c.project_id).where(a.c.user_id == user_id)))
            .order_by(t.projects.c.name))
        async with self._store.read() as conn:
            return [_project(row) for row in await conn.execute(query)]

    # ---- revoked tokens --------------------------------------------------------------

    async def revoke_token(self, audit_id: str, expires_at: datetime) -> None:
        """Record the revocation and forget those whose tokens have expired anyway."""
        r = t.revoked_tokens
        async with self._store.write() as conn:
            await conn.execute(sa.delete(r).where(r.c.expires_at <= self._store.now()))
            found = (await conn.execute(
                sa.select(r.c.audit_id).where(r.c.audit_id == audit_id))).first()
            if found is None:
                await conn.execute(sa.insert(r).values(audit_id=audit_id,
                                                       expires_at=expires_at))

    async def any_revoked(self, audit_ids: Sequence[str]) -> bool:
        r = t.revoked_tokens
        async with self._store.read() as conn:
            found = (await conn.execute(
                sa.select(r.c.audit_id).where(r.c.audit_id.in_(list(audit_ids))))).first()
        return found is not None
