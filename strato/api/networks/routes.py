"""``/networking``: the Network API (a Neutron v2.0 subset) for networks, subnets, ports.

Visibility: a member sees its project's networks and every shared one, the subnets of
the networks it sees, and its project's ports; an admin sees everything. Only the owner
(or an admin) changes or deletes a network or subnet or adds a subnet (403 on a shared
network it does not own); only an admin sets ``shared`` or creates for another project.

Lists take Neutron's query (:mod:`strato.api.networks.listing`): a filter on any
attribute of the view (``?name=web&name=db`` is "either", ports' ``fixed_ips`` by
address or subnet), ``sort_key``/``sort_dir``, ``limit``/``marker``/``page_reverse``
paging with ``<collection>_links``, and ``fields=``. They run over the visible rows in
the API process. ``/v2.0/extensions`` names the extensions strato implements.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.networks import extensions, listing, schemas, views
from strato.api.openapi import request_body
from strato.api.policy import PUBLIC, action
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid, NotFound
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import (
    DEFAULT_MTU,
    Network,
    NetworkNotFound,
    PolicyNotAuthorized,
    Port,
    PortNotFound,
    Subnet,
    SubnetNotFound,
)

__all__ = ["router"]

router = APIRouter(prefix="/networking")

V2 = "/v2.0"
_RESOURCES = ("network", "subnet", "port")


def _project(ctx: RequestContext, tenant_id: str | None, project_id: str | None) -> ProjectId:
    """The project a new resource belongs to: the caller's, or any an admin names."""
    named = project_id or tenant_id
    if tenant_id and project_id and tenant_id != project_id:
        raise Invalid("Invalid input for operation: tenant_id and project_id "
                              "differ.")
    if named and named != ctx.project_id and not ctx.is_admin:
        raise Forbidden("(rule:create_resource) is disallowed by policy: only an admin "
                        "creates resources for another project.")
    return ProjectId(named or ctx.project_id)


def _set(changes: dict[str, Any]) -> dict[str, object]:
    """The attributes an update sets (a ``null`` is "leave as is")."""
    return {k: v for k, v in changes.items() if v is not None}


def _base(request: Request) -> str:
    return str(request.base_url).rstrip("/") + "/networking"


@router.get("")
@router.get("/")
@action(PUBLIC)
async def versions(request: Request) -> JSONResponse:
    """The version document: v2.0, current. Neutron answers it at its root with and
    without the slash; a redirect would cost every client's discovery a round trip."""
    href = f"{_base(request)}/v2.0/"
    return JSONResponse({"versions": [{"id": "v2.0", "status": "CURRENT",
                                       "links": [{"rel": "self", "href": href}]}]})


@router.get(V2)
@router.get(f"{V2}/")
@action("get_api_resources")
async def resources(request: Request) -> JSONResponse:
    """The resources of v2.0."""
    base = f"{_base(request)}/v2.0"
    return JSONResponse({"resources": [
        {"name": name, "collection": f"{name}s",
         "links": [{"rel": "self", "href": f"{base}/{name}s"}]} for name in _RESOURCES]})


def _one(request: Request, key: str, item: dict[str, Any]) -> JSONResponse:
    return JSONResponse({key: listing.select_fields(request.query_params, [item])[0]})


@router.get(f"{V2}/extensions")
@action("get_api_resources")
async def list_extensions() -> JSONResponse:
    """The API extensions strato implements (clients probe them, e.g. ``openstack port
    create`` for ``tag-ports-during-bulk-creation``)."""
    return JSONResponse({"extensions": extensions.all_extensions()})


@router.get(f"{V2}/extensions/{{alias}}")
@action("get_api_resources")
async def show_extension(alias: str) -> JSONResponse:
    found = extensions.find(alias)
    if found is None:
        raise NotFound(f"Extension with alias {alias} does not exist")
    return JSONResponse({"extension": found})


# ---- networks ------------------------------------------------------------------------

@router.post(f"{V2}/networks")
@request_body(schemas.NetworkBody, key="network")
@action("create_network")
async def create_network(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    body = schemas.parse(schemas.NetworkBody, await read_json(request), "network")
    if body.shared and not ctx.is_admin:
        raise Forbidden("(rule:create_network:shared) is disallowed by policy")
    net = Network(id=new_uuid(), name=body.name, description=body.description,
                  project_id=_project(ctx, body.tenant_id, body.project_id),
                  shared=body.shared, admin_state_up=body.admin_state_up,
                  mtu=body.mtu or DEFAULT_MTU)
    created = await deps.db.networks.create_network(net)
    return JSONResponse({"network": views.network(created)}, status_code=201)


@router.get(f"{V2}/networks")
@action("get_network")
async def list_networks(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    nets = await deps.db.networks.list_networks(viewer=ctx.visible_project)
    return listing.collection(request, "networks", [views.network(n) for n in nets],
                              not_found=NetworkNotFound,
                              filters=views.NETWORK_FILTERS)


@router.get(f"{V2}/networks/{{network_id}}")
@action("get_network")
async def show_network(network_id: str, request: Request, deps: Deps,
                       ctx: Context) -> JSONResponse:
    net = await deps.db.networks.get_network(network_id, viewer=ctx.visible_project)
    return _one(request, "network", views.network(net))


@router.put(f"{V2}/networks/{{network_id}}")
@request_body(schemas.NetworkUpdate, key="network")
@action("update_network")
async def update_network(network_id: str, request: Request, deps: Deps,
                         ctx: Context) -> JSONResponse:
    body = schemas.parse(schemas.NetworkUpdate, await read_json(request), "network")
    changes = _set(body.model_dump(exclude_unset=True))
    if "shared" in changes and not ctx.is_admin:
        raise Forbidden("(rule:update_network:shared) is disallowed by policy")
    net = await deps.db.networks.update_network(network_id, changes, owner=ctx.visible_project)
    return JSONResponse({"network": views.network(net)})


@router.delete(f"{V2}/networks/{{network_id}}")
@action("delete_network")
async def delete_network(network_id: str, deps: Deps, ctx: Context) -> Response:
    await deps.db.networks.delete_network(network_id, owner=ctx.visible_project)
    return Response(status_code=204)


# ---- subnets -------------------------------------------------------------------------

@router.post(f"{V2}/subnets")
@request_body(schemas.SubnetBody, key="subnet")
@action("create_subnet")
async def create_subnet(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    body = schemas.parse(schemas.SubnetBody, await read_json(request), "subnet")
    plan = schemas.subnet_fields(body)
    sub = Subnet(id=new_uuid(), network_id=body.network_id,
                 project_id=_project(ctx, body.tenant_id, body.project_id),
                 name=body.name, description=body.description, ip_version=body.ip_version,
                 cidr=plan.cidr, gateway_ip=plan.gateway_ip,
                 allocation_pools=plan.allocation_pools,
                 dns_nameservers=schemas.dns_nameservers(body.dns_nameservers),
                 host_routes=schemas.host_routes(body.host_routes),
                 enable_dhcp=body.enable_dhcp)
    created = await deps.db.networks.create_subnet(sub, owner=ctx.visible_project)
    return JSONResponse({"subnet": views.subnet(created)}, status_code=201)


@router.get(f"{V2}/subnets")
@action("get_subnet")
async def list_subnets(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    subs = await deps.db.networks.list_subnets(viewer=ctx.visible_project)
    return listing.collection(request, "subnets", [views.subnet(s) for s in subs],
                              not_found=SubnetNotFound,
                              filters=views.SUBNET_FILTERS)


@router.get(f"{V2}/subnets/{{subnet_id}}")
@action("get_subnet")
async def show_subnet(subnet_id: str, request: Request, deps: Deps,
                      ctx: Context) -> JSONResponse:
    sub = await deps.db.networks.get_subnet(subnet_id, viewer=ctx.visible_project)
    return _one(request, "subnet", views.subnet(sub))


@router.put(f"{V2}/subnets/{{subnet_id}}")
@request_body(schemas.SubnetUpdate, key="subnet")
@action("update_subnet")
async def update_subnet(subnet_id: str, request: Request, deps: Deps,
                        ctx: Context) -> JSONResponse:
    body = schemas.parse(schemas.SubnetUpdate, await read_json(request), "subnet")
    changes = _set(body.model_dump(exclude_unset=True,
                                   exclude={"dns_nameservers", "host_routes"}))
    if body.dns_nameservers is not None:
        changes["dns_nameservers"] = schemas.dns_nameservers(body.dns_nameservers)
    if body.host_routes is not None:
        changes["host_routes"] = schemas.host_routes(body.host_routes)
    sub = await deps.db.networks.update_subnet(subnet_id, changes, owner=ctx.visible_project)
    return JSONResponse({"subnet": views.subnet(sub)})


@router.delete(f"{V2}/subnets/{{subnet_id}}")
@action("delete_subnet")
async def delete_subnet(subnet_id: str, deps: Deps, ctx: Context) -> Response:
    await deps.db.networks.delete_subnet(subnet_id, owner=ctx.visible_project)
    return Response(status_code=204)


# ---- ports ---------------------------------------------------------------------------

@router.post(f"{V2}/ports")
@request_body(schemas.PortBody, key="port")
@action("create_port")
async def create_port(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    body = schemas.parse(schemas.PortBody, await read_json(request), "port")
    project = _project(ctx, body.tenant_id, body.project_id)
    network = await deps.db.networks.get_network(body.network_id, viewer=ctx.visible_project)
    _check_port_fields(ctx, "create_port", network.project_id,
                       body.model_dump(exclude_unset=True, by_alias=True))
    groups = body.security_groups
    if groups is None and not body.device_owner.startswith("network:"):
        # As Neutron: a port without groups is in its project's default group.
        groups = [(await deps.db.security_groups.ensure_default(project)).id]
    port = Port(id=new_uuid(), network_id=body.network_id,
                project_id=project,
                mac_address=schemas.mac_address(body.mac_address) if body.mac_address else "",
                name=body.name, description=body.description,
                admin_state_up=body.admin_state_up, device_id=body.device_id,
                device_owner=body.device_owner, binding_host_id=body.binding_host_id,
                security_groups=tuple(groups or ()))
    created = await deps.db.networks.create_port(
        port, fixed_ips=schemas.fixed_ips(body.fixed_ips), viewer=ctx.visible_project)
    return JSONResponse({"port": views.port(created, is_admin=ctx.is_admin)}, status_code=201)


def _check_port_fields(ctx: RequestContext, rule: str, network_owner: str,
                       fields: dict[str, Any]) -> None:
    """Neutron's field policies for ports: only an admin binds a port to a host; only
    an admin or the network's owner gives a port a ``network:`` owner (which makes it
    trusted: no security groups), chooses its MAC or its fixed IP addresses. ``Forbidden``
    (403, PolicyNotAuthorized) names the rule."""
    if ctx.is_admin:
        return
    owner = network_owner == ctx.project_id
    denied = []
    if fields.get("binding:host_id"):
        denied.append("binding:host_id")
    if str(fields.get("device_owner") or "").startswith("network:") and not owner:
        denied.append("device_owner")
    if fields.get("mac_address") and not owner:
        denied.append("mac_address")
    if any("ip_address" in ip for ip in fields.get("fixed_ips") or ()) and not owner:
        denied.append("fixed_ips:ip_address")
    if denied:
        raise PolicyNotAuthorized(f"({' and '.join(f'rule:{rule}:{f}' for f in denied)}) "
                        "is disallowed by policy")


@router.get(f"{V2}/ports")
@action("get_port")
async def list_ports(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    ports = await deps.db.networks.list_ports(viewer=ctx.visible_project)
    shown = [views.port(p, is_admin=ctx.is_admin) for p in ports]
    return listing.collection(request, "ports", shown,
                              not_found=PortNotFound,
                              filters=views.PORT_FILTERS)


@router.get(f"{V2}/ports/{{port_id}}")
@action("get_port")
async def show_port(port_id: str, request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    port = await deps.db.networks.get_port(port_id, viewer=ctx.visible_project)
    return _one(request, "port", views.port(port, is_admin=ctx.is_admin))


@router.put(f"{V2}/ports/{{port_id}}")
@request_body(schemas.PortUpdate, key="port")
@action("update_port")
async def update_port(port_id: str, request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    body = schemas.parse(schemas.PortUpdate, await read_json(request), "port")
    current = await deps.db.networks.get_port(port_id, viewer=ctx.visible_project)
    network = await deps.db.networks.get_network(current.network_id, viewer=None)
    _check_port_fields(ctx, "update_port", network.project_id,
                       body.model_dump(exclude_unset=True, by_alias=True))
    changes = _set(body.model_dump(exclude_unset=True,
                                    exclude={"security_groups", "fixed_ips"}))
    port = await deps.db.networks.update_port(
        port_id, changes, fixed_ips=schemas.fixed_ips(body.fixed_ips),
        security_groups=body.security_groups, owner=ctx.visible_project)
    return JSONResponse({"port": views.port(port, is_admin=ctx.is_admin)})


@router.delete(f"{V2}/ports/{{port_id}}")
@action("delete_port")
async def delete_port(port_id: str, deps: Deps, ctx: Context) -> Response:
    await deps.db.networks.delete_port(port_id, owner=ctx.visible_project)
    return Response(status_code=204)

