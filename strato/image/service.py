"""The image registry: who sees which image, and what they may do with it.

Glance v2 semantics (see :mod:`strato.domain.images` for visibility). An image the caller
may not see is reported exactly like a missing one (``NotFound``), so ids do not leak
across projects; one it may see but not change is ``Forbidden``. Uploads live in
:mod:`strato.image.upload`, sharing in :mod:`strato.image.sharing`. Nothing here knows
HTTP: the API's image routes call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from strato.db.ports import ImageQuery, ImageRepo
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid, NotFound
from strato.domain.ids import ImageId
from strato.domain.images import Image, ImageMember, ImageStatus, may_modify, may_see
from strato.image.patch import MAX_TAGS, PatchOp, apply_patch, check_tag
from strato.image.store import ImageStore

__all__ = ["SERVICE_ROLE", "create_image", "deactivate_image", "delete_image", "get_image",
           "get_own_image", "is_visible", "list_images", "reactivate_image", "readable_data",
           "reads_all", "tag_image", "untag_image", "update_image"]

logger = logging.getLogger(__name__)


# The role of the services' own token: computes read and download any image they are
# asked to boot (the Compute API checked that the user may), and may change none.
SERVICE_ROLE = "service"


def reads_all(ctx: RequestContext) -> bool:
    """Whether the caller reads every image: an admin, or the service token."""
    return ctx.is_admin or SERVICE_ROLE in ctx.roles


def is_visible(image: Image, ctx: RequestContext) -> bool:
    """Whether the caller may see ``image`` without looking up its members: true for
    admins and the service token, the owner, public and community images. A member of a
    shared image needs :func:`get_image`, which does."""
    return reads_all(ctx) or may_see(image, ctx)


async def get_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId) -> Image:
    """The image if the caller may see it (a member of a shared image may, whatever its
    answer); ``NotFound`` otherwise."""
    try:
        image = await repo.get(image_id)
    except NotFound:
        image = None
    if image is not None and image.status != ImageStatus.DELETED and reads_all(ctx):
        return image
    member: ImageMember | None = None
    if image is not None and image.visibility == "shared" and not may_see(image, ctx):
        try:
            member = await repo.get_member(image.id, ctx.project_id)
        except NotFound:
            member = None
    if image is None or image.status == ImageStatus.DELETED or not may_see(image, ctx, member):
        raise NotFound(f"No image found with ID {image_id}")
    return image


async def get_own_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId) -> Image:
    """The image if the caller may change it: ``NotFound`` if it may not even see it,
    ``Forbidden`` if it may only look."""
    image = await get_image(repo, ctx, image_id)
    if not may_modify(image, ctx):
        raise Forbidden(f"You are not permitted to modify image {image_id}.")
    return image


async def list_images(repo: ImageRepo, ctx: RequestContext, query: ImageQuery) -> list[Image]:
    """The images of ``query`` the caller may list (``query.viewer`` is set here: every
    image for an admin); ``Invalid`` for a marker the caller cannot see."""
    query = replace(query, viewer=ctx.visible_project)
    try:
        return await repo.list(query)
    except NotFound:
        raise Invalid(f"marker [{query.marker}] not found") from None


async def create_image(repo: ImageRepo, ctx: RequestContext, *, image_id: ImageId,
                       changes: Sequence[PatchOp]) -> Image:
    """Register a ``queued`` image owned by the caller's project, with ``changes``
    (``add`` operations: the create body) applied by the rules of an update."""
    now = datetime.now(UTC)
    blank = Image(id=image_id, name=None, owner=ctx.project_id, created_at=now,
                  updated_at=now)
    created = await repo.create(apply_patch(blank, changes, ctx))
    logger.info("image %s created", created.id)
    return created


async def update_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId,
                       changes: Sequence[PatchOp]) -> Image:
    """Apply a JSON patch; all of it or nothing. ``Conflict`` if the image's status
    changed meanwhile (its formats may depend on it)."""
    image = await get_own_image(repo, ctx, image_id)
    changed = apply_patch(image, changes, ctx)
    if changed == image:
        return image
    return await repo.update(changed, expected=image.status)


async def delete_image(repo: ImageRepo, store: ImageStore, *, ctx: RequestContext,
                       image_id: ImageId) -> None:
    """Delete the image record and its data; ``Forbidden`` for a protected image."""
    image = await get_own_image(repo, ctx, image_id)
    if image.protected:
        raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
    await repo.delete(image_id)
    await store.delete(image_id)
    logger.info("image %s deleted", image_id)


async def deactivate_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId) -> None:
    """``active -> deactivated`` (a no-op when already deactivated): only admins can
    then download it. ``Forbidden`` in any other status, as in Glance."""
    await _flip(repo, ctx, image_id, to=ImageStatus.DEACTIVATED)


async def reactivate_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId) -> None:
    """``deactivated -> active`` (a no-op when already active)."""
    await _flip(repo, ctx, image_id, to=ImageStatus.ACTIVE)


async def _flip(repo: ImageRepo, ctx: RequestContext, image_id: ImageId, *,
                to: ImageStatus) -> None:
    image = await get_own_image(repo, ctx, image_id)
    pair = (ImageStatus.ACTIVE, ImageStatus.DEACTIVATED)
    if image.status not in pair:
        verb = "deactivate" if to == ImageStatus.DEACTIVATED else "reactivate"
        raise Forbidden(f"Not allowed to {verb} image in status '{image.status}'")
    if image.status != to:
        await repo.set_status(image_id, to, expected=pair)
        logger.info("image %s %s", image_id, to)


async def tag_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId, tag: str) -> None:
    """Add one tag (idempotent)."""
    await get_own_image(repo, ctx, image_id)
    await repo.add_tag(image_id, check_tag(tag), max_tags=MAX_TAGS)


async def untag_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId,
                      tag: str) -> None:
    """Remove one tag; ``NotFound`` if the image does not have it."""
    await get_own_image(repo, ctx, image_id)
    await repo.remove_tag(image_id, tag)


async def readable_data(repo: ImageRepo, ctx: RequestContext, image_id: ImageId) -> Image | None:
    """The image whose data the caller is about to download, or ``None`` when it has no
    data yet (Glance answers 204). ``Forbidden`` for a deactivated image unless admin."""
    image = await get_image(repo, ctx, image_id)
    if image.status == ImageStatus.DEACTIVATED and not reads_all(ctx):
        raise Forbidden("The requested image has been deactivated. Image data download "
                        "is forbidden.")
    if image.status not in (ImageStatus.ACTIVE, ImageStatus.DEACTIVATED):
        return None
    return image
