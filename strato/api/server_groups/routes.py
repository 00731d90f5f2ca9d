"""``/v2.1/os-server-groups`` (microversion 2.1): create, list, show, delete.

Nova's default policies let any project member manage its project's groups. A group of
another project is a 404 for a non-admin (Nova's current policies answer 403, which
tells that the group exists); an admin sees and deletes every project's groups, and
lists them all with ``all_projects``. Creating a group counts against the project's
``server_groups`` quota (403 past it).
"""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.openapi import request_body
from strato.api.policy import action
from strato.api.quotas.service import project_limits
from strato.api.server_groups import schemas, views
from strato.domain.groups import ServerGroup
from strato.domain.ids import GroupId, new_uuid

__all__ = ["router"]

router = APIRouter(prefix="/v2.1")


@router.post("/os-server-groups")
@request_body(schemas._CreateBody)
@action("os_compute_api:os-server-groups:create")
async def create_server_group(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """A new group of the caller's project (200, as Nova); 403 past the quota."""
    fields = schemas.parse_create(await read_json(request))
    limits = await project_limits(deps, ctx.project_id)
    group = ServerGroup(id=GroupId(new_uuid()), name=fields.name, project_id=ctx.project_id,
                        user_id=ctx.user_id, policy=fields.policy)
    created = await deps.db.groups.create(group, limit=limits["server_groups"])
    return JSONResponse({"server_group": views.server_group(created)})


@router.get("/os-server-groups")
@action("os_compute_api:os-server-groups:index")
async def list_server_groups(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """The caller's project's groups, oldest first (every project's for an admin
    with ``all_projects``), paged by ``limit`` and ``offset``."""
    listing = schemas.parse_listing(request.query_params, is_admin=ctx.is_admin)
    groups = await deps.db.groups.list(
        project_id=None if listing.all_projects else ctx.project_id,
        limit=listing.limit, offset=listing.offset)
    return JSONResponse({"server_groups": [views.server_group(g) for g in groups]})


@router.get("/os-server-groups/{group_id}")
@action("os_compute_api:os-server-groups:show")
async def show_server_group(group_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """One group with its live members; 404 if unknown or not visible."""
    group = await deps.db.groups.get(GroupId(group_id), project_id=ctx.visible_project)
    return JSONResponse({"server_group": views.server_group(group)})


@router.delete("/os-server-groups/{group_id}")
@action("os_compute_api:os-server-groups:delete")
async def delete_server_group(group_id: str, deps: Deps, ctx: Context) -> Response:
    """Delete the group (204); its members keep running, no longer grouped."""
    await deps.db.groups.delete(GroupId(group_id), project_id=ctx.visible_project)
    return Response(status_code=204)
