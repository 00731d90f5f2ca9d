"""The placement repository: server group checks at build time (its adapter:
:mod:`strato.db._placement`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from strato.domain.groups import ServerGroup
from strato.domain.ids import GroupId, HostName, InstanceId

__all__ = ["GroupMembers", "PlacementRepo"]


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMembers:
    """A server group with its live members, and where each placed member is."""

    group: ServerGroup
    hosts: dict[InstanceId, HostName]


class PlacementRepo(Protocol):
    """What placement reads and checks about server groups beyond node rows."""

    async def group_members(self, group_id: GroupId) -> GroupMembers:
        """``NotFound`` for an unknown group."""
        ...

    async def start_build(self, instance_id: InstanceId, host: HostName) -> str | None:
        """Admit the instance's build on ``host`` against its groups' hard policies and
        move it from scheduling to networking, atomically; the violated rule, or None."""
        ...
