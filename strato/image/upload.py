"""Uploading an image's data: ``queued -> saving -> active``, checked as it streams.

The first :data:`~strato.image.inspect.HEADER_BYTES` are inspected on the way through
(no second pass over the data): an image whose real format is not its ``disk_format``,
or that names a backing file or an external data file, is refused. With a declared
length (``Content-Length``) the check runs as soon as the header has arrived, before
anything past it is written; a chunked upload is checked at its end, when its size is
known.

What happens to the image when an upload fails:

===========================================  ===============  ====================
failure                                      answer           image afterwards
===========================================  ===============  ====================
refused data (format, backing file, length)  ``Invalid``      ``queued``: upload
                                                              again
past the image size cap or the project's     ``ImageTooLarge``  ``queued``
image storage quota (``image_size_total``)
the stream broke (client gone, cancelled),   propagates       ``killed`` (as
the store failed                                              Glance's v1 did)
the API process died                         -                ``queued`` again at
                                                              the next start
                                                              (:func:`sweep_uploads`)
===========================================  ===============  ====================

Either way no data is left behind.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import suppress
from dataclasses import dataclass

from strato.db.ports import ImageQuery, ImageRepo
from strato.domain.context import RequestContext
from strato.domain.errors import Invalid, InvalidState, NotFound, OverQuota, StratoError
from strato.domain.ids import ImageId, ProjectId
from strato.domain.images import Image, ImageData, ImageStatus
from strato.image.inspect import HEADER_BYTES, ImageInfo, check_safe, inspect_header
from strato.image.service import get_own_image
from strato.image.store import ImageStore

__all__ = ["ImageTooLarge", "UploadLimits", "storage_used", "sweep_uploads", "upload_image"]

logger = logging.getLogger(__name__)

MIB = 1024 * 1024
UNLIMITED = -1


class ImageTooLarge(OverQuota):
    """An upload past the image size cap or its project's image storage quota (Glance
    answers 413 Request Entity Too Large)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class UploadLimits:
    """``size_cap``: most bytes of one image (Glance's ``image_size_cap``);
    ``size_total_mib``: the owner's quota for all its images together in MiB (Glance's
    unified limit ``image_size_total``; -1 unlimited), a function of the project."""

    size_cap: int = 1 << 40
    size_total_mib: Callable[[ProjectId], int] = lambda _project: UNLIMITED


async def storage_used(repo: ImageRepo, owner: ProjectId) -> int:
    """The bytes the owner's images hold now."""
    images = await repo.list(ImageQuery(owner=owner, visibility="all", member_status=None,
                                        os_hidden=None, size_min=1))
    return sum(image.size or 0 for image in images)


async def sweep_uploads(repo: ImageRepo, store: ImageStore) -> list[ImageId]:
    """At API start: every image left ``saving`` by an upload that no process is
    writing any more (its API was killed) goes back to ``queued``, as Glance does on a
    failed upload, and the dead uploads' temporary files are removed. Returns the ids
    put back."""
    live = await store.sweep()
    stuck = await repo.list(ImageQuery(status=ImageStatus.SAVING.value, visibility="all",
                                       member_status=None, os_hidden=None))
    swept = []
    for image in stuck:
        if image.id in live:
            continue
        with suppress(NotFound, InvalidState):  # finished or deleted meanwhile
            await repo.set_status(image.id, ImageStatus.QUEUED, expected=(ImageStatus.SAVING,))
            swept.append(image.id)
            logger.warning("image %s was left saving by a dead upload: queued again",
                           image.id)
    return swept


async def upload_image(repo: ImageRepo, store: ImageStore, *, ctx: RequestContext,
                       image_id: ImageId, chunks: AsyncIterator[bytes],
                       declared_size: int | None = None,
                       limits: UploadLimits | None = None) -> Image:
    """Store the image's data from ``chunks`` and make the image ``active``, with its
    size, MD5 checksum, SHA-512 hash and virtual size.

    ``declared_size`` is the length the client announced, if any (a mismatch is
    ``Invalid``). ``InvalidState`` (409) unless the image is ``queued``: data is uploaded
    once. ``Invalid`` (400, image stays ``queued``) when ``disk_format`` or
    ``container_format`` is not set yet, or the data is refused. ``ImageTooLarge``
    (image stays ``queued``) past ``limits``: before a byte is read when the owner is
    already over its quota or the declared size is too large, else as soon as the data
    goes past them.
    """
    limits = limits or UploadLimits()
    image = await get_own_image(repo, ctx, image_id)
    if image.status != ImageStatus.QUEUED:
        raise InvalidState(f"Image {image_id} is {image.status}: its data can be uploaded "
                           "only once, to a queued image.")
    if not (image.disk_format and image.container_format):
        raise Invalid("Properties disk_format, container_format must be set prior to "
                      "saving data.")
    allowance = await _Allowance.of(repo, image, limits)
    allowance.check(declared_size or 0)
    try:
        await repo.set_status(image_id, ImageStatus.SAVING, expected=(ImageStatus.QUEUED,))
    except InvalidState:
        raise InvalidState(f"Image {image_id} is not queued: another upload got there "
                           "first.") from None
    check = _HeadCheck(image.disk_format, declared_size)
    logger.info("image %s upload started", image_id)
    try:
        stored = await store.write(image_id, allowance.watch(check.watch(chunks)))
    except (Invalid, ImageTooLarge) as exc:
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


@dataclass(frozen=True, slots=True, kw_only=True)
class _Allowance:
    """How many bytes one upload may bring: the size cap, and what the owner's quota
    leaves (Glance's words in the refusals)."""

    size_cap: int
    owner: ProjectId | None
    quota_mib: int
    used: int

    @classmethod
    async def of(cls, repo: ImageRepo, image: Image, limits: UploadLimits) -> _Allowance:
        quota = limits.size_total_mib(image.owner) if image.owner is not None else UNLIMITED
        used = await storage_used(repo, image.owner) if quota != UNLIMITED and image.owner \
            else 0
        allowance = cls(size_cap=limits.size_cap, owner=image.owner, quota_mib=quota,
                        used=used)
        if quota != UNLIMITED and used // MIB > quota:
            raise allowance.over_quota(0)
        return allowance

    def check(self, size: int) -> None:
        """``ImageTooLarge`` if an image of ``size`` bytes is refused."""
        if size > self.size_cap:
            raise ImageTooLarge(f"The incoming image is too large: the image size cap is "
                                f"{self.size_cap} bytes.")
        if self.quota_mib != UNLIMITED and self.used + size > self.quota_mib * MIB:
            raise self.over_quota(size)

    def over_quota(self, size: int) -> ImageTooLarge:
        delta = -(-size // MIB)  # MiB, rounded up
        return ImageTooLarge(
            f"Project {self.owner} is over a limit for [Resource image_size_total is over "
            f"limit of {self.quota_mib} due to current usage {self.used // MIB} and delta "
            f"{delta}]")

    async def watch(self, chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
        """``chunks`` unchanged, or ``ImageTooLarge`` before the chunk that goes past
        the allowance is handed on."""
        received = 0
        async for chunk in chunks:
            received += len(chunk)
            self.check(received)
            yield chunk


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
