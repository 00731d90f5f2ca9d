"""``/networking/v2.0/security-groups`` and ``/networking/v2.0/security-group-rules``
(Neutron v2): groups are created, listed, shown, renamed and deleted; rules are
created, listed, shown and deleted (they are immutable, as in Neutron).

A project member manages its project's groups and sees only them (another project's is
a 404); an admin sees and manages every project's and may create for another project
(``tenant_id``/``project_id``). Listing groups first creates the caller's project's
``default`` group, as Neutron does; so does creating one, so the default group is
counted before the new one. Quotas are Neutron's defaults: 10 groups and 100 rules per
project (409 past either). Lists take Neutron's query (filters on any shown attribute,
sorting, paging, ``fields``: :mod:`strato.api.networks.listing`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.networks import listing, sg_schemas, sg_views
from strato.api.openapi import neutron_security_group, neutron_security_group_rule, request_body
from strato.api.policy import action
from strato.domain.ids import new_uuid
from strato.domain.networks import Direction, SecurityGroupRule
from strato.domain.security_groups import (
    SECURITY_GROUP_QUOTA,
    SECURITY_GROUP_RULE_QUOTA,
    SecurityGroupNotFound,
    SecurityGroupRuleNotFound,
)

__all__ = ["router"]

router = APIRouter(prefix="/networking")

GROUPS = "/v2.0/security-groups"
RULES = "/v2.0/security-group-rules"


def _one(item: dict[str, Any], params: QueryParams) -> dict[str, Any]:
    return listing.select_fields(params, [item])[0]


@router.post(GROUPS)
@request_body(neutron_security_group())
@action("create_security_group")
async def create_security_group(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """A new group with Neutron's egress rules (201); 409 past the quota."""
    fields = sg_schemas.parse_group_create(await read_json(request), ctx)
    await deps.db.security_groups.ensure_default(fields.project_id)
    group = await deps.db.security_groups.create(
        project_id=fields.project_id, name=fields.name, description=fields.description,
        group_limit=SECURITY_GROUP_QUOTA, rule_limit=SECURITY_GROUP_RULE_QUOTA)
    return JSONResponse({"security_group": sg_views.security_group(group)}, status_code=201)


@router.get(GROUPS)
@action("get_security_group")
async def list_security_groups(request: Request, deps: Deps, ctx: Context) -> JSONResponse:
    """The caller's project's groups (every project's for an admin), in Neutron's
    order (by id unless sorted), after making sure the caller's project has its
    default group."""
    await deps.db.security_groups.ensure_default(ctx.project_id)
    groups = await deps.db.security_groups.list(project_id=ctx.visible_project)
    return listing.collection(request, "security_groups",
                              [sg_views.security_group(g) for g in groups],
                              not_found=SecurityGroupNotFound,
                              filters=sg_views.GROUP_FILTERS)


@router.get(GROUPS + "/{group_id}")
@action("get_security_group")
async def show_security_group(group_id: str, request: Request, deps: Deps,
                              ctx: Context) -> JSONResponse:
    group = await deps.db.security_groups.get(group_id, project_id=ctx.visible_project)
    return JSONResponse({"security_group": _one(sg_views.security_group(group),
                                                request.query_params)})


@router.put(GROUPS + "/{group_id}")
@request_body(neutron_security_group(update=True))
@action("update_security_group")
async def update_security_group(group_id: str, request: Request, deps: Deps,
                                ctx: Context) -> JSONResponse:
    """Change the name and/or description; the default group keeps its name."""
    fields = sg_schemas.parse_group_update(await read_json(request))
    group = await deps.db.security_groups.update(
        group_id, project_id=ctx.visible_project, name=fields.name, description=fields.description)
    return JSONResponse({"security_group": sg_views.security_group(group)})


@router.delete(GROUPS + "/{group_id}")
@action("delete_security_group")
async def delete_security_group(group_id: str, deps: Deps, ctx: Context) -> Response:
    """204; 409 for the default group (unless admin, as Neutron) or a group in use."""
    await deps.db.security_groups.delete(group_id, project_id=ctx.visible_project,
                                         allow_default=ctx.is_admin)
    return Response(status_code=204)


@router.post(RULES)
@request_body(neutron_security_group_rule())
@action("create_security_group_rule")
async def create_security_group_rule(request: Request, deps: Deps,
                                     ctx: Context) -> JSONResponse:
    """A new rule in a visible group (201); 409 for a duplicate or past the quota."""
    fields = sg_schemas.parse_rule_create(await read_json(request), ctx)
    spec = fields.spec
    rule = SecurityGroupRule(
        id=new_uuid(), security_group_id=fields.security_group_id,
        project_id=ctx.project_id, direction=Direction(spec.direction),
        ethertype=spec.ethertype, protocol=spec.protocol,
        port_range_min=spec.port_range_min, port_range_max=spec.port_range_max,
        remote_ip_prefix=spec.remote_ip_prefix, remote_group_id=spec.remote_group_id,
        description=fields.description)
    stored = await deps.db.security_groups.add_rule(rule, project_id=ctx.visible_project,
                                                    limit=SECURITY_GROUP_RULE_QUOTA)
    return JSONResponse({"security_group_rule": sg_views.security_group_rule(stored)},
                        status_code=201)


@router.get(RULES)
@action("get_security_group_rule")
async def list_security_group_rules(request: Request, deps: Deps,
                                    ctx: Context) -> JSONResponse:
    rules = await deps.db.security_groups.list_rules(project_id=ctx.visible_project)
    return listing.collection(request, "security_group_rules",
                              [sg_views.security_group_rule(r) for r in rules],
                              not_found=SecurityGroupRuleNotFound,
                              filters=sg_views.RULE_FILTERS)


@router.get(RULES + "/{rule_id}")
@action("get_security_group_rule")
async def show_security_group_rule(rule_id: str, request: Request, deps: Deps,
                                   ctx: Context) -> JSONResponse:
    rule = await deps.db.security_groups.get_rule(rule_id, project_id=ctx.visible_project)
    return JSONResponse({"security_group_rule": _one(sg_views.security_group_rule(rule),
                                                     request.query_params)})


@router.delete(RULES + "/{rule_id}")
@action("delete_security_group_rule")
async def delete_security_group_rule(rule_id: str, deps: Deps, ctx: Context) -> Response:
    await deps.db.security_groups.delete_rule(rule_id, project_id=ctx.visible_project)
    return Response(status_code=204)
