"""Admin views of the hosts: ``/v2.1/os-services`` and ``/v2.1/os-hypervisors``; and
taking a compute out of scheduling (``PUT /v2.1/os-services/disable`` ...)."""

from __future__ import annotations

import logging
from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse

from strato.api.bodies import parse_model, read_json
from strato.api.deps import Context, Deps
from strato.api.hosts import views
from strato.api.openapi import request_body
from strato.api.placement import hosts_changed
from strato.api.policy import action
from strato.domain.errors import Invalid, NotFound
from strato.domain.resources import NodeUsage

__all__ = ["router"]

router = APIRouter(prefix="/v2.1")

logger = logging.getLogger(__name__)

# The name Nova's clients use for a compute; strato's own binary name is accepted too.
NOVA_COMPUTE = "nova-compute"

_Text = Annotated[str, Field(min_length=1, max_length=255)]


class _ServiceUpdate(BaseModel):
    """The body of ``PUT /os-services/{enable,disable,disable-log-reason}`` (2.1)."""

    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    host: _Text
    binary: _Text
    disabled_reason: _Text | None = None



def _numbered(usages: list[NodeUsage]) -> list[tuple[int, NodeUsage]]:
    # Microversion 2.1 has integer hypervisor ids and strato's nodes have none: number
    # them in (host, node) order, which is stable while the set of nodes is.
    ordered = sorted(usages, key=lambda u: (u.host, u.node))
    return list(enumerate(ordered, start=1))


@router.get("/os-services")
@action("os_compute_api:os-services:list")
async def list_services(deps: Deps, ctx: Context) -> JSONResponse:
    """Every service with its heartbeat state (admin)."""
    services = await deps.db.services.list()
    zones = await deps.db.aggregates.host_zones()
    return JSONResponse({"services": [views.service_view(s, zones) for s in services]})


@router.get("/os-hypervisors")
@action("os_compute_api:os-hypervisors:list")
async def list_hypervisors(deps: Deps, ctx: Context) -> JSONResponse:
    """Every hypervisor node, briefly (admin)."""
    usages = _numbered(await deps.db.nodes.usages())
    return JSONResponse({"hypervisors": [views.hypervisor_summary(u, n) for n, u in usages]})


@router.get("/os-hypervisors/detail")
@action("os_compute_api:os-hypervisors:list-detail")
async def list_hypervisors_detail(deps: Deps, ctx: Context) -> JSONResponse:
    """Every hypervisor node with its capacity and usage (admin)."""
    usages = _numbered(await deps.db.nodes.usages())
    services = {s.host: s for s in await deps.db.services.list()
                if views.is_compute_service(s)}
    return JSONResponse({"hypervisors": [
        views.hypervisor_detail(u, n, service=services.get(u.host))
        for n, u in usages]})


@router.put("/os-services/{action}")
@request_body(_ServiceUpdate)
@action("os_compute_api:os-services:update")
async def update_service(action: str, request: Request, deps: Deps,
                         ctx: Context) -> JSONResponse:
    """Enable or disable a compute service (admin). A disabled compute keeps its
    instances but the scheduler no longer chooses it. ``disable-log-reason`` records why
    (so does ``disable``, when the body has a reason); ``enable`` clears the reason."""
    if action not in ("enable", "disable", "disable-log-reason"):
        raise NotFound("Unknown action")
    body = parse_model(_ServiceUpdate, await read_json(request))
    if action == "disable-log-reason" and body.disabled_reason is None:
        raise Invalid("Missing disabled reason field")
    if body.binary != NOVA_COMPUTE and not body.binary.endswith("compute"):
        raise Invalid(f"Updating a {body.binary} service is not supported. Only "
                      "nova-compute services can be updated.")
    matches = [s for s in await deps.db.services.list()
               if s.host == body.host and views.is_compute_service(s)
               and body.binary in (NOVA_COMPUTE, s.binary)]
    if not matches:
        raise NotFound(f"Could not find binary {body.binary} on host {body.host}.")
    disable = action != "enable"
    reason = body.disabled_reason if disable else None
    updated = await deps.db.services.set_disabled(matches[0].id, disable, reason)
    await hosts_changed(deps, ctx, f"compute {updated.host} "
                                   f"{'disabled' if disable else 'enabled'}")
    logger.info("service %s on %s %s%s", updated.binary, updated.host,
                "disabled" if disable else "enabled", f": {reason}" if reason else "")
    service: dict[str, Any] = {"host": body.host, "binary": body.binary,
                               "status": "disabled" if updated.disabled else "enabled"}
    if updated.disabled_reason:
        service["disabled_reason"] = updated.disabled_reason
    return JSONResponse({"service": service})
