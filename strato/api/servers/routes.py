"""``/v2.1/servers``: create, list, show, delete (microversion 2.1)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import ApiDeps, Context, Deps
from strato.api.formats import base_url
from strato.api.paging import next_links, parse_page
from strato.api.servers import actions, schemas, service, views
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid
from strato.domain.instances import Instance

__all__ = ["router"]

router = APIRouter(prefix="/v2.1/servers")


@router.post("")
async def create_server(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``POST /v2.1/servers``: 202 at once; the build continues in the background."""
    req = await schemas.parse_create(await read_json(request), deps, ctx)
    result = await service.create_servers(deps, ctx, req)
    if req.return_reservation_id:
        return JSONResponse({"reservation_id": result.reservation_id}, status_code=202)
    first = result.instances[0]
    base = base_url(request, deps.settings)
    body = views.created_view(first, base, req.admin_pass or views.generate_password())
    return JSONResponse(body, status_code=202,
                        headers={"Location": f"{base}/v2.1/servers/{first.id}"})


async def _listing(request: Request, deps: ApiDeps, ctx: RequestContext,
                   view: Callable[[Instance, str], dict[str, Any]]) -> JSONResponse:
    page = parse_page(request.query_params)
    instances = await service.list_servers(
        deps, schemas.parse_list(request.query_params, page, ctx))
    base = base_url(request, deps.settings)
    body: dict[str, Any] = {"servers": [view(i, base) for i in instances]}
    if more := next_links(url=base + request.url.path, params=request.query_params,
                          page=page, ids=[i.id for i in instances]):
        body["servers_links"] = more
    return JSONResponse(body)


@router.get("")
async def list_servers(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers``: ids, names and links, newest first."""
    return await _listing(request, deps, ctx, views.server_summary)


@router.get("/detail")
async def list_servers_detail(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/detail``: full server views, newest first."""
    def detail(instance: Instance, base: str) -> dict[str, Any]:
        return views.server_detail(instance, base, is_admin=ctx.is_admin)
    return await _listing(request, deps, ctx, detail)


@router.get("/{server_id}")
async def show_server(server_id: str, request: Request, deps: Deps,
                      ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/{id}``; 404 for a server of another project."""
    instance = await service.get_server(deps, ctx, server_id)
    base = base_url(request, deps.settings)
    return JSONResponse({"server": views.server_detail(instance, base,
                                                       is_admin=ctx.is_admin)})


@router.delete("/{server_id}")
async def delete_server(server_id: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE /v2.1/servers/{id}``: 204, in any state (also while building); 409 for
    a locked server unless the caller is an admin."""
    await actions.check_delete_allowed(deps, ctx, server_id)
    await service.delete_server(deps, ctx, server_id)
    return Response(status_code=204)


@router.post("/{server_id}/action")
async def server_action(server_id: str, request: Request, deps: Deps,
                        ctx: Context) -> Response:
    """``POST /v2.1/servers/{id}/action``: one action per body. ``os-getConsoleOutput``
    answers 200 with the text; ``rebuild`` 202 with the server (and its new password);
    the others (reboot, os-stop, os-start, pause, unpause, suspend, resume, lock, unlock)
    202 with an empty body, the compute host finishing the work."""
    name, args = schemas.parse_action(await read_json(request))
    if name == "os-getConsoleOutput":
        length = schemas.parse_console_length(args)
        return JSONResponse({"output": await service.console_output(deps, ctx, server_id,
                                                                     length)})
    if name == "rebuild":
        result = await actions.rebuild(deps, ctx, server_id, args)
        view = views.server_detail(result.instance, base_url(request, deps.settings),
                                   is_admin=ctx.is_admin)
        return JSONResponse({"server": {**view, "adminPass": result.admin_pass}},
                            status_code=202)
    if name == "forceDelete":
        actions.no_arguments(name, args)
        await actions.check_delete_allowed(deps, ctx, server_id)
        await service.delete_server(deps, ctx, server_id, force=True)
    elif name == "lock":
        await actions.lock(deps, ctx, server_id, args)
    elif name == "unlock":
        await actions.unlock(deps, ctx, server_id, args)
    elif name in actions.ACTIONS:
        await actions.perform(deps, ctx, server_id, name, args)
    else:
        raise Invalid(f"There is no such action: {name}")
    return Response(status_code=202)
