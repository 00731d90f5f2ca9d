"""Image bytes on local disk: one file per image, ``<directory>/<id>`` (by default the
directory is ``<data_dir>/images``).

An upload is written to a temporary name in the same directory and renamed into place
only when every byte has arrived, so a reader never sees a half-written image and a
broken upload leaves nothing behind. This module is the only place that touches image
files, and the only one that knows the OS's errors: they leave it as ``Unavailable``.

Image files are the store's alone: the directory is made 0700 and every file 0600,
whatever the process's umask. An upload holds an exclusive ``flock`` on its temporary
file while it writes, so a temporary file nobody holds is the leftover of a process
that died mid-upload: :meth:`ImageStore.sweep` (at API start) and
:meth:`ImageStore.delete` remove those.

Speed: the data is never held whole. It arrives in small chunks (64 KiB from uvicorn),
is gathered into batches of :data:`BATCH_BYTES`, and each batch is hashed (MD5 for
Glance's ``checksum``, SHA-512 for ``os_hash_value``) and written in worker threads:
the two digests on two threads at once, while the event loop already receives the next
batch. Blocking calls never run on the event loop.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from strato.domain.errors import Invalid, NotFound, Unavailable
from strato.domain.ids import ImageId

__all__ = ["BATCH_BYTES", "ImageStore", "StoredData"]

# Large enough that per-batch costs (two thread hops) vanish next to hashing 4 MiB, small
# enough that an upload holds at most two batches (one gathering, one being hashed).
BATCH_BYTES = 4 * 1024 * 1024
_READ_BYTES = 1024 * 1024
# Image ids become file names: letters, digits and dashes only (no "/", no "..").
_SAFE_ID = re.compile(r"[A-Za-z0-9-]{1,64}")
# An upload's temporary file: ".<image id>.<random hex>.part".
_PART = re.compile(r"\.([A-Za-z0-9-]{1,64})\.[0-9a-f]{32}\.part")
_DIR_MODE = 0o700
_FILE_MODE = 0o600


@dataclass(frozen=True, slots=True, kw_only=True)
class StoredData:
    """What :meth:`ImageStore.write` measured while storing."""

    size: int
    md5: str
    sha512: str


class ImageStore:
    """Stores and serves image data as files in one directory."""

    def __init__(self, directory: Path, *, fsync: bool = True) -> None:
        """``directory``: where image files live (``<data_dir>/images``); created on the
        first write. ``fsync``: flush each upload to stable storage before it counts as
        stored (turn off only where the data can be uploaded again, such as tests)."""
        self.directory = directory
        self.fsync = fsync

    def path(self, image_id: ImageId) -> Path:
        """Where the image's data lives once its upload completed."""
        if not _SAFE_ID.fullmatch(image_id):
            raise Invalid(f"invalid image id {image_id!r}")
        return self.directory / image_id

    async def write(self, image_id: ImageId, chunks: AsyncIterator[bytes]) -> StoredData:
        """Store the image's data from ``chunks``; return its size and digests.

        The data becomes visible at :meth:`path` only after the last chunk; if ``chunks``
        raises (a client that went away, a refused header), the partial file is removed
        and the error propagates.
        """
        final = self.path(image_id)
        temp = final.with_name(f".{image_id}.{uuid.uuid4().hex}.part")
        with _os_errors("store"):
            await asyncio.to_thread(_private_dir, self.directory)
            handle = await asyncio.to_thread(_open_locked, temp)
        try:
            # Only the store's own I/O is translated: an error of ``chunks`` (the
            # client's side) propagates as it is.
            stored = await _Writer(handle).copy(chunks)
            with _os_errors("store"):
                await asyncio.to_thread(_finish, handle, temp, final, self.fsync)
        except BaseException:
            # Cancelled or failed: never leave a partial file behind.
            await asyncio.to_thread(_discard, handle, temp)
            raise
        return stored

    async def read(self, image_id: ImageId, *, offset: int = 0,
                   length: int | None = None) -> AsyncIterator[bytes]:
        """Open the image's data and return its chunks, ``length`` bytes (all by default)
        from ``offset``; ``NotFound`` (raised here, before any byte is sent) if it has
        none."""
        path = self.path(image_id)
        try:
            with _os_errors("read"):
                handle = await asyncio.to_thread(_open_at, path, offset)
        except FileNotFoundError:
            raise NotFound(f"no data for image {image_id}") from None
        return _chunks(handle, length)

    async def delete(self, image_id: ImageId) -> None:
        """Remove the image's data, and the temporary files of its dead uploads (one
        still being written is its upload's to remove); a missing file is not an error."""
        path = self.path(image_id)
        with _os_errors("delete"):
            await asyncio.to_thread(path.unlink, missing_ok=True)
            await asyncio.to_thread(self._remove_dead_parts, image_id)

    async def sweep(self) -> set[ImageId]:
        """Make the store private again (directory 0700, files 0600, as older versions
        left them readable), remove every temporary file no live upload holds, and
        return the ids of the images whose upload is live (another API process on this
        store is writing it)."""
        with _os_errors("sweep"):
            return await asyncio.to_thread(self._sweep)

    def _sweep(self) -> set[ImageId]:
        if not self.directory.exists():
            return set()
        os.chmod(self.directory, _DIR_MODE)
        for entry in self.directory.iterdir():
            if _SAFE_ID.fullmatch(entry.name) and entry.is_file():
                os.chmod(entry, _FILE_MODE)
        return {ImageId(m.group(1)) for path, m in self._parts() if not _remove_if_dead(path)}

    def _remove_dead_parts(self, image_id: ImageId) -> None:
        for path, match in self._parts():
            if match.group(1) == image_id:
                _remove_if_dead(path)

    def _parts(self) -> list[tuple[Path, re.Match[str]]]:
        if not self.directory.exists():
            return []
        return [(entry, m) for entry in self.directory.iterdir()
                if (m := _PART.fullmatch(entry.name))]


@contextmanager
def _os_errors(verb: str) -> Iterator[None]:
    """OSError -> ``Unavailable`` (a full or broken disk is the store's problem, not the
    client's), except FileNotFoundError, which callers turn into ``NotFound``."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise Unavailable(f"image store cannot {verb} data: {exc.strerror or exc}") from exc


class _Writer:
    """Hashes and writes batches, one batch in flight while the next one gathers.

    A batch runs as two thread jobs: MD5 then the file write on one thread, SHA-512 on
    another (hashlib and file writes release the GIL). Each job is awaited before the
    next batch starts (the digests must see the data in order) and before the file is
    closed, so no thread ever touches a closed file.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._md5 = hashlib.md5(usedforsecurity=False)  # Glance's "checksum" field is MD5
        self._sha512 = hashlib.sha512()
        self._size = 0
        self._jobs: list[asyncio.Future[None]] = []

    async def copy(self, chunks: AsyncIterator[bytes]) -> StoredData:
        batch: list[bytes] = []
        gathered = 0
        try:
            async for chunk in chunks:
                batch.append(chunk)
                gathered += len(chunk)
                if gathered >= BATCH_BYTES:
                    await self._start(batch, gathered)
                    batch = []
                    gathered = 0
            await self._start(batch, gathered)
        finally:
            await self._settle()
        return StoredData(size=self._size, md5=self._md5.hexdigest(),
                          sha512=self._sha512.hexdigest())

    async def _start(self, batch: list[bytes], size: int) -> None:
        await self._settle()
        loop = asyncio.get_running_loop()
        # run_in_executor is asyncio.to_thread without the task: the futures are owned
        # here and always awaited in _settle. The chunks are hashed and written one by
        # one rather than joined: joining would copy every byte once more.
        self._jobs = [loop.run_in_executor(None, self._md5_and_write, batch),
                      loop.run_in_executor(None, _update, self._sha512, batch)]
        self._size += size

    def _md5_and_write(self, batch: list[bytes]) -> None:
        _update(self._md5, batch)
        self._handle.writelines(batch)

    async def _settle(self) -> None:
        """Wait for the batch in flight; re-raise its error (an OSError of the write).
        The jobs are forgotten only once done: if this wait is cancelled, the caller's
        ``finally`` waits again."""
        if self._jobs:
            await asyncio.wait(self._jobs)
            jobs, self._jobs = self._jobs, []
            with _os_errors("write"):
                for job in jobs:
                    job.result()


def _update(digest: hashlib._Hash, batch: list[bytes]) -> None:
    for chunk in batch:
        digest.update(chunk)


def _private_dir(directory: Path) -> None:
    directory.mkdir(mode=_DIR_MODE, parents=True, exist_ok=True)
    if directory.stat().st_mode & 0o777 != _DIR_MODE:
        os.chmod(directory, _DIR_MODE)  # mkdir's mode is masked by the umask


def _open_locked(temp: Path) -> BinaryIO:
    """A new temporary file, 0600 whatever the umask, locked for the upload that writes
    it (the lock goes with the file's last close, or with the process)."""
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, _FILE_MODE)
    try:
        os.fchmod(fd, _FILE_MODE)
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return os.fdopen(fd, "wb")
    except BaseException:
        os.close(fd)
        raise


def _remove_if_dead(path: Path) -> bool:
    """Remove the temporary file ``path`` unless a live upload holds its lock; whether
    it was removed (or was gone already)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return True
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        path.unlink(missing_ok=True)
        return True
    finally:
        os.close(fd)


def _finish(handle: BinaryIO, temp: Path, final: Path, fsync: bool) -> None:
    handle.flush()
    if fsync:
        os.fsync(handle.fileno())
    # Renamed while still locked: a sweep never takes a complete upload for a dead one.
    os.replace(temp, final)
    handle.close()


def _discard(handle: BinaryIO, temp: Path) -> None:
    # Best effort, and never masking the error that brought us here: closing flushes,
    # which fails again on a full disk.
    with suppress(OSError):
        handle.close()
    with suppress(OSError):
        temp.unlink(missing_ok=True)


def _open_at(path: Path, offset: int) -> BinaryIO:
    handle = path.open("rb")
    if offset:
        handle.seek(offset)
    return handle


async def _chunks(handle: BinaryIO, length: int | None) -> AsyncIterator[bytes]:
    left = length
    try:
        while left is None or left > 0:
            want = _READ_BYTES if left is None else min(_READ_BYTES, left)
            chunk = await asyncio.to_thread(handle.read, want)
            if not chunk:
                return
            if left is not None:
                left -= len(chunk)
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)

