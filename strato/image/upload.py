"""Uploading an image's data: ``queued -> saving -> active``, checked as it streams.

The first :data:`~strato.image.inspect.HEADER_BYTES` are inspected on the way through
(no second pass over the data): an image whose real format is not its ``disk_format``,
or that names a backing file or an external data file, is refused. With a declared
length (``Content-Length``) the check runs as soon as the header has arrived, before
anything past it is written; a chunked upload is checked at its end, when its size is
known.

What happens to the image when an upload fails:

===========================================  ===========  ========================
failure                                      answer       image afterwards
===========================================  ===========  ========================
refused data (format, backing file, length)  ``Invalid``  ``queued``: upload again
the stream broke (client gone, cancelled),   propagates    ``killed`` (as Glance's
the store failed                                          v1 did): create a new one
===========================================  ===========  ========================

Either way no data is left behind.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import suppress

from strato.db.uow import ImageRepo
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid, InvalidState, NotFound, StratoError
from strato.domain.ids import ImageId
from strato.domain.images import Image, ImageData, ImageStatus
from strato.image.inspect import HEADER_BYTES, ImageInfo, check_safe, inspect_header
from strato.image.service import get_own_image
from strato.image.store import ImageStore

__all__ = ["upload_image"]

logger = logging.getLogger(__name__)


async def upload_image(repo: ImageRepo, store: ImageStore, *, ctx: RequestContext,
                       image_id: ImageId, chunks: AsyncIterator[bytes],
                       declared_size: int | None = None) -> Image:
    """Store the image's data from ``chunks`` and make the image ``active``, with its
    size, MD5 checksum, SHA-512 hash and virtual size.

    ``declared_size`` is the length the client announced, if any (a mismatch is
    ``Invalid``). ``InvalidState`` (409) unless the image is ``queued``: data is uploaded
    once. ``Invalid`` (400, image stays ``queued``) when ``disk_format`` or
    ``container_format`` is not set yet, or the data is refused.
    """
    image = await get_own_image(repo, ctx, image_id)
    if image.status != ImageStatus.QUEUED:
        raise InvalidState(f"Image {image_id} is {image.status}: its data can be uploaded "
                           "only once, to a queued image.")
    if not (image.disk_format and image.container_format):
        raise Invalid("Properties disk_format, container_format must be set prior to "
                      "saving data.")
    try:
        await repo.set_status(image_id, ImageStatus.SAVING, expected=(ImageStatus.QUEUED,))
    except InvalidState:
        raise InvalidState(f"Image {image_id} is not queued: another upload got there "
                           "first.") from None
    check = _HeadCheck(image.disk_format, declared_size)
    logger.info("image %s upload started", image_id)
    try:
        stored = await store.write(image_id, check.watch(chunks))
    except Invalid as exc:
        logger.info("image %s upload refused: %s", image_id, exc)
        await _fall_back(repo, image_id, ImageStatus.QUEUED)
        raise
    except BaseException:
        logger.warning("image %s upload broke off; marking it killed", image_id)
        await _fall_back(repo, image_id, ImageStatus.KILLED)
        raise
    data = ImageData(size=stored.size, checksum=stored.md5, os_hash_value=stored.sha512,
                     virtual_size=check.virtual_size)
    try:
        active = await repo.activate(image_id, data)
    except StratoError:
        await store.delete(image_id)  # deleted meanwhile: do not keep orphaned data
        raise
    logger.info("image %s uploaded: %d bytes", image_id, stored.size)
    return active


async def _fall_back(repo: ImageRepo, image_id: ImageId, status: ImageStatus) -> None:
    # The image may have been deleted during the upload; the upload's own error is the
    # one to report.
    with suppress(NotFound, InvalidState):
        await repo.set_status(image_id, status, expected=(ImageStatus.SAVING,))


class _HeadCheck:
    """Watches an upload's chunks go by: keeps the first ``HEADER_BYTES``, counts the
    rest, and inspects the header once, as early as the sizes allow."""

    def __init__(self, disk_format: str, declared_size: int | None) -> None:
        self._disk_format = disk_format
        self._declared = declared_size
        self._head = bytearray()
        self._received = 0
        self._info: ImageInfo | None = None

    @property
    def virtual_size(self) -> int | None:
        """The guest-visible size the header declared; ``None`` if it could not tell."""
        if self._info is None or (self._info.virtual_size == 0 and self._received > 0):
            return None
        return self._info.virtual_size

    async def watch(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` unchanged, or ``Invalid`` as soon as they are known to be wrong."""
        async for chunk in chunks:
            self._received += len(chunk)
            if self._declared is not None and self._received > self._declared:
                raise Invalid(f"The image data is longer than its declared size "
                              f"({self._declared} bytes).")
            if len(self._head) < HEADER_BYTES:
                self._head += chunk[:HEADER_BYTES - len(self._head)]
                if len(self._head) == HEADER_BYTES and self._declared is not None:
                    self._inspect(self._declared)
            yield chunk
        if self._declared is not None and self._received != self._declared:
            raise Invalid(f"The image data ended after {self._received} of its declared "
                          f"{self._declared} bytes.")
        if self._info is None:
            self._inspect(self._received)

    def _inspect(self, total_size: int) -> None:
        info = inspect_header(bytes(self._head), total_size)
        check_safe(info, self._disk_format)
        self._info = info
