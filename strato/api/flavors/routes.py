"""``/v2.1/flavors``: list, show, and (admin) create and delete."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import ApiDeps, Context, Deps
from strato.api.flavors import schemas, views
from strato.api.flavors.service import get_flavor
from strato.api.formats import base_url
from strato.api.openapi import request_body
from strato.api.paging import next_links, parse_page
from strato.api.policy import action
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid, NotFound
from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor

__all__ = ["router"]

router = APIRouter(prefix="/v2.1/flavors")



async def _listing(request: Request, deps: ApiDeps, ctx: RequestContext,
                   view: Callable[[Flavor, str], dict[str, Any]]) -> JSONResponse:
    page = parse_page(request.query_params)
    wanted = schemas.parse_filter(request.query_params, ctx)
    try:
        # The visibility filters are applied here, so the repository returns everything
        # after the marker and the page is cut afterwards (flavors are few).
        flavors = await deps.db.flavors.list(
            include_private=wanted.is_public is not True, min_ram=wanted.min_ram,
            min_disk=wanted.min_disk, marker=FlavorId(page.marker) if page.marker else None)
    except NotFound:
        raise Invalid(f"marker [{page.marker}] not found") from None
    shown = [f for f in flavors if wanted.matches(f)][:page.limit]
    base = base_url(request, deps.settings)
    body: dict[str, Any] = {"flavors": [view(f, base) for f in shown]}
    if more := next_links(url=base + request.url.path, params=request.query_params,
                          page=page, ids=[f.id for f in shown]):
        body["flavors_links"] = more
    return JSONResponse(body)


@router.get("")
@action("os_compute_api:flavors:index")
async def list_flavors(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/flavors``: ids, names and links."""
    return await _listing(request, deps, ctx, views.flavor_summary)


@router.get("/detail")
@action("os_compute_api:flavors:index")
async def list_flavors_detail(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/flavors/detail``: full flavor views."""
    return await _listing(request, deps, ctx, views.flavor_detail)


@router.get("/{flavor_id}")
@action("os_compute_api:flavors:show")
async def show_flavor(flavor_id: str, request: Request, deps: Deps,
                      ctx: Context) -> JSONResponse:
    """``GET /v2.1/flavors/{id}``."""
    flavor = await get_flavor(deps.db, ctx, flavor_id)
    return JSONResponse({"flavor": views.flavor_detail(flavor, base_url(request,
                                                                        deps.settings))})


@router.get("/{flavor_id}/os-extra_specs")
@action("os_compute_api:os-flavor-extra-specs:index")
async def list_extra_specs(flavor_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/flavors/{id}/os-extra_specs``: the flavor's extra specs (what
    ``openstack flavor show`` asks for)."""
    flavor = await get_flavor(deps.db, ctx, flavor_id)
    return JSONResponse({"extra_specs": dict(flavor.extra_specs)})


@router.get("/{flavor_id}/os-extra_specs/{key}")
@action("os_compute_api:os-flavor-extra-specs:show")
async def show_extra_spec(flavor_id: str, key: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET /v2.1/flavors/{id}/os-extra_specs/{key}``: ``{key: value}``; 404 when the
    flavor has no such spec, with Nova's message."""
    flavor = await get_flavor(deps.db, ctx, flavor_id)
    if key not in flavor.extra_specs:
        raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
    return JSONResponse({key: flavor.extra_specs[key]})


@router.post("")
@request_body(schemas._CreateFlavor)
@action("os_compute_api:os-flavor-manage:create")
async def create_flavor(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """``POST /v2.1/flavors`` (admin): 200 with the new flavor, as Nova."""
    flavor = await deps.db.flavors.create(schemas.flavor_from_create(await read_json(request)))
    return JSONResponse({"flavor": views.flavor_detail(flavor, base_url(request,
                                                                        deps.settings))})


@router.delete("/{flavor_id}")
@action("os_compute_api:os-flavor-manage:delete")
async def delete_flavor(flavor_id: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE /v2.1/flavors/{id}`` (admin): 202, as Nova. Instances keep their copy."""
    await get_flavor(deps.db, ctx, flavor_id)
    await deps.db.flavors.delete(FlavorId(flavor_id))
    return Response(status_code=202)

