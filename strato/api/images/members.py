"""Image members (Glance v2 sharing): ``/v2/images/{id}/members``."""

from __future__ import annotations

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from strato.api.bodies import read_json
from strato.api.deps import Context, Deps
from strato.api.images import schemas, views
from strato.api.openapi import glance_member, glance_member_status, request_body
from strato.api.policy import action
from strato.domain.ids import ImageId
from strato.image import sharing

__all__ = ["router"]

router = APIRouter(prefix="/v2/images/{image_id}/members")


@router.post("")
@request_body(glance_member())
@action("image:add_member")
async def add_member(image_id: str, request: Request, deps: Deps,
                     ctx: Context) -> JSONResponse:
    """``POST``: share the image with ``{"member": "<project id>"}``; 200 (Glance's
    code) with the ``pending`` member."""
    member_id = schemas.member_from_body(await read_json(request))
    member = await sharing.add_member(deps.db.images, ctx, ImageId(image_id), member_id)
    return JSONResponse(views.member_view(member))


@router.get("")
@action("image:get_members")
async def list_members(image_id: str, deps: Deps, ctx: Context) -> JSONResponse:
    """``GET``: every member (owner) or one's own entry (a member)."""
    members = await sharing.list_members(deps.db.images, ctx, ImageId(image_id))
    return JSONResponse(views.members_view(members))


@router.get("/{member_id}")
@action("image:get_member")
async def show_member(image_id: str, member_id: str, deps: Deps,
                      ctx: Context) -> JSONResponse:
    """``GET .../{member_id}``."""
    member = await sharing.get_member(deps.db.images, ctx, ImageId(image_id), member_id)
    return JSONResponse(views.member_view(member))


@router.put("/{member_id}")
@request_body(glance_member_status())
@action("image:modify_member")
async def update_member(image_id: str, member_id: str, request: Request, deps: Deps,
                        ctx: Context) -> JSONResponse:
    """``PUT .../{member_id}`` with ``{"status": "accepted"}``: the member's answer."""
    status = schemas.member_status_from_body(await read_json(request))
    member = await sharing.set_member_status(deps.db.images, ctx, ImageId(image_id),
                                             member_id=member_id, status=status)
    return JSONResponse(views.member_view(member))


@router.delete("/{member_id}")
@action("image:delete_member")
async def remove_member(image_id: str, member_id: str, deps: Deps, ctx: Context) -> Response:
    """``DELETE .../{member_id}``: 204; the owner's call."""
    await sharing.remove_member(deps.db.images, ctx, ImageId(image_id), member_id)
    return Response(status_code=204)
