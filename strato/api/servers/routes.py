"""``/v2.1/servers``: create, list, show, update, delete, the server's addresses (``ips``)
and metadata
(microversion 2.1)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import ApiDeps, Context, Deps
from strato.api.formats import base_url
from strato.api.openapi import nova_server_actions, request_body
from strato.api.paging import next_links, parse_page
from strato.api.policies import SERVER_ACTIONS
from strato.api.policy import PER_BODY, action
from strato.api.servers import (
    action_schemas,
    actions,
    listing,
    metadata,
    schemas,
    service,
    update,
    views,
)
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid, NotFound
from strato.domain.instances import Instance

__all__ = ["router"]

router = APIRouter(prefix="/v2.1/servers")


@router.post("")
@request_body(schemas._CreateBody)
@action("os_compute_api:servers:create")
async def create_server(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``POST /v2.1/servers``: 202 at once; the build continues in the background."""
    req = schemas.parse_create(await read_json(request))
    result = await service.create_servers(deps, ctx, req)
    if req.return_reservation_id:
        return JSONResponse({"reservation_id": result.reservation_id}, status_code=202)
    first = result.instances[0]
    base = base_url(request, deps.settings)
    body = views.created_view(first, base, req.admin_pass or views.generate_password(),
                              security_groups=req.security_groups)
    return JSONResponse(body, status_code=202,
                        headers={"Location": f"{base}/v2.1/servers/{first.id}"})


# Renders one page of servers (all at once, so a page costs one read of its ports).
_PageView = Callable[[list[Instance], str], Awaitable[list[dict[str, Any]]]]


async def _listing(request: Request, deps: ApiDeps, ctx: RequestContext,
                   view: _PageView) -> JSONResponse:
    page = parse_page(request.query_params)
    instances = await service.list_servers(
        deps, listing.parse_list(request.query_params, page, ctx))
    base = base_url(request, deps.settings)
    body: dict[str, Any] = {"servers": await view(instances, base)}
    if more := next_links(url=base + request.url.path, params=request.query_params,
                          page=page, ids=[i.id for i in instances]):
        body["servers_links"] = more
    return JSONResponse(body)


@router.get("")
@action("os_compute_api:servers:index")
async def list_servers(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers``: ids, names and links, newest first."""
    async def summaries(instances: list[Instance], base: str) -> list[dict[str, Any]]:
        return [views.server_summary(i, base) for i in instances]
    return await _listing(request, deps, ctx, summaries)


@router.get("/detail")
@action("os_compute_api:servers:detail")
async def list_servers_detail(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/detail``: full server views, newest first."""
    async def details(instances: list[Instance], base: str) -> list[dict[str, Any]]:
        vifs = await service.server_vifs(deps, instances)
        return [views.server_detail(i, base, is_admin=ctx.is_admin, vifs=vifs[i.id])
                for i in instances]
    return await _listing(request, deps, ctx, details)


async def _detail(request: Request, deps: ApiDeps, ctx: RequestContext,
                  instance: Instance) -> dict[str, Any]:
    vifs = await service.server_vifs(deps, [instance])
    return views.server_detail(instance, base_url(request, deps.settings),
                               is_admin=ctx.is_admin, vifs=vifs[instance.id])


@router.get("/{server_id}")
@action("os_compute_api:servers:show")
async def show_server(server_id: str, request: Request, deps: Deps,
                      ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/{id}``; 404 for a server of another project."""
    instance = await service.get_server(deps, ctx, server_id)
    return JSONResponse({"server": await _detail(request, deps, ctx, instance)})


@router.get("/{server_id}/ips")
@action("os_compute_api:ips:index")
async def list_ips(server_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/{id}/ips``: the server's addresses by network name."""
    instance = await service.get_server(deps, ctx, server_id)
    vifs = await service.server_vifs(deps, [instance])
    return JSONResponse({"addresses": views.addresses(vifs[instance.id], extended=False)})


@router.get("/{server_id}/ips/{network_label}")
@action("os_compute_api:ips:show")
async def show_ips(server_id: str, network_label: str, deps: Deps,
                   ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/{id}/ips/{label}``: its addresses on one network; 404 when
    the server has no port there."""
    instance = await service.get_server(deps, ctx, server_id)
    vifs = await service.server_vifs(deps, [instance])
    found = views.addresses(vifs[instance.id], extended=False)
    if network_label not in found:
        raise NotFound(f"Network {network_label} could not be found.")
    return JSONResponse({network_label: found[network_label]})


@router.delete("/{server_id}")
@action("os_compute_api:servers:delete")
async def delete_server(server_id: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE /v2.1/servers/{id}``: 204, in any state (also while building); 409 for
    a locked server unless the caller is an admin."""
    await actions.delete(deps, ctx, server_id)
    return Response(status_code=204)


@router.post("/{server_id}/action")
@request_body(*nova_server_actions())
@action(PER_BODY)
async def server_action(server_id: str, request: Request, deps: Deps,
                        ctx: Context) -> Response:
    """``POST /v2.1/servers/{id}/action``: one action per body. ``os-getConsoleOutput``
    answers 200 with the text; ``rebuild`` 202 with the server (and its new password);
    the others (reboot, os-stop, os-start, pause, unpause, suspend, resume, lock, unlock)
    202 with an empty body, the compute host finishing the work."""
    name, args = action_schemas.parse_action(await read_json(request))
    if name not in SERVER_ACTIONS:
        raise Invalid(f"There is no such action: {name}")
    deps.policy.enforce(ctx, SERVER_ACTIONS[name])
    if name == "os-getConsoleOutput":
        length = action_schemas.parse_console_length(args)
        return JSONResponse({"output": await service.console_output(deps, ctx, server_id,
                                                                     length)})
    if name == "rebuild":
        result = await actions.rebuild(deps, ctx, server_id, args)
        vifs = await service.server_vifs(deps, [result.instance])
        view = views.server_basic(result.instance, base_url(request, deps.settings),
                                  is_admin=ctx.is_admin, vifs=vifs[result.instance.id])
        return JSONResponse({"server": {**view, "adminPass": result.admin_pass}},
                            status_code=202)
    if name == "forceDelete":
        action_schemas.no_arguments(name, args)
        await actions.delete(deps, ctx, server_id, force=True)
    elif name == "lock":
        await actions.lock(deps, ctx, server_id, args)
    elif name == "unlock":
        await actions.unlock(deps, ctx, server_id, args)
    elif name in actions.ACTIONS:
        await actions.perform(deps, ctx, server_id, name, args)
    else:
        raise Invalid(f"There is no such action: {name}")
    return Response(status_code=202)


# --- update and metadata ------------------------------------------------------------------

@router.put("/{server_id}")
@request_body(update._UpdateBody)
@action("os_compute_api:servers:update")
async def update_server(server_id: str, request: Request, deps: Deps,
                        ctx: Context) -> JSONResponse:
    """``PUT /v2.1/servers/{id}``: a new name or access IPs; 200 with Nova's basic view."""
    changes = update.parse_update(await read_json(request))
    instance = await update.update_server(deps, ctx, server_id, changes)
    vifs = await service.server_vifs(deps, [instance])
    return JSONResponse({"server": views.server_basic(
        instance, base_url(request, deps.settings), is_admin=ctx.is_admin,
        vifs=vifs[instance.id])})


@router.get("/{server_id}/metadata")
@action("os_compute_api:server-metadata:index")
async def list_metadata(server_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/{id}/metadata``: all of the server's metadata."""
    return JSONResponse({"metadata": await metadata.metadata_of(deps, ctx, server_id)})


@router.post("/{server_id}/metadata")
@request_body(metadata._MetadataBody)
@action("os_compute_api:server-metadata:create")
async def merge_metadata(server_id: str, request: Request, deps: Deps,
                         ctx: Context) -> JSONResponse:
    """``POST /v2.1/servers/{id}/metadata``: add or change items; 200 (as Nova) with all
    of the metadata."""
    items = metadata.parse_metadata(await read_json(request))
    return JSONResponse({"metadata": await metadata.write_metadata(
        deps, ctx, server_id, items, replace=False)})


@router.put("/{server_id}/metadata")
@request_body(metadata._MetadataBody)
@action("os_compute_api:server-metadata:update_all")
async def replace_metadata(server_id: str, request: Request, deps: Deps,
                           ctx: Context) -> JSONResponse:
    """``PUT /v2.1/servers/{id}/metadata``: the body's items become all of the metadata."""
    items = metadata.parse_metadata(await read_json(request))
    return JSONResponse({"metadata": await metadata.write_metadata(
        deps, ctx, server_id, items, replace=True)})


@router.get("/{server_id}/metadata/{key}")
@action("os_compute_api:server-metadata:show")
async def show_metadata_item(server_id: str, key: str, deps: Deps,
                             ctx: Context) -> JSONResponse:
    """``GET /v2.1/servers/{id}/metadata/{key}``: ``{"meta": {key: value}}``; 404 when
    the key is not set."""
    return JSONResponse({"meta": await metadata.show_item(deps, ctx, server_id, key)})


@router.put("/{server_id}/metadata/{key}")
@request_body(metadata._ItemBody)
@action("os_compute_api:server-metadata:update")
async def set_metadata_item(server_id: str, key: str, request: Request, deps: Deps,
                            ctx: Context) -> JSONResponse:
    """``PUT /v2.1/servers/{id}/metadata/{key}``: set one item (the body's one key must
    be the URL's); 200 with that item."""
    item = metadata.parse_item(await read_json(request), key)
    await metadata.write_metadata(deps, ctx, server_id, item, replace=False)
    return JSONResponse({"meta": item})


@router.delete("/{server_id}/metadata/{key}")
@action("os_compute_api:server-metadata:delete")
async def delete_metadata_item(server_id: str, key: str, deps: Deps,
                               ctx: Context) -> Response:
    """``DELETE /v2.1/servers/{id}/metadata/{key}``: 204; 404 when the key is not set."""
    await metadata.delete_item(deps, ctx, server_id, key)
    return Response(status_code=204)
