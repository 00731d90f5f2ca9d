"""Limits and usage -> Nova 2.1 JSON: quota sets, quota class sets and ``/limits``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strato.domain.quotas import RESOURCES, Usage

__all__ = ["absolute_limits", "quota_detail", "quota_set"]


def quota_set(limits: Mapping[str, int], set_id: str | None = None) -> dict[str, Any]:
    """A quota set (or quota class set): ``id`` first when given (Nova leaves it out of
    the answer to an update), then every resource."""
    body: dict[str, Any] = {"id": set_id} if set_id is not None else {}
    return {**body, **{resource: limits[resource] for resource in RESOURCES}}


def quota_detail(limits: Mapping[str, int], used: Usage, set_id: str) -> dict[str, Any]:
    """``GET /os-quota-sets/{id}/detail``: each resource's limit, use, and reservations
    (always 0: strato counts instead of reserving)."""
    return {"id": set_id, **{
        resource: {"limit": limits[resource], "in_use": used.of(resource), "reserved": 0}
        for resource in RESOURCES}}


def absolute_limits(limits: Mapping[str, int], used: Usage,
                    server_groups: int) -> dict[str, int]:
    """The ``absolute`` part of ``GET /limits``: Nova 2.1's names, with nova-network's
    floating IP and security group limits, whose usage Nova reports as 0 (it counts
    neither once Neutron owns them)."""
    return {
        "maxTotalInstances": limits["instances"],
        "maxTotalCores": limits["cores"],
        "maxTotalRAMSize": limits["ram"],
        "maxServerMeta": limits["metadata_items"],
        "maxImageMeta": limits["metadata_items"],
        "maxPersonality": limits["injected_files"],
        "maxPersonalitySize": limits["injected_file_content_bytes"],
        "maxTotalKeypairs": limits["key_pairs"],
        "maxServerGroups": limits["server_groups"],
        "maxServerGroupMembers": limits["server_group_members"],
        "maxTotalFloatingIps": limits["floating_ips"],
        "maxSecurityGroups": limits["security_groups"],
        "maxSecurityGroupRules": limits["security_group_rules"],
        "totalInstancesUsed": used.instances,
        "totalCoresUsed": used.cores,
        "totalRAMUsed": used.ram,
        "totalServerGroupsUsed": server_groups,
        "totalFloatingIpsUsed": 0,
        "totalSecurityGroupsUsed": 0,
    }
