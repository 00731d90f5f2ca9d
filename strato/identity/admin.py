"""Administering identities: Keystone's rules around the repository.

The API turns each request body into a domain object (a new :class:`Project`) or a
mapping of changed fields; :class:`IdentityAdmin` checks what Keystone checks (the domain
exists, the default domain stays, a domain is disabled before it is deleted, the
original password is right) and writes. Each write moves the identity revision on, so
the tokens that depended on what changed are validated afresh at their next use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from strato.db.ports import IdentityRepo
from strato.domain.errors import Forbidden, Invalid, InvalidReference, NotFound
from strato.domain.identity import (
    DEFAULT_DOMAIN_ID,
    AuthFailed,
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
from strato.identity.passwords import hash_password, verify_password

__all__ = ["IdentityAdmin"]

Changes = Mapping[str, Any]


async def _new_password(password: str | None) -> NewPassword:
    # Argon2 is deliberately slow: off the event loop.
    return NewPassword(await asyncio.to_thread(hash_password, password)
                       if password is not None else None)


class IdentityAdmin:
    """Creates, changes and deletes domains, projects, users, roles and role
    assignments; raises ``NotFound``, ``Conflict``, ``Invalid`` or ``Forbidden`` with
    Keystone's messages."""

    def __init__(self, repo: IdentityRepo) -> None:
        self._repo = repo

    # ---- domains

    async def create_domain(self, domain: Domain) -> Domain:
        return await self._repo.create_domain(domain)

    async def update_domain(self, domain_id: DomainId, changes: Changes) -> Domain:
        current = await self._repo.domain(domain_id)
        return await self._repo.update_domain(replace(current, **changes))

    async def delete_domain(self, domain_id: DomainId) -> None:
        """Only a disabled domain, never the default one; its projects and users go
        with it."""
        if domain_id == DEFAULT_DOMAIN_ID:
            raise Forbidden("You are not authorized to perform the requested action: "
                            "delete the default domain.")
        if (await self._repo.domain(domain_id)).enabled:
            raise Forbidden("Cannot delete a domain that is enabled, please disable it "
                            "first.")
        await self._repo.delete_domain(domain_id)

    # ---- projects

    async def create_project(self, project: Project) -> Project:
        await self._repo.domain(project.domain_id)
        return await self._repo.create_project(project)

    async def update_project(self, project_id: ProjectId, changes: Changes) -> Project:
        current = await self._repo.project(project_id)
        if changes.get("domain_id", current.domain_id) != current.domain_id:
            raise Invalid("Update of `domain_id` is not allowed.")
        return await self._repo.update_project(replace(current, **changes))

    # ---- users

    async def create_user(self, user: User, password: str | None) -> User:
        await self._repo.domain(user.domain_id)
        await self._check_default_project(user.default_project_id)
        return await self._repo.create_user(user, await _new_password(password))

    async def update_user(self, user_id: UserId, changes: Changes) -> User:
        """``changes`` may hold ``password`` (``None``: no password login); a new
        password or disabling the user refuses the user's existing tokens."""
        fields = dict(changes)
        password = (await _new_password(fields.pop("password"))
                    if "password" in fields else None)
        current = await self._repo.user(user_id)
        if fields.get("domain_id", current.domain_id) != current.domain_id:
            raise Invalid("Cannot change Domain ID")
        if "extra" in fields:  # Keystone merges a PATCH's extra into the user's
            fields["extra"] = {**current.extra, **fields["extra"]}
        if fields.get("default_project_id"):
            await self._check_default_project(fields["default_project_id"])
        return await self._repo.update_user(replace(current, **fields), password)

    async def change_password(self, user_id: UserId, *, original: str, new: str) -> None:
        """The user's own change: ``AuthFailed`` unless ``original`` is the current
        password. The user's tokens issued until now are refused."""
        await self._repo.user(user_id)
        encoded = await self._repo.password_hash(user_id)
        if not await asyncio.to_thread(verify_password, original, encoded):
            raise AuthFailed("Error when changing user password: the original password "
                             "is wrong")
        await self._repo.set_password_hash(user_id, (await _new_password(new)).hash)

    async def _check_default_project(self, project_id: ProjectId | None) -> None:
        if project_id is None:
            return
        try:
            await self._repo.project(project_id)
        except NotFound as exc:
            raise InvalidReference(f"Invalid input for field 'default_project_id': {exc}") \
                from exc

    # ---- roles and their assignments

    async def update_role(self, role_id: RoleId, changes: Changes) -> Role:
        current = await self._repo.role(role_id)
        return await self._repo.update_role(replace(current, **changes))

    async def _check_grant_parts(self, grant: RoleAssignment) -> None:
        await self._repo.project(grant.project_id)
        await self._repo.user(grant.user_id)
        await self._repo.role(grant.role_id)

    async def assign(self, grant: RoleAssignment) -> None:
        await self._check_grant_parts(grant)
        await self._repo.assign_role(grant.user_id, grant.project_id, grant.role_id)

    async def check(self, grant: RoleAssignment) -> None:
        """``NotFound`` unless the user holds the role on the project."""
        await self._check_grant_parts(grant)
        found = await self._repo.role_assignments(user_id=grant.user_id,
                                                  project_id=grant.project_id,
                                                  role_id=grant.role_id)
        if not found:
            raise NotFound(f"Could not find role assignment with role: {grant.role_id}, "
                           f"user or group: {grant.user_id}, project, domain, or system: "
                           f"{grant.project_id}.")

    async def roles_on(self, user_id: UserId, project_id: ProjectId) -> list[Role]:
        await self._repo.project(project_id)
        await self._repo.user(user_id)
        return await self._repo.roles_on(user_id, project_id)
