"""The server group repository (its adapter: :mod:`strato.db._server_groups`)."""

from __future__ import annotations

import builtins
from typing import Protocol

from strato.domain.groups import ServerGroup
from strato.domain.ids import GroupId, ProjectId

__all__ = ["ServerGroupRepo"]


class ServerGroupRepo(Protocol):
    """Server groups (os-server-groups). Members are added with the instances they hold
    (:meth:`InstanceRepo.create_within_quota`); a deleted instance is no member."""

    async def count(self, project_id: ProjectId) -> int:
        """How many groups the project has."""
        ...

    async def create(self, group: ServerGroup, *, limit: int) -> ServerGroup:
        """Store ``group`` unless its project already has ``limit`` groups (``OverQuota``);
        a negative limit is no limit. One transaction under the project's quota lock."""
        ...

    async def get(self, group_id: GroupId, *, project_id: ProjectId | None = None) -> ServerGroup:
        """The group with its live members; ``NotFound`` for an unknown id, or one of
        another project when ``project_id`` is given."""
        ...

    async def list(self, *, project_id: ProjectId | None = None, limit: int | None = None,
                   offset: int = 0) -> builtins.list[ServerGroup]:
        """Groups of one project (every project when ``None``), oldest first."""
        ...

    async def delete(self, group_id: GroupId, *, project_id: ProjectId | None = None) -> None:
        """Delete the group (its members stay, no longer grouped); ``NotFound`` as get."""
        ...
