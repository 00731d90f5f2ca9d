"""The quota repository (its adapter: :mod:`strato.db._quotas`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from strato.domain.ids import ProjectId
from strato.domain.quotas import Usage

__all__ = ["QuotaRepo"]


class QuotaRepo(Protocol):
    """Quota limits (``-1``: unlimited). ``defaults`` is always the deployment's
    defaults, which the default quota class and then the project's values override."""

    async def limits(self, project_id: ProjectId, *,
                     defaults: Mapping[str, int]) -> dict[str, int]:
        """The project's effective limit of every resource."""
        ...

    async def class_limits(self, class_name: str, *,
                           defaults: Mapping[str, int]) -> dict[str, int]:
        """The quota class's limits (its values over ``defaults``)."""
        ...

    async def usage(self, project_id: ProjectId) -> Usage:
        """What the project's non-deleted instances use, counted now."""
        ...

    async def set_limits(self, project_id: ProjectId, limits: Mapping[str, int], *,
                         defaults: Mapping[str, int], force: bool) -> dict[str, int]:
        """Set the project's values; unless ``force``, ``Invalid`` if a counted
        resource's new limit is below its usage. Returns the effective limits."""
        ...

    async def set_class_limits(self, class_name: str, limits: Mapping[str, int], *,
                               defaults: Mapping[str, int]) -> dict[str, int]:
        """Set the quota class's values; returns the class's limits."""
        ...

    async def reset(self, project_id: ProjectId) -> None:
        """Drop the project's own values (back to the defaults); idempotent."""
        ...
