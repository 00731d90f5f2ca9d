"""``/v2.1/os-quota-sets``, ``/v2.1/os-quota-class-sets`` and ``/v2.1/limits``
(microversion 2.1).

Nova's default policies: a member reads its own project's quotas and limits (another
project's is a 403), anyone reads the defaults, only an admin changes quotas or reads
and changes quota classes. strato keeps no catalogue of projects that would tell a
mistyped project id from a new one, so any project id has quotas (the defaults until
set), as in Nova without Keystone.
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.openapi import request_body
from strato.api.policy import action
from strato.api.quotas import schemas, views
from strato.api.quotas.service import project_limits, quota_defaults
from strato.domain.ids import ProjectId
from strato.domain.quotas import DEFAULT_CLASS

__all__ = ["router"]

router = APIRouter(prefix="/v2.1")





@router.get("/os-quota-sets/{project_id}")
@action("os_compute_api:os-quota-sets:show")
async def show_quotas(project_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """The project's limits."""
    limits = await project_limits(deps, ProjectId(project_id))
    return JSONResponse({"quota_set": views.quota_set(limits, project_id)})


@router.get("/os-quota-sets/{project_id}/detail")
@action("os_compute_api:os-quota-sets:detail")
async def show_quota_detail(project_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """The project's limits with what it uses, counted now."""
    limits = await project_limits(deps, ProjectId(project_id))
    used = await deps.db.quotas.usage(ProjectId(project_id))
    return JSONResponse({"quota_set": views.quota_detail(limits, used, project_id)})


@router.get("/os-quota-sets/{project_id}/defaults")
@action("os_compute_api:os-quota-sets:defaults")
async def show_quota_defaults(project_id: str, deps: Deps) -> JSONResponse:
    """The limits a project has until its own are set (the default class's)."""
    defaults = await deps.db.quotas.class_limits(DEFAULT_CLASS,
                                                 defaults=quota_defaults(deps.settings))
    return JSONResponse({"quota_set": views.quota_set(defaults, project_id)})


@router.put("/os-quota-sets/{project_id}")
@request_body(schemas._QuotaSetBody)
@action("os_compute_api:os-quota-sets:update")
async def update_quotas(project_id: str, request: Request, deps: Deps,
                        ctx: Context) -> JSONResponse:
    """Set some of the project's limits (admin); 400 when a new limit is below the
    project's usage, unless ``force``. Answers the whole set, without ``id`` (Nova)."""
    update = schemas.parse_update(await read_json(request))
    limits = await deps.db.quotas.set_limits(ProjectId(project_id), update.limits,
                                             defaults=quota_defaults(deps.settings),
                                             force=update.force)
    return JSONResponse({"quota_set": views.quota_set(limits)})


@router.delete("/os-quota-sets/{project_id}")
@action("os_compute_api:os-quota-sets:delete")
async def delete_quotas(project_id: str, deps: Deps, ctx: Context) -> Response:
    """Give the project the defaults again (admin): 202, as Nova."""
    await deps.db.quotas.reset(ProjectId(project_id))
    return Response(status_code=202)


@router.get("/os-quota-class-sets/{class_name}")
@action("os_compute_api:os-quota-class-sets:show")
async def show_quota_class(class_name: str, deps: Deps, ctx: Context) -> JSONResponse:
    """A quota class's limits (admin); ``default`` is every project's default."""
    limits = await deps.db.quotas.class_limits(class_name,
                                               defaults=quota_defaults(deps.settings))
    return JSONResponse({"quota_class_set": views.quota_set(limits, class_name)})


@router.put("/os-quota-class-sets/{class_name}")
@request_body(schemas._QuotaClassSetBody)
@action("os_compute_api:os-quota-class-sets:update")
async def update_quota_class(class_name: str, request: Request, deps: Deps,
                             ctx: Context) -> JSONResponse:
    """Set some of a quota class's limits (admin); without ``id`` in the answer."""
    values = schemas.parse_class_update(await read_json(request))
    limits = await deps.db.quotas.set_class_limits(class_name, values,
                                                   defaults=quota_defaults(deps.settings))
    return JSONResponse({"quota_class_set": views.quota_set(limits)})


@router.get("/limits")
@action("os_compute_api:limits")
async def show_limits(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """The caller's project's limits and usage; an admin may name another project
    with ``tenant_id``. No rate limits (``rate`` is always empty, as in Nova)."""
    project_id = request.query_params.get("tenant_id") or ctx.project_id
    if project_id != ctx.project_id:
        deps.policy.enforce(ctx, "os_compute_api:limits:other_project",
                            {"project_id": project_id})
    limits = await project_limits(deps, ProjectId(project_id))
    used = await deps.db.quotas.usage(ProjectId(project_id))
    groups = await deps.db.groups.count(ProjectId(project_id))
    return JSONResponse({"limits": {"rate": [], "absolute": views.absolute_limits(
        limits, used, groups)}})
