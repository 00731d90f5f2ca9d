"""``IdentityRepo`` on SQL: domains, projects, users, passwords, roles, assignments and
token revocations, plus the identity revision every write moves on (see
:class:`strato.db.ports.identity.IdentityRepo`)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store, upsert
from strato.domain.errors import Conflict, NotFound
from strato.domain.identity import (
    Domain,
    DomainId,
    NewPassword,
    Project,
    Role,
    RoleAssignment,
    RoleId,
    User,
)
from strato.domain.ids import ProjectId, UserId, new_uuid

__all__ = ["SqlIdentityRepo", "identity_revision", "user_token_revocations"]

Row = sa.Row[tuple[object, ...]]

# The two tables of migration 0011. They belong in strato.db.tables with the others;
# they are declared on its metadata here, so the schema comparison sees them.
# One row (id 1): the revision of all identity data, moved on by every write.
identity_revision = sa.Table(
    "identity_revision", t.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
)
# Per user: tokens issued before this time are refused (a password change, a disable).
user_token_revocations = sa.Table(
    "user_token_revocations", t.metadata,
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("issued_before", t.UtcDateTime, nullable=False),
)
_REVISION_ROW = 1


def _project(row: Row) -> Project:
    m = row._mapping
    return Project(id=ProjectId(m["id"]), name=m["name"], description=m["description"],
                   enabled=bool(m["enabled"]), domain_id=DomainId(m["domain_id"]))


def _user(row: Row) -> User:
    m = row._mapping
    return User(id=UserId(m["id"]), name=m["name"],
                default_project_id=ProjectId(m["default_project_id"])
                if m["default_project_id"] else None,
                enabled=bool(m["enabled"]), domain_id=DomainId(m["domain_id"]),
                extra=dict(m["extra"] or {}))


def _domain(row: Row) -> Domain:
    m = row._mapping
    return Domain(id=DomainId(m["id"]), name=m["name"], description=m["description"],
                  enabled=bool(m["enabled"]))


def _role(row: Row) -> Role:
    return Role(id=RoleId(row._mapping["id"]), name=row._mapping["name"])


def _assignment(row: Row) -> RoleAssignment:
    m = row._mapping
    return RoleAssignment(user_id=UserId(m["user_id"]), project_id=ProjectId(m["project_id"]),
                          role_id=RoleId(m["role_id"]))


def _new_id() -> str:
    return new_uuid().replace("-", "")


def _not_found(kind: str, ident: str) -> NotFound:
    return NotFound(f"Could not find {kind}: {ident}.")


def _duplicate(kind: str, name: str, domain_id: str | None = None) -> str:
    """Keystone's message for a name taken."""
    where = f" at domain ID {domain_id}" if domain_id else ""
    return (f"Conflict occurred attempting to store {kind} - Duplicate entry found with "
            f"name {name}{where}.")


_USER_COLUMNS = [c for c in t.users.c if c.name != "password_hash"]


class SqlIdentityRepo:
    """See :class:`strato.db.ports.identity.IdentityRepo`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def _one(self, query: sa.Select[tuple[object, ...]], kind: str, ident: str) -> Row:
        async with self._store.read() as conn:
            row = (await conn.execute(query)).first()
        if row is None:
            raise _not_found(kind, ident)
        return row

    async def _all(self, query: sa.Select[tuple[object, ...]]) -> list[Row]:
        async with self._store.read() as conn:
            return list(await conn.execute(query))

    @asynccontextmanager
    async def _writing(self, *, conflict: str | None = None
                       ) -> AsyncIterator[AsyncConnection]:
        """A write transaction that moves the revision on as its last statement (unless
        it fails). Last, so a writer holds the revision row's lock only while it commits
        and never waits for another row while holding it: the one row every identity
        write shares adds no lock cycle."""
        r = identity_revision
        async with self._store.write(conflict=conflict) as conn:
            yield conn
            await conn.execute(upsert(
                self._store.dialect, r, [{"id": _REVISION_ROW, "revision": 1}],
                keys=("id",), update=(), extra={"revision": r.c.revision + 1}))

    async def _refuse_tokens_of(self, conn: AsyncConnection, user_id: UserId) -> None:
        """Refuse the user's tokens issued until now (in the caller's transaction)."""
        await conn.execute(upsert(
            self._store.dialect, user_token_revocations,
            [{"user_id": user_id, "issued_before": self._store.now()}],
            keys=("user_id",), update=("issued_before",)))

    async def revision(self) -> int:
        r = identity_revision
        async with self._store.read() as conn:
            value = (await conn.execute(sa.select(r.c.revision)
                                        .where(r.c.id == _REVISION_ROW))).scalar()
        return int(value or 0)

    # ---- lookups ---------------------------------------------------------------------

    async def project(self, project_id: ProjectId) -> Project:
        return _project(await self._one(
            sa.select(t.projects).where(t.projects.c.id == project_id), "project", project_id))

    async def project_by_name(self, name: str,
                              domain_id: DomainId | None = None) -> Project:
        query = sa.select(t.projects).where(t.projects.c.name == name)
        if domain_id is not None:
            query = query.where(t.projects.c.domain_id == domain_id)
        return _project(await self._one(query, "project", name))

    async def user(self, user_id: UserId) -> User:
        return _user(await self._one(
            sa.select(*_USER_COLUMNS).where(t.users.c.id == user_id), "user", user_id))

    async def user_by_name(self, name: str, domain_id: DomainId | None = None) -> User:
        query = sa.select(*_USER_COLUMNS).where(t.users.c.name == name)
        if domain_id is not None:
            query = query.where(t.users.c.domain_id == domain_id)
        return _user(await self._one(query, "user", name))

    async def domain(self, domain_id: DomainId) -> Domain:
        return _domain(await self._one(
            sa.select(t.domains).where(t.domains.c.id == domain_id), "domain", domain_id))

    async def domain_by_name(self, name: str) -> Domain:
        return _domain(await self._one(
            sa.select(t.domains).where(t.domains.c.name == name), "domain", name))

    async def role(self, role_id: RoleId) -> Role:
        return _role(await self._one(
            sa.select(t.roles).where(t.roles.c.id == role_id), "role", role_id))

    async def domains(self, *, name: str | None = None,
                      enabled: bool | None = None) -> list[Domain]:
        d = t.domains
        query = sa.select(d).order_by(d.c.name)
        if name is not None:
            query = query.where(d.c.name == name)
        if enabled is not None:
            query = query.where(d.c.enabled == enabled)
        return [_domain(row) for row in await self._all(query)]

    async def projects(self, *, name: str | None = None, domain_id: DomainId | None = None,
                       enabled: bool | None = None) -> list[Project]:
        p = t.projects
        query = sa.select(p).order_by(p.c.name)
        if name is not None:
            query = query.where(p.c.name == name)
        if domain_id is not None:
            query = query.where(p.c.domain_id == domain_id)
        if enabled is not None:
            query = query.where(p.c.enabled == enabled)
        return [_project(row) for row in await self._all(query)]

    async def users(self, *, name: str | None = None, domain_id: DomainId | None = None,
                    enabled: bool | None = None) -> list[User]:
        u = t.users
        query = sa.select(*_USER_COLUMNS).order_by(u.c.name)
        if name is not None:
            query = query.where(u.c.name == name)
        if domain_id is not None:
            query = query.where(u.c.domain_id == domain_id)
        if enabled is not None:
            query = query.where(u.c.enabled == enabled)
        return [_user(row) for row in await self._all(query)]

    async def roles(self, *, name: str | None = None) -> list[Role]:
        query = sa.select(t.roles).order_by(t.roles.c.name)
        if name is not None:
            query = query.where(t.roles.c.name == name)
        return [_role(row) for row in await self._all(query)]

    # ---- bootstrap (idempotent, safe to race) ----------------------------------------

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
                                     "role", name))

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
            async with self._writing(conflict=f"{table.name} row exists") as conn:
                await conn.execute(sa.insert(table).values(row))
        except Conflict:
            pass

    # ---- administration --------------------------------------------------------------

    async def _insert(self, table: sa.Table, row: dict[str, object], conflict: str) -> None:
        async with self._writing(conflict=conflict) as conn:
            await conn.execute(sa.insert(table).values(created_at=self._store.now(), **row))

    async def create_domain(self, domain: Domain) -> Domain:
        await self._insert(t.domains, {"id": domain.id, "name": domain.name,
                                       "description": domain.description,
                                       "enabled": domain.enabled},
                           _duplicate("domain", domain.name))
        return domain

    async def create_project(self, project: Project) -> Project:
        await self._insert(t.projects, {"id": project.id, "name": project.name,
                                        "description": project.description,
                                        "enabled": project.enabled,
                                        "domain_id": project.domain_id},
                           _duplicate("project", project.name, project.domain_id))
        return project

    async def create_user(self, user: User, password: NewPassword) -> User:
        await self._insert(t.users, {"id": user.id, "name": user.name,
                                     "default_project_id": user.default_project_id,
                                     "enabled": user.enabled, "domain_id": user.domain_id,
                                     "password_hash": password.hash,
                                     "extra": dict(user.extra)},
                           _duplicate("user", user.name, user.domain_id))
        return user

    async def create_role(self, role: Role) -> Role:
        await self._insert(t.roles, {"id": role.id, "name": role.name},
                           _duplicate("role", role.name))
        return role

    async def _update(self, conn: AsyncConnection, table: sa.Table, key: tuple[str, str],
                      values: dict[str, object]) -> None:
        """Update the row whose id is ``key[1]`` (``NotFound`` naming ``key[0]``)."""
        kind, ident = key
        if "updated_at" in table.c:
            values = {**values, "updated_at": self._store.now()}
        done = await conn.execute(sa.update(table).where(table.c.id == ident).values(values))
        if done.rowcount == 0:
            raise _not_found(kind, ident)

    async def update_domain(self, domain: Domain) -> Domain:
        async with self._writing(conflict=_duplicate("domain", domain.name)) as conn:
            await self._update(conn, t.domains, ("domain", domain.id), {
                "name": domain.name, "description": domain.description,
                "enabled": domain.enabled})
        return domain

    async def update_project(self, project: Project) -> Project:
        conflict = _duplicate("project", project.name, project.domain_id)
        async with self._writing(conflict=conflict) as conn:
            await self._update(conn, t.projects, ("project", project.id), {
                "name": project.name, "description": project.description,
                "enabled": project.enabled})
        return project

    async def update_user(self, user: User, password: NewPassword | None = None) -> User:
        values: dict[str, object] = {"name": user.name, "enabled": user.enabled,
                                     "default_project_id": user.default_project_id,
                                     "extra": dict(user.extra)}
        if password is not None:
            values["password_hash"] = password.hash
        conflict = _duplicate("user", user.name, user.domain_id)
        async with self._writing(conflict=conflict) as conn:
            await self._update(conn, t.users, ("user", user.id), values)
            if password is not None or not user.enabled:
                await self._refuse_tokens_of(conn, user.id)
        return user

    async def update_role(self, role: Role) -> Role:
        async with self._writing(conflict=_duplicate("role", role.name)) as conn:
            await self._update(conn, t.roles, ("role", role.id), {"name": role.name})
        return role

    async def _delete(self, conn: AsyncConnection, table: sa.Table, kind: str,
                      ident: str) -> None:
        done = await conn.execute(sa.delete(table).where(table.c.id == ident))
        if done.rowcount == 0:
            raise _not_found(kind, ident)

    async def delete_domain(self, domain_id: DomainId) -> None:
        u, p = t.users, t.projects
        async with self._writing() as conn:
            await conn.execute(sa.delete(u).where(u.c.domain_id == domain_id))
            await conn.execute(sa.update(u).where(u.c.default_project_id.in_(
                sa.select(p.c.id).where(p.c.domain_id == domain_id)))
                .values(default_project_id=None))
            await conn.execute(sa.delete(p).where(p.c.domain_id == domain_id))
            await self._delete(conn, t.domains, "domain", domain_id)

    async def delete_project(self, project_id: ProjectId) -> None:
        u = t.users
        async with self._writing() as conn:
            await conn.execute(sa.update(u).where(u.c.default_project_id == project_id)
                               .values(default_project_id=None))
            await self._delete(conn, t.projects, "project", project_id)

    async def delete_user(self, user_id: UserId) -> None:
        async with self._writing() as conn:
            await self._delete(conn, t.users, "user", user_id)

    async def delete_role(self, role_id: RoleId) -> None:
        async with self._writing() as conn:
            await self._delete(conn, t.roles, "role", role_id)

    async def unassign_role(self, user_id: UserId, project_id: ProjectId,
                            role_id: RoleId) -> None:
        a = t.role_assignments
        async with self._writing() as conn:
            done = await conn.execute(sa.delete(a).where(
                a.c.user_id == user_id, a.c.project_id == project_id, a.c.role_id == role_id))
            if done.rowcount == 0:
                raise NotFound(f"Could not find role assignment with role: {role_id}, user "
                               f"or group: {user_id}, project, domain, or system: "
                               f"{project_id}.")

    async def role_assignments(self, *, user_id: UserId | None = None,
                               project_id: ProjectId | None = None,
                               role_id: RoleId | None = None) -> list[RoleAssignment]:
        a = t.role_assignments
        query = sa.select(a).order_by(a.c.user_id, a.c.project_id, a.c.role_id)
        for column, value in ((a.c.user_id, user_id), (a.c.project_id, project_id),
                              (a.c.role_id, role_id)):
            if value is not None:
                query = query.where(column == value)
        return [_assignment(row) for row in await self._all(query)]

    # ---- passwords and roles ---------------------------------------------------------

    async def password_hash(self, user_id: UserId) -> str | None:
        row = await self._one(sa.select(t.users.c.password_hash)
                              .where(t.users.c.id == user_id), "user", user_id)
        value = row._mapping["password_hash"]
        return str(value) if value else None

    async def set_password_hash(self, user_id: UserId, password_hash: str | None) -> None:
        async with self._writing() as conn:
            await self._update(conn, t.users, ("user", user_id),
                               {"password_hash": password_hash})
            await self._refuse_tokens_of(conn, user_id)

    async def roles_on(self, user_id: UserId, project_id: ProjectId) -> list[Role]:
        a = t.role_assignments
        query = (sa.select(t.roles).join(a, a.c.role_id == t.roles.c.id)
                 .where(a.c.user_id == user_id, a.c.project_id == project_id)
                 .order_by(t.roles.c.name))
        return [_role(row) for row in await self._all(query)]

    async def projects_of(self, user_id: UserId) -> list[Project]:
        a = t.role_assignments
        query = (sa.select(t.projects).where(t.projects.c.id.in_(
            sa.select(a.c.project_id).where(a.c.user_id == user_id)))
            .order_by(t.projects.c.name))
        return [_project(row) for row in await self._all(query)]

    # ---- token revocations -----------------------------------------------------------

    async def revoke_token(self, audit_id: str, expires_at: datetime) -> None:
        """Record the revocation and forget those whose tokens have expired anyway."""
        r = t.revoked_tokens
        async with self._writing() as conn:
            await conn.execute(sa.delete(r).where(r.c.expires_at <= self._store.now()))
            found = (await conn.execute(
                sa.select(r.c.audit_id).where(r.c.audit_id == audit_id))).first()
            if found is None:
                await conn.execute(sa.insert(r).values(audit_id=audit_id,
                                                       expires_at=expires_at))

    async def token_revoked(self, audit_ids: Sequence[str], *, user_id: UserId,
                            issued_at: datetime) -> bool:
        r, cut = t.revoked_tokens, user_token_revocations
        async with self._store.read() as conn:
            found = (await conn.execute(
                sa.select(r.c.audit_id).where(r.c.audit_id.in_(list(audit_ids))))).first()
            before = (await conn.execute(sa.select(cut.c.issued_before)
                                         .where(cut.c.user_id == user_id))).scalar()
        return found is not None or (before is not None and issued_at < before)
