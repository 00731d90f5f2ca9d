"""Sharing an image with other projects: Glance v2's image members.

Only an image whose visibility is ``shared`` has members (``Forbidden`` otherwise). The
owner (or an admin) adds and removes them; each member answers for itself
(``pending`` -> ``accepted``/``rejected``), and only an accepted member sees the image in
its default list (any member may look it up by id). A member sees only its own entry.
"""

from __future__ import annotations

import logging

from strato.db.ports import ImageRepo
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, NotFound, OverQuota
from strato.domain.ids import ImageId, ProjectId
from strato.domain.images import Image, ImageMember, MemberStatus, may_modify
from strato.image.patch import check_text
from strato.image.service import get_image, get_own_image

__all__ = ["MAX_MEMBERS", "add_member", "get_member", "list_members", "remove_member",
           "set_member_status"]

logger = logging.getLogger(__name__)

# Glance's image_member_quota default.
MAX_MEMBERS = 128


def _check_shared(image: Image) -> None:
    if image.visibility != "shared":
        raise Forbidden("Only shared images have members.")


async def add_member(repo: ImageRepo, ctx: RequestContext, image_id: ImageId,
                     member_id: str) -> ImageMember:
    """Share the image with project ``member_id`` (status ``pending``); ``Conflict``
    if it already is a member."""
    image = await get_own_image(repo, ctx, image_id)
    _check_shared(image)
    if len(await repo.list_members(image_id)) >= MAX_MEMBERS:
        raise OverQuota(f"Maximum number of members ({MAX_MEMBERS}) exceeded for image "
                        f"{image_id}.")
    member = ImageMember(image_id=image_id,
                         member_id=ProjectId(check_text("member", member_id)))
    added = await repo.add_member(member)
    logger.info("image %s shared with %s", image_id, member_id)
    return added


async def list_members(repo: ImageRepo, ctx: RequestContext,
                       image_id: ImageId) -> list[ImageMember]:
    """Every member for the owner or an admin; a member's own entry for a member."""
    image = await get_image(repo, ctx, image_id)
    _check_shared(image)
    members = await repo.list_members(image_id)
    if may_modify(image, ctx):
        return members
    return [m for m in members if m.member_id == ctx.project_id]


async def get_member(repo: ImageRepo, ctx: RequestContext, image_id: ImageId,
                     member_id: str) -> ImageMember:
    """One member, for the owner, an admin, or the member itself; ``NotFound`` for
    anyone else."""
    image = await get_image(repo, ctx, image_id)
    _check_shared(image)
    if not may_modify(image, ctx) and member_id != ctx.project_id:
        raise NotFound(f"{member_id} is not a member of image {image_id}.")
    return await repo.get_member(image_id, ProjectId(member_id))


async def set_member_status(repo: ImageRepo, ctx: RequestContext, image_id: ImageId, *,
                            member_id: str, status: MemberStatus) -> ImageMember:
    """The member's answer: only the member itself (or an admin) gives it."""
    member = await get_member(repo, ctx, image_id, member_id)
    if member.member_id != ctx.project_id and not ctx.is_admin:
        raise Forbidden("You are not permitted to modify 'status' on this image member.")
    return await repo.set_member_status(image_id, member.member_id, status)


async def remove_member(repo: ImageRepo, ctx: RequestContext, image_id: ImageId,
                        member_id: str) -> None:
    """Stop sharing with ``member_id``: the owner's (or an admin's) call."""
    image = await get_image(repo, ctx, image_id)
    _check_shared(image)
    if not may_modify(image, ctx):
        if member_id != ctx.project_id:
            raise NotFound(f"{member_id} is not a member of image {image_id}.")
        raise Forbidden("You are not permitted to delete this image member.")
    await repo.remove_member(image_id, ProjectId(member_id))
    logger.info("image %s no longer shared with %s", image_id, member_id)
