"""Domains, projects, users and roles: the owners of everything else, and who may act
for them (Keystone's model, reduced to project-scoped role assignments)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NewType

from strato.domain.errors import StratoError
from strato.domain.ids import ProjectId, UserId

__all__ = ["DEFAULT_DOMAIN_ID", "DEFAULT_ROLES", "AuthFailed", "Domain", "DomainId",
           "NewPassword", "Project", "Role", "RoleAssignment", "RoleId", "User"]

DomainId = NewType("DomainId", str)
RoleId = NewType("RoleId", str)

# Keystone's default domain: it holds the bootstrap admin and cannot be deleted.
DEFAULT_DOMAIN_ID = DomainId("default")
# The bootstrap admin holds all three on the admin project (Keystone's bootstrap roles).
DEFAULT_ROLES = ("admin", "member", "reader")


class AuthFailed(StratoError):
    """The caller could not be authenticated (wrong password, unknown user, a refused
    token, no role on the requested scope). The message never says which."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Domain:
    id: DomainId
    name: str
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    id: ProjectId
    name: str
    description: str = ""
    enabled: bool = True
    domain_id: DomainId = DEFAULT_DOMAIN_ID


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    """``extra``: what else the user was given (``description``, ``email``, any other
    JSON property), kept and shown as sent, as Keystone keeps a user's ``extra``."""

    id: UserId
    name: str
    default_project_id: ProjectId | None = None
    enabled: bool = True
    domain_id: DomainId = DEFAULT_DOMAIN_ID
    extra: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Role:
    id: RoleId
    name: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RoleAssignment:
    """A user holds a role on a project."""

    user_id: UserId
    project_id: ProjectId
    role_id: RoleId


@dataclass(frozen=True, slots=True)
class NewPassword:
    """A user's new password hash (``None``: no password login). Setting one refuses the
    user's tokens issued before."""

    hash: str | None
