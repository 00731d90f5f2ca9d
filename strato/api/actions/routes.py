"""``/v2.1/servers/{id}/os-instance-actions``: what was done to a server, step by step."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse

from strato.api.actions import views
from strato.api.deps import ApiDeps, Context, Deps
from strato.api.policy import action
from strato.domain.context import RequestContext
from strato.domain.errors import NotFound
from strato.domain.ids import InstanceId, RequestId
from strato.domain.instances import Instance

__all__ = ["router"]

router = APIRouter(prefix="/v2.1/servers/{server_id}/os-instance-actions")


async def _instance(deps: ApiDeps, ctx: RequestContext, server_id: str) -> Instance:
    # Deleted servers keep their history (Nova shows it from microversion 2.21 on):
    # "why did my build fail" is asked after the server is gone, too.
    try:
        return await deps.db.instances.get(
            InstanceId(server_id), project_id=ctx.visible_project,
            include_deleted=True)
    except NotFound:
        raise NotFound(f"Instance {server_id} could not be found.") from None


@router.get("")
@action("os_compute_api:os-instance-actions:list")
async def list_actions(server_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """The server's actions, newest first."""
    instance = await _instance(deps, ctx, server_id)
    actions = await deps.db.actions.list(instance.id)
    return JSONResponse({"instanceActions": [views.action_summary(a) for a in actions]})


@router.get("/{request_id}")
@action("os_compute_api:os-instance-actions:show")
async def show_action(server_id: str, request_id: str, request: Request, deps: Deps,
                      ctx: Context) -> JSONResponse:
    """One action, with its events."""
    instance = await _instance(deps, ctx, server_id)
    try:
        action = await deps.db.actions.get(instance.id, RequestId(request_id))
    except NotFound:
        raise NotFound(f"Action for request_id {request_id} on instance {server_id} "
                       "not found") from None
    extras = request.headers.get(views.EXTRAS_HEADER, "").strip().lower() in {"1", "true",
                                                                            "yes"}
    return JSONResponse({"instanceAction": views.action_detail(
        action, is_admin=ctx.is_admin, extras=extras)})
