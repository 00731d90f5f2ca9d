"""Domain server groups -> Nova 2.1 JSON."""

from __future__ import annotations

from typing import Any

from strato.domain.groups import ServerGroup

__all__ = ["server_group"]


def server_group(group: ServerGroup) -> dict[str, Any]:
    """A group as ``os-server-groups`` shows it at 2.1: one policy in a list, the live
    members, and the always-empty ``metadata`` (``project_id`` and ``user_id`` appear
    only from 2.13, ``policy`` and ``rules`` replace ``policies`` from 2.64)."""
    return {"id": group.id, "name": group.name, "policies": [group.policy.value],
            "members": list(group.members), "metadata": {}}
