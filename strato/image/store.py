"""Image bytes on local disk: one file per image, ``<directory>/<id>`` (by default the
directory is ``<data_dir>/images``).

An upload is written to a temporary name in the same directory and renamed into place
only when every byte has arrived, so a reader never sees a half-written image and a
broken upload leaves nothing behind. The file calls block, so they run in a thread
(``asyncio.to_thread``); this module is the only place that touches image files.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import BinaryIO

from strato.domain.errors import Invalid, NotFound
from strato.domain.ids import ImageId

__all__ = ["ImageStore"]

# Writes are batched to this size so a stream of small chunks does not cost one thread
# hop per chunk.
_WRITE_BATCH = 1024 * 1024
_READ_CHUNK = 64 * 1024
# Image ids become file names: letters, digits and dashes only (no "/", no "..").
_SAFE_ID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class ImageStore:
    """Stores and serves image data as files in one directory."""

    def __init__(self, directory: Path) -> None:
        """``directory``: where image files live (``<data_dir>/images``); created on the
        first write."""
        self.directory = directory

    def path(self, image_id: ImageId) -> Path:
        """Where the image's data lives once its upload completed."""
        if not _SAFE_ID.match(image_id):
            raise Invalid(f"invalid image id {image_id!r}")
        return self.directory / image_id

    async def write(self, image_id: ImageId,
                    chunks: AsyncIterator[bytes]) -> tuple[int, str]:
        """Store the image's data from ``chunks``; return its size and MD5 hex digest.

        The data becomes visible at :meth:`path` only after the last chunk; if ``chunks``
        raises (a client that went away), the partial file is removed and the error
        propagates.
        """
        final = self.path(image_id)
        temp = final.with_name(f".{image_id}.{uuid.uuid4().hex}.part")
        await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        handle = await asyncio.to_thread(temp.open, "wb")
        try:
            size, md5 = await _copy(chunks, handle)
            await asyncio.to_thread(_finish, handle, temp, final)
        except BaseException:
            # Cancelled or failed: never leave a partial file behind.
            await asyncio.to_thread(_discard, handle, temp)
            raise
        return size, md5

    async def read(self, image_id: ImageId) -> AsyncIterator[bytes]:
        """Open the image's data and return its chunks; ``NotFound`` (raised here, before
        any byte is sent) if it has none."""
        path = self.path(image_id)
        try:
            handle = await asyncio.to_thread(path.open, "rb")
        except FileNotFoundError:
            raise NotFound(f"no data for image {image_id}") from None
        return _chunks(handle)

    async def delete(self, image_id: ImageId) -> None:
        """Remove the image's data; a missing file is not an error."""
        await asyncio.to_thread(self.path(image_id).unlink, missing_ok=True)


async def _copy(chunks: AsyncIterator[bytes], handle: BinaryIO) -> tuple[int, str]:
    """Write ``chunks`` to ``handle`` in batches; return the size and MD5 digest."""
    md5 = hashlib.md5(usedforsecurity=False)  # Glance's "checksum" field is MD5
    size = 0
    batch = bytearray()
    async for chunk in chunks:
        batch += chunk
        if len(batch) >= _WRITE_BATCH:
            size += await asyncio.to_thread(_write, handle, md5, bytes(batch))
            batch.clear()
    size += await asyncio.to_thread(_write, handle, md5, bytes(batch))
    return size, md5.hexdigest()


async def _chunks(handle: BinaryIO) -> AsyncIterator[bytes]:
    try:
        while chunk := await asyncio.to_thread(handle.read, _READ_CHUNK):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


def _write(handle: BinaryIO, md5: hashlib._Hash, data: bytes) -> int:
    # Hashing a megabyte is CPU work: it runs in the thread together with the write.
    md5.update(data)
    handle.write(data)
    return len(data)


def _finish(handle: BinaryIO, temp: Path, final: Path) -> None:
    handle.flush()
    os.fsync(handle.fileno())
    handle.close()
    os.replace(temp, final)


def _discard(handle: BinaryIO, temp: Path) -> None:
    handle.close()
    temp.unlink(missing_ok=True)
