"""Server groups: a placement policy over a set of instances (Nova's instance groups).

``affinity`` puts every member on one host, ``anti-affinity`` every member on a different
host (at most ``max_server_per_host`` per host); the soft variants are preferences the
weighers follow when they can, never reasons to refuse a host.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.ids import GroupId, InstanceId, ProjectId, UserId

__all__ = ["GroupPolicy", "ServerGroup"]


class GroupPolicy(enum.StrEnum):
    AFFINITY = "affinity"
    ANTI_AFFINITY = "anti-affinity"
    SOFT_AFFINITY = "soft-affinity"
    SOFT_ANTI_AFFINITY = "soft-anti-affinity"

    @property
    def is_hard(self) -> bool:
        return self in (GroupPolicy.AFFINITY, GroupPolicy.ANTI_AFFINITY)


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerGroup:
    id: GroupId
    name: str
    project_id: ProjectId
    user_id: UserId
    policy: GroupPolicy
    # Nova's rules (microversion 2.64): only ``max_server_per_host`` for anti-affinity.
    rules: dict[str, int] = field(default_factory=dict)
    members: tuple[InstanceId, ...] = ()
    created_at: datetime | None = None

    @property
    def max_server_per_host(self) -> int:
        return int(self.rules.get("max_server_per_host", 1))
