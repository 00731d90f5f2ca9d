"""Domain security groups and rules -> Neutron v2 JSON."""

from __future__ import annotations

from typing import Any

from strato.api.formats import iso_z
from strato.domain.networks import SecurityGroup, SecurityGroupRule

__all__ = ["GROUP_FILTERS", "RULE_FILTERS", "security_group", "security_group_rule"]

# The attributes a list may filter on: every attribute the views below show.
RULE_FILTERS = frozenset({
    "id", "security_group_id", "direction", "ethertype", "protocol", "port_range_min",
    "port_range_max", "remote_ip_prefix", "remote_group_id", "tenant_id", "project_id",
    "description", "created_at", "updated_at", "revision_number"})
GROUP_FILTERS = frozenset({
    "id", "name", "description", "tenant_id", "project_id", "security_group_rules",
    "created_at", "updated_at", "revision_number", "tags", "stateful"})


def security_group_rule(rule: SecurityGroupRule) -> dict[str, Any]:
    """A rule as Neutron shows it (rules are immutable: ``updated_at`` is when it was
    created)."""
    created = iso_z(rule.created_at)
    return {"id": rule.id, "security_group_id": rule.security_group_id,
            "direction": rule.direction.value, "ethertype": rule.ethertype,
            "protocol": rule.protocol, "port_range_min": rule.port_range_min,
            "port_range_max": rule.port_range_max, "remote_ip_prefix": rule.remote_ip_prefix,
            "remote_group_id": rule.remote_group_id, "tenant_id": rule.project_id,
            "project_id": rule.project_id, "description": rule.description,
            "created_at": created, "updated_at": created, "revision_number": 0}


def security_group(group: SecurityGroup) -> dict[str, Any]:
    """A group with its rules, as Neutron shows it."""
    return {"id": group.id, "name": group.name, "description": group.description,
            "tenant_id": group.project_id, "project_id": group.project_id,
            "security_group_rules": [security_group_rule(r) for r in group.rules],
            "created_at": iso_z(group.created_at),
            "updated_at": iso_z(group.updated_at or group.created_at),
            "revision_number": 0, "tags": [], "stateful": True}
