"""The security group repository (its adapter: :mod:`strato.db._security_groups`)."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Protocol

from strato.domain.ids import ProjectId
from strato.domain.networks import SecurityGroup, SecurityGroupRule

__all__ = ["SecurityGroupRepo"]


class SecurityGroupRepo(Protocol):
    """Security groups and their rules, for the Network API (Neutron's behaviour). The
    errors are the domain errors of :mod:`strato.domain.security_groups`. A rule
    belongs to its group's project; ``project_id`` arguments scope reads and writes to
    one project (``None``: every project, for an admin)."""

    async def ensure_default(self, project_id: ProjectId) -> SecurityGroup:
        """The project's ``default`` group, created when missing with Neutron's rules
        (egress IPv4 and IPv6 anywhere, ingress IPv4 and IPv6 from the group itself);
        two concurrent first calls make one group. No quota check; it counts."""
        ...

    async def create(self, *, project_id: ProjectId, name: str, description: str,
                     group_limit: int, rule_limit: int) -> SecurityGroup:
        """A new group with Neutron's two egress rules (IPv4, IPv6), counted against
        both limits (negative: none) in its transaction; nothing is written past
        either (``SecurityGroupQuotaExceeded``). A ``default`` name is refused."""
        ...

    async def get(self, group_id: str, *,
                  project_id: ProjectId | None = None) -> SecurityGroup:
        """The group with its rules; ``SecurityGroupNotFound`` if unknown or not
        visible."""
        ...

    async def list(self, *, project_id: ProjectId | None = None) -> builtins.list[SecurityGroup]:
        """Groups oldest first, with their rules."""
        ...

    async def update(self, group_id: str, *, project_id: ProjectId | None = None,
                     name: str | None = None,
                     description: str | None = None) -> SecurityGroup:
        """Change name and/or description (``None``: unchanged); the default group
        keeps its name and no other group may be called ``default``."""
        ...

    async def delete(self, group_id: str, *, project_id: ProjectId | None = None,
                     allow_default: bool = False) -> None:
        """Delete the group with its rules and the rules naming it as remote group;
        ``SecurityGroupCannotRemoveDefault`` for the default group (unless
        ``allow_default``), ``SecurityGroupInUse`` while a port has it."""
        ...

    async def add_rule(self, rule: SecurityGroupRule, *, project_id: ProjectId | None = None,
                       limit: int) -> SecurityGroupRule:
        """Store a validated rule (:func:`strato.domain.security_groups.validate_rule`)
        in its group. ``SecurityGroupNotFound`` if the group or the remote group is not
        visible, ``SecurityGroupRuleExists`` for a duplicate, quota exceeded past
        ``limit`` rules of the group's project."""
        ...

    async def get_rule(self, rule_id: str, *,
                       project_id: ProjectId | None = None) -> SecurityGroupRule: ...

    async def list_rules(self, *, project_id: ProjectId | None = None
                         ) -> builtins.list[SecurityGroupRule]:
        """Rules oldest first."""
        ...

    async def delete_rule(self, rule_id: str, *,
                          project_id: ProjectId | None = None) -> None: ...

    async def rules_for_ports(
            self, port_ids: Sequence[str]) -> dict[str, builtins.list[SecurityGroupRule]]:
        """For the data plane: the rules of all groups each port belongs to (every
        asked port is a key)."""
        ...

    async def members(self, group_id: str) -> builtins.list[tuple[str, str]]:
        """For the data plane: ``(port_id, ip_address)`` of every fixed IP of the
        group's ports."""
        ...
