"""The identity repository (its adapter: :mod:`strato.db._identity`)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

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
from strato.domain.ids import ProjectId, UserId

__all__ = ["IdentityRepo"]


class IdentityRepo(Protocol):
    """Domains, projects, users, password hashes, roles, their assignments on projects,
    and token revocations.

    Lookups raise ``NotFound`` with Keystone's message (``Could not find project: <id>.``);
    creations and renames raise ``Conflict`` when the name is taken; ``ensure_*`` and
    ``assign_role`` are idempotent and safe to race. Every write also moves
    :meth:`revision` on in the same transaction, so anything read here may be cached for
    as long as the revision stays the same, in every process sharing the database."""

    async def revision(self) -> int:
        """The identity data's revision: it changes with every write (one tiny read)."""
        ...

    # ---- lookups

    async def project(self, project_id: ProjectId) -> Project: ...

    async def project_by_name(self, name: str,
                              domain_id: DomainId | None = None) -> Project: ...

    async def user(self, user_id: UserId) -> User: ...

    async def user_by_name(self, name: str, domain_id: DomainId | None = None) -> User: ...

    async def domain(self, domain_id: DomainId) -> Domain: ...

    async def domain_by_name(self, name: str) -> Domain: ...

    async def role(self, role_id: RoleId) -> Role: ...

    async def domains(self, *, name: str | None = None,
                      enabled: bool | None = None) -> builtins.list[Domain]:
        """The domains (by name) matching every filter given."""
        ...

    async def projects(self, *, name: str | None = None, domain_id: DomainId | None = None,
                       enabled: bool | None = None) -> builtins.list[Project]:
        """The projects (by name) matching every filter given."""
        ...

    async def users(self, *, name: str | None = None, domain_id: DomainId | None = None,
                    enabled: bool | None = None) -> builtins.list[User]:
        """The users (by name) matching every filter given."""
        ...

    async def roles(self, *, name: str | None = None) -> builtins.list[Role]:
        """The roles (by name), or the one called ``name``."""
        ...

    # ---- bootstrap (idempotent, safe to race)

    async def ensure_domain(self, domain_id: DomainId, name: str) -> Domain: ...

    async def ensure_project(self, name: str, description: str = "") -> Project:
        """The project called ``name``, created when missing (safe to race)."""
        ...

    async def ensure_user(self, name: str, default_project_id: ProjectId | None) -> User:
        """The user called ``name``, created when missing (safe to race)."""
        ...

    async def ensure_role(self, name: str) -> Role: ...

    async def assign_role(self, user_id: UserId, project_id: ProjectId,
                          role_id: RoleId) -> None:
        """Give the role (nothing happens when the user already holds it)."""
        ...

    # ---- administration

    async def create_domain(self, domain: Domain) -> Domain: ...

    async def create_project(self, project: Project) -> Project: ...

    async def create_user(self, user: User, password: NewPassword) -> User: ...

    async def create_role(self, role: Role) -> Role: ...

    async def update_domain(self, domain: Domain) -> Domain:
        """Store every field of ``domain`` but its id."""
        ...

    async def update_project(self, project: Project) -> Project:
        """Store every field of ``project`` but its id and domain."""
        ...

    async def update_user(self, user: User, password: NewPassword | None = None) -> User:
        """Store every field of ``user`` but its id and domain, and the new password if
        one is given. A new password, or a disabled user, refuses the user's tokens
        issued until now."""
        ...

    async def update_role(self, role: Role) -> Role: ...

    async def delete_domain(self, domain_id: DomainId) -> None:
        """Delete the domain with its projects and users."""
        ...

    async def delete_project(self, project_id: ProjectId) -> None:
        """Delete the project and its role assignments; users whose default project it
        was keep none."""
        ...

    async def delete_user(self, user_id: UserId) -> None: ...

    async def delete_role(self, role_id: RoleId) -> None:
        """Delete the role and every assignment of it."""
        ...

    async def unassign_role(self, user_id: UserId, project_id: ProjectId,
                            role_id: RoleId) -> None:
        """Take the role away; ``NotFound`` when the user does not hold it there."""
        ...

    async def role_assignments(self, *, user_id: UserId | None = None,
                               project_id: ProjectId | None = None,
                               role_id: RoleId | None = None
                               ) -> builtins.list[RoleAssignment]:
        """The assignments matching every filter given, by user, project and role."""
        ...

    # ---- passwords and roles

    async def password_hash(self, user_id: UserId) -> str | None:
        """The user's encoded password hash (``None``: no password login)."""
        ...

    async def set_password_hash(self, user_id: UserId, password_hash: str | None) -> None:
        """Replace the user's password hash; the user's tokens issued until now are
        refused."""
        ...

    async def roles_on(self, user_id: UserId, project_id: ProjectId) -> builtins.list[Role]:
        """The user's roles on the project, by name."""
        ...

    async def projects_of(self, user_id: UserId) -> builtins.list[Project]:
        """The projects the user holds any role on, by name."""
        ...

    # ---- token revocations

    async def revoke_token(self, audit_id: str, expires_at: datetime) -> None:
        """Refuse tokens carrying ``audit_id`` until ``expires_at`` (then forgotten)."""
        ...

    async def token_revoked(self, audit_ids: Sequence[str], *, user_id: UserId,
                            issued_at: datetime) -> bool:
        """Whether a token is refused: one of its audit ids is revoked, or its user's
        tokens issued before ``issued_at`` are."""
        ...
