"""``/v2.1/os-aggregates`` (host aggregates, admin only) and
``/v2.1/os-availability-zone`` (the zones; the detailed list is admin only), at
microversion 2.1.

An aggregate's ``availability_zone`` puts its hosts in that zone; a host is in one zone
at most. As in Nova, a change that would put a host in a second zone is a 400 (an
invalid aggregate action), adding a member again a 409, deleting an aggregate that still
has hosts a 400, and a duplicate name a 409.
"""

from __future__ import annotations

import logging
import re

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.aggregates import schemas, views
from strato.api.bodies import read_json
from strato.api.deps import ApiDeps, Context, Deps
from strato.api.fields import MAX_DB_INT
from strato.api.openapi import request_body
from strato.api.placement import hosts_changed
from strato.api.policies import aggregate_rule
from strato.api.policy import PER_BODY, action
from strato.domain.aggregates import AZ_KEY, INTERNAL_ZONE, Aggregate
from strato.domain.errors import Conflict, Invalid, InvalidState, NotFound

__all__ = ["router"]

router = APIRouter(prefix="/v2.1")

logger = logging.getLogger(__name__)

_INTEGER = re.compile(r"^-?[0-9]+$")




def _aggregate_id(raw: str) -> int:
    """The path's aggregate id: 400 if it is no integer (Nova), 404 if none can exist."""
    if not _INTEGER.fullmatch(raw):
        raise Invalid("Invalid input received: id must be an integer")
    value = int(raw)
    if not 0 < value <= MAX_DB_INT:
        raise NotFound(f"Aggregate {raw} could not be found.")
    return value


def _answer(aggregate: Aggregate) -> JSONResponse:
    return JSONResponse({"aggregate": views.aggregate_view(aggregate)})


@router.get("/os-aggregates")
@action("os_compute_api:os-aggregates:index")
async def list_aggregates(deps: Deps, ctx: Context) -> JSONResponse:
    """Every aggregate, by id (admin)."""
    aggregates = await deps.db.aggregates.list()
    return JSONResponse({"aggregates": [views.aggregate_view(a) for a in aggregates]})


@router.post("/os-aggregates")
@request_body(schemas._CreateBody)
@action("os_compute_api:os-aggregates:create")
async def create_aggregate(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """A new aggregate, in a zone when the body names one (admin): 200, as Nova."""
    new = schemas.parse_create(await read_json(request))
    aggregate = await deps.db.aggregates.create(new.name, new.availability_zone)
    logger.info("aggregate %d %r created (zone %s)", aggregate.id, aggregate.name,
                aggregate.availability_zone)
    await hosts_changed(deps, ctx, f"aggregate {aggregate.id} created")
    return _answer(aggregate)


@router.get("/os-aggregates/{aggregate_id}")
@action("os_compute_api:os-aggregates:show")
async def show_aggregate(aggregate_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """One aggregate with its hosts and metadata (admin)."""
    return _answer(await deps.db.aggregates.get(_aggregate_id(aggregate_id)))


@router.put("/os-aggregates/{aggregate_id}")
@request_body(schemas._UpdateBody)
@action("os_compute_api:os-aggregates:update")
async def update_aggregate(aggregate_id: str, request: Request, deps: Deps,
                           ctx: Context) -> JSONResponse:
    """Rename the aggregate and/or move it to another zone (admin); a null zone takes
    it out of its zone. 409 for a taken name, 400 when a host would be in two zones."""
    pk = _aggregate_id(aggregate_id)
    update = schemas.parse_update(await read_json(request))
    db = deps.db.aggregates
    aggregate: Aggregate | None = None
    if update.name is not None or update.availability_zone is not None:
        try:
            aggregate = await db.update(pk, name=update.name,
                                        availability_zone=update.availability_zone)
        except Conflict as exc:
            if update.name is not None and await _name_taken(deps, update.name, pk):
                raise
            raise Invalid(exc.message) from exc
    if update.remove_zone:
        # A separate step, after the rename (which alone can fail): leaving a zone
        # cannot put a host in two zones.
        aggregate = await db.set_metadata(pk, {AZ_KEY: None})
    if aggregate is None:  # not reached: the schema requires a field
        aggregate = await db.get(pk)
    logger.info("aggregate %d updated: name %r, zone %s", pk, aggregate.name,
                aggregate.availability_zone)
    await hosts_changed(deps, ctx, f"aggregate {pk} updated")
    return _answer(aggregate)


async def _name_taken(deps: ApiDeps, name: str, pk: int) -> bool:
    return any(a.name == name and a.id != pk for a in await deps.db.aggregates.list())


@router.delete("/os-aggregates/{aggregate_id}")
@action("os_compute_api:os-aggregates:delete")
async def delete_aggregate(aggregate_id: str, deps: Deps, ctx: Context) -> Response:
    """Delete an aggregate without hosts (admin): 200 and no body, as Nova; 400 while
    it has hosts."""
    pk = _aggregate_id(aggregate_id)
    try:
        await deps.db.aggregates.delete(pk)
    except InvalidState as exc:
        raise Invalid(exc.message) from exc
    logger.info("aggregate %d deleted", pk)
    await hosts_changed(deps, ctx, f"aggregate {pk} deleted")
    return Response(status_code=200)


@router.post("/os-aggregates/{aggregate_id}/action")
@request_body(schemas._HostBody, schemas._RemoveHostBody, schemas._MetadataBody)
@action(PER_BODY)
async def aggregate_action(aggregate_id: str, request: Request, deps: Deps,
                           ctx: Context) -> JSONResponse:
    """``add_host``, ``remove_host`` or ``set_metadata`` (admin)."""
    try:
        body = await read_json(request)
        name, _ = schemas.parse_action(body)
    except Invalid:
        # A caller who may do none of the actions learns nothing about the body.
        if not any(deps.policy.allows(ctx, aggregate_rule(n))
                   for n in ("add_host", "remove_host", "set_metadata")):
            deps.policy.enforce(ctx, aggregate_rule("add_host"))
        raise
    deps.policy.enforce(ctx, aggregate_rule(name))
    pk = _aggregate_id(aggregate_id)
    db = deps.db.aggregates
    if name == "set_metadata":
        changes = schemas.parse_metadata(body)
        try:
            aggregate = await db.set_metadata(pk, changes)
        except Conflict as exc:  # a zone that would put a host in two zones
            raise Invalid(exc.message) from exc
        logger.info("aggregate %d metadata set: %s", pk, sorted(changes))
        await hosts_changed(deps, ctx, f"aggregate {pk} metadata set")
        return _answer(aggregate)
    action = schemas.parse_host(name, body)
    if action.action == "remove_host":
        aggregate = await db.remove_host(pk, action.host)
        logger.info("host %s removed from aggregate %d", action.host, pk)
        await hosts_changed(deps, ctx, f"host {action.host} left aggregate {pk}")
        return _answer(aggregate)
    try:
        aggregate = await db.add_host(pk, action.host)
    except Conflict as exc:
        # A member already (409, Nova's AggregateHostExists), or a host in another zone
        # (400, Nova's InvalidAggregateAction).
        if action.host in (await db.get(pk)).hosts:
            raise
        raise Invalid(exc.message) from exc
    logger.info("host %s added to aggregate %d", action.host, pk)
    await hosts_changed(deps, ctx, f"host {action.host} joined aggregate {pk}")
    return _answer(aggregate)


async def _zones(deps: ApiDeps) -> list[views.Zone]:
    services = await deps.db.services.list()
    return views.group_zones(services, await deps.db.aggregates.host_zones())


@router.get("/os-availability-zone")
@action("os_compute_api:os-availability-zone:list")
async def list_zones(deps: Deps) -> JSONResponse:
    """The zones of the compute hosts, available or not (any user); the internal zone
    of the control services is only in the detailed list."""
    zones = [z for z in await _zones(deps) if z.name != INTERNAL_ZONE]
    return JSONResponse({"availabilityZoneInfo": [views.zone_summary(z) for z in zones]})


@router.get("/os-availability-zone/detail")
@action("os_compute_api:os-availability-zone:detail")
async def list_zones_detail(deps: Deps, ctx: Context) -> JSONResponse:
    """Every zone, the internal one included, with each host's services (admin)."""
    return JSONResponse({"availabilityZoneInfo": [views.zone_detail(z)
                                                  for z in await _zones(deps)]})
