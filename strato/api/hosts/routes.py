"""Admin views of the hosts: ``/v2.1/os-services`` and ``/v2.1/os-hypervisors``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.responses import JSONResponse

from strato.api.deps import Context, Deps
from strato.api.hosts import views
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden
from strato.domain.resources import NodeUsage

__all__ = ["router"]

router = APIRouter(prefix="/v2.1")


def _require_admin(ctx: RequestContext, policy: str) -> None:
    if not ctx.is_admin:
        raise Forbidden(f"Policy doesn't allow os_compute_api:{policy} to be performed.")


def _numbered(usages: list[NodeUsage]) -> list[tuple[int, NodeUsage]]:
    # Microversion 2.1 has integer hypervisor ids and strato's nodes have none: number
    # them in (host, node) order, which is stable while the set of nodes is.
    ordered = sorted(usages, key=lambda u: (u.host, u.node))
    return list(enumerate(ordered, start=1))


@router.get("/os-services")
async def list_services(deps: Deps, ctx: Context) -> JSONResponse:
    """Every service with its heartbeat state (admin)."""
    _require_admin(ctx, "os-services:list")
    services = await deps.db.services.list()
    return JSONResponse({"services": [views.service_view(s) for s in services]})


@router.get("/os-hypervisors")
async def list_hypervisors(deps: Deps, ctx: Context) -> JSONResponse:
    """Every hypervisor node, briefly (admin)."""
    _require_admin(ctx, "os-hypervisors:list")
    usages = _numbered(await deps.db.nodes.usages())
    return JSONResponse({"hypervisors": [views.hypervisor_summary(u, n) for n, u in usages]})


@router.get("/os-hypervisors/detail")
async def list_hypervisors_detail(deps: Deps, ctx: Context) -> JSONResponse:
    """Every hypervisor node with its capacity and usage (admin)."""
    _require_admin(ctx, "os-hypervisors:list-detail")
    usages = _numbered(await deps.db.nodes.usages())
    services = {s.host: s for s in await deps.db.services.list()
                if views.is_compute_service(s)}
    return JSONResponse({"hypervisors": [
        views.hypervisor_detail(u, n, service=services.get(u.host))
        for n, u in usages]})
