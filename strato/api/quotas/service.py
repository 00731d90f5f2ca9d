"""What the quota routes and the server create path read: the deployment's defaults and
a project's effective limits.

The deployment's defaults are Nova's (:data:`strato.domain.quotas.DEFAULT_LIMITS`), with
``metadata_items`` from :attr:`strato.config.ApiSettings.max_metadata_items`; the
``default`` quota class and then the project's own values override them.
"""

from __future__ import annotations

from strato.api.deps import ApiDeps
from strato.config import ApiSettings
from strato.domain.ids import ProjectId
from strato.domain.quotas import merge

__all__ = ["project_limits", "quota_defaults"]


def quota_defaults(settings: ApiSettings) -> dict[str, int]:
    """The limits that apply where neither the project nor the default class sets one."""
    return merge({"metadata_items": settings.max_metadata_items})


async def project_limits(deps: ApiDeps, project_id: ProjectId) -> dict[str, int]:
    """The project's effective limit of every resource."""
    return await deps.db.quotas.limits(project_id, defaults=quota_defaults(deps.settings))
