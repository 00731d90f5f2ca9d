"""The minimal image registry: who sees which image, and the upload state machine.

An image is created ``queued``; an upload moves it ``queued -> saving -> active``
(with size and MD5 checksum), or to ``killed`` if the data stream breaks, as Glance v2
does. Nothing here knows HTTP: the API's image routes call these functions.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

from strato.db.uow import ImageRepo
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid, InvalidState, NotFound, StratoError
from strato.domain.ids import ImageId, ProjectId
from strato.domain.images import Image, ImageStatus
from strato.image.store import ImageStore

__all__ = ["delete_image", "get_image", "is_visible", "list_images", "upload_image"]

logger = logging.getLogger(__name__)

# Images every project may use; "shared" images need membership, which strato does not
# have yet, so they are visible to their owner only (like "private").
_OPEN_VISIBILITY = frozenset({"public", "community"})


def is_visible(image: Image, ctx: RequestContext) -> bool:
    """Whether the caller may see (and boot from) ``image``."""
    return (ctx.is_admin or image.owner == ctx.project_id
            or image.visibility in _OPEN_VISIBILITY)


def _check_owner(image: Image, ctx: RequestContext) -> None:
    if not (ctx.is_admin or image.owner == ctx.project_id):
        raise Forbidden(f"You are not permitted to modify image {image.id}.")


async def get_image(repo: ImageRepo, ctx: RequestContext, image_id: ImageId) -> Image:
    """The image if the caller may see it; ``NotFound`` otherwise (an invisible image is
    reported exactly like a missing one, so ids do not leak across projects)."""
    try:
        image = await repo.get(image_id)
    except NotFound:
        image = None
    if image is None or not is_visible(image, ctx) or image.status == ImageStatus.DELETED:
        raise NotFound(f"No image found with ID {image_id}")
    return image


async def list_images(repo: ImageRepo, ctx: RequestContext, *, limit: int,
                      marker: ImageId | None) -> list[Image]:
    """The images the caller may see, newest first (all of them for an admin);
    ``Invalid`` for an unknown marker."""
    owner: ProjectId | None = None if ctx.is_admin else ctx.project_id
    try:
        return await repo.list(owner=owner, limit=limit, marker=marker)
    except NotFound:
        raise Invalid(f"marker [{marker}] not found") from None


async def upload_image(repo: ImageRepo, store: ImageStore, *, ctx: RequestContext,
                       image_id: ImageId, chunks: AsyncIterator[bytes]) -> Image:
    """Store the image's data and make it ``active``.

    ``InvalidState`` (409) unless the image is ``queued``: data is uploaded once. If the
    stream breaks, the image becomes ``killed``, the partial file is gone, and the
    error propagates.
    """
    image = await get_image(repo, ctx, image_id)
    _check_owner(image, ctx)
    try:
        await repo.set_status(image_id, ImageStatus.SAVING, expected=(ImageStatus.QUEUED,))
    except InvalidState:
        raise InvalidState(f"Image {image_id} is not queued: its data can be uploaded "
                           "only once.") from None
    try:
        size, checksum = await store.write(image_id, chunks)
    except BaseException:
        # Cancelled or broken: Glance's "killed" tells the owner to upload a new image.
        logger.warning("upload of image %s failed; marking it killed", image_id)
        await repo.set_status(image_id, ImageStatus.KILLED, expected=(ImageStatus.SAVING,))
        raise
    try:
        active = await repo.set_status(image_id, ImageStatus.ACTIVE,
                                       expected=(ImageStatus.SAVING,), size=size,
                                       checksum=checksum)
    except StratoError:
        await store.delete(image_id)  # deleted meanwhile: do not keep orphaned data
        raise
    logger.info("image %s uploaded: %d bytes", image_id, size)
    return active


async def delete_image(repo: ImageRepo, store: ImageStore, *, ctx: RequestContext,
                       image_id: ImageId) -> None:
    """Delete the image record and its data; ``Forbidden`` for a protected image."""
    image = await get_image(repo, ctx, image_id)
    _check_owner(image, ctx)
    if image.protected:
        raise Forbidden(f"Image {image_id} is protected and cannot be deleted.")
    await repo.delete(image_id)
    await store.delete(image_id)
