"""Projects and users: the owners of everything else (the identity service widens this)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.ids import ProjectId, UserId

__all__ = ["Project", "User"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Project:
    id: ProjectId
    name: str
    description: str = ""
    enabled: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class User:
    id: UserId
    name: str
    default_project_id: ProjectId | None = None
    enabled: bool = True
