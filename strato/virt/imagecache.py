"""The per-host base image cache, instance disks made from it, and its sweeper.

Layout, as in Nova's libvirt driver::

    <instances_dir>/_base/<sha1(image id)>        an image, downloaded once per host
    <instances_dir>/_base/<sha1(image id)>.lock   flock'ed while it is built or used
    <instances_dir>/_base/ephemeral_<gb>_<fs>_..  a formatted blank disk, made once per host
    <instances_dir>/_base/swap_<mb>               a blank swap area, made once per host
    <instances_dir>/<instance>/disk, disk.eph0 ... qcow2 overlays on a base (or raw copies)
    <instances_dir>/<instance>/disk.info          JSON list of the bases the instance uses

Why a cache: ten instances of one image on a host should cost one download and ten
small overlays, not ten copies. Why two locks per base: an ``asyncio.Lock`` makes the
builds inside one process wait for each other cheaply, and an ``fcntl.flock`` on the
``.lock`` file does the same across compute processes sharing the directory. Why the
checks on a download: the image's bytes come from a user. A file that claims ``raw`` but
is qcow2 (or names a backing file, a data file or extents) would make qemu read host
files into the guest, so such a base is refused (``AbortBuild``: every host would refuse).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from strato.domain.errors import AbortBuild, Invalid, NotFound, StratoError
from strato.domain.ids import ImageId
from strato.domain.images import Image
from strato.process import execute
from strato.virt import qemuimg

__all__ = ["BASE_DIR_NAME", "DISK_INFO", "CacheManager", "CachedBase", "CreatedDisk",
           "DiskSettings", "Fetch", "ImageCache", "record_use"]

log = logging.getLogger(__name__)

Fetch = Callable[[ImageId, Path], Awaitable[None]]

BASE_DIR_NAME = "_base"
DISK_INFO = "disk.info"
GiB = 1024**3
MiB = 1024**2
_LOCK_SUFFIX = ".lock"
_TEMP_SUFFIX = ".tmp"
_QCOW2_MAGIC = b"QFI\xfb"
_MAX_BACKING_CHAIN = 16

# Glance disk_format -> the format qemu detects for honest data of that kind.
_QEMU_FORMAT = {"raw": "raw", "qcow2": "qcow2", "vmdk": "vmdk", "vdi": "vdi", "vhd": "vpc",
                "vhdx": "vhdx", "iso": "raw", "aki": "raw", "ari": "raw", "ami": "raw"}
# What an image without a disk_format may turn out to be.
_UNTYPED_OK = frozenset({"raw", "qcow2"})


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskSettings:
    """How this host lays out instance disks (Nova's ``images_type``, ``force_raw_images``,
    ``preallocate_images`` and ``default_ephemeral_format``)."""

    backend: Literal["qcow2", "raw"] = "qcow2"
    force_raw_images: bool = False
    preallocate: bool = False
    ephemeral_fs: str = "ext4"


@dataclass(frozen=True, slots=True)
class CachedBase:
    """A base file in ``_base``, ready to back or be copied into instance disks."""

    path: Path
    format: str
    virtual_size: int


@dataclass(frozen=True, slots=True)
class CreatedDisk:
    """An instance disk. ``base`` is the cached base it was made from: its backing file
    when ``format`` is qcow2, the copy's source for a raw disk (worth recording in
    ``disk.info`` either way, so a rebuild finds it still cached)."""

    path: Path
    format: str
    virtual_size: int
    base: Path | None


class ImageCache:
    """Builds bases once per host and instance disks on top of them."""

    def __init__(self, instances_dir: Path, fetch: Fetch,
                 settings: DiskSettings = DiskSettings()) -> None:
        self._instances_dir = instances_dir
        self._fetch = fetch
        self._settings = settings
        self._locks: defaultdict[Path, asyncio.Lock] = defaultdict(asyncio.Lock)
        self.downloads = 0

    @property
    def base_dir(self) -> Path:
        return self._instances_dir / BASE_DIR_NAME

    # -- bases ----------------------------------------------------------------------------

    async def base(self, image: Image) -> CachedBase:
        """The image's base file, downloaded (and checked) on first use on this host."""
        name = hashlib.sha1(image.id.encode(), usedforsecurity=False).hexdigest()
        return await self._ensure(self.base_dir / name, lambda tmp: self._download(image, tmp))

    async def fetch_file(self, image: Image, dest: Path) -> CachedBase:
        """Copy the image's base to ``dest`` (a kernel or ramdisk the guest boots from
        directly, so it must not be an overlay). Returns the base, for ``disk.info``."""
        base = await self.base(image)
        async with _temp_beside(dest) as tmp:
            await execute("cp", "--reflink=auto", "--", os.fspath(base.path), os.fspath(tmp))
            os.replace(tmp, dest)
        return base

    async def _ensure(self, path: Path,
                      build: Callable[[Path], Awaitable[tuple[str, int]]]) -> CachedBase:
        """Return the base at ``path``, building it first if missing. ``build`` writes a
        temp file and returns its (format, virtual size); it is renamed into place only
        once complete, so a crash or failure never leaves a half-made base behind."""
        self.base_dir.mkdir(parents=True, exist_ok=True)
        async with self._locks[path], _flocked(_lock_path(path)):
            try:
                os.utime(path)          # the sweeper ages bases by their last use
            except FileNotFoundError:
                pass
            else:
                found = await qemuimg.info(path)
                return CachedBase(path, found.format, found.virtual_size)
            async with _temp_beside(path) as tmp:
                fmt, size = await build(tmp)
                os.replace(tmp, path)
            log.info("cached base %s (%s, %d bytes)", path, fmt, size)
            return CachedBase(path, fmt, size)

    async def _download(self, image: Image, tmp: Path) -> tuple[str, int]:
        """Fetch the image to ``tmp``, check what it really is, convert when asked to."""
        self.downloads += 1
        await self._fetch(image.id, tmp)
        found = await _inspect_download(image, tmp)
        if self._settings.force_raw_images and found.format != "raw":
            async with _temp_beside(tmp) as raw:
                await qemuimg.convert(tmp, found.format, raw, "raw")
                os.replace(raw, tmp)
            return "raw", found.virtual_size
        return found.format, found.virtual_size

    # -- instance disks -------------------------------------------------------------------

    async def create_root_disk(self, image: Image, dest: Path, size_gb: int) -> CreatedDisk:
        """The instance's root disk at ``dest``, ``size_gb`` GiB (0: the image's size).

        A flavor disk smaller than the image is refused before downloading when Glance
        knows the image's virtual size, and again against the real size afterwards."""
        if size_gb < 0:
            raise Invalid(f"root disk size must not be negative, got {size_gb} GiB")
        wanted = size_gb * GiB
        if wanted and image.virtual_size and wanted < image.virtual_size:
            raise _too_small(wanted, image.virtual_size)
        base = await self.base(image)
        size = wanted or base.virtual_size
        if size < base.virtual_size:
            raise _too_small(size, base.virtual_size)
        return await self._instance_disk(base, dest, size)

    async def create_ephemeral(self, dest: Path, size_gb: int, label: str) -> CreatedDisk:
        """An ephemeral disk: an overlay on (or copy of) a cached, already formatted blank
        base, so a host formats each size once rather than once per instance. The label
        is part of the base's name, since ``mkfs`` writes it into the file system."""
        if size_gb <= 0:
            raise Invalid(f"ephemeral disk size must be positive, got {size_gb} GiB")
        fs = self._settings.ephemeral_fs
        mkfs = _mkfs_command(fs, label) if fs else None
        name = f"ephemeral_{size_gb}_{fs}_{_slug(label)}" if fs else f"ephemeral_{size_gb}_none"

        async def build(tmp: Path) -> tuple[str, int]:
            _blank_file(tmp, size_gb * GiB)
            if mkfs is not None:
                await execute(*mkfs, os.fspath(tmp))
            return "raw", size_gb * GiB

        base = await self._ensure(self.base_dir / name, build)
        return await self._instance_disk(base, dest, base.virtual_size)

    async def create_swap(self, dest: Path, size_mb: int) -> CreatedDisk:
        """A swap disk: an overlay on (or copy of) a cached ``mkswap``-ed blank base."""
        if size_mb <= 0:
            raise Invalid(f"swap size must be positive, got {size_mb} MiB")

        async def build(tmp: Path) -> tuple[str, int]:
            _blank_file(tmp, size_mb * MiB)
            await execute(qemuimg.find_tool("mkswap"), os.fspath(tmp))
            return "raw", size_mb * MiB

        base = await self._ensure(self.base_dir / f"swap_{size_mb}", build)
        return await self._instance_disk(base, dest, base.virtual_size)

    async def _instance_disk(self, base: CachedBase, dest: Path, size: int) -> CreatedDisk:
        """``dest`` as a qcow2 overlay on ``base`` or a raw copy of it, ``size`` bytes.
        Built under a temp name and renamed, so ``dest`` is whole or absent."""
        dest.parent.mkdir(parents=True, exist_ok=True)
        prealloc = self._settings.preallocate
        async with _temp_beside(dest) as tmp:
            if self._settings.backend == "qcow2":
                await qemuimg.create_overlay(base.path, base.format, tmp, size,
                                             preallocation="metadata" if prealloc else None)
                fmt = "qcow2"
            else:
                falloc = "falloc" if prealloc else None
                await qemuimg.convert(base.path, base.format, tmp, "raw", preallocation=falloc)
                await qemuimg.resize(tmp, size, fmt="raw", preallocation=falloc)
                fmt = "raw"
            os.replace(tmp, dest)
        return CreatedDisk(dest, fmt, size, base.path)


async def _inspect_download(image: Image, path: Path) -> qemuimg.DiskImageInfo:
    """What the downloaded file really is; ``AbortBuild`` when it is not what the image
    says or would make qemu read other files (every host would refuse it the same way)."""
    try:
        found = await qemuimg.info(path)
    except NotFound as exc:
        raise AbortBuild(f"image {image.id} is not a usable disk image: {exc}") from exc
    claimed = image.disk_format
    if claimed is None:
        honest = found.format in _UNTYPED_OK
    elif claimed in _QEMU_FORMAT:
        honest = found.format == _QEMU_FORMAT[claimed]
    else:
        raise AbortBuild(f"image {image.id}: disk_format {claimed!r} cannot be booted")
    if not honest:
        raise AbortBuild(f"image {image.id} claims disk_format {claimed!r} but its data is "
                         f"{found.format!r}; refusing it")
    if found.backing_file is not None:
        raise AbortBuild(f"image {image.id} names a backing file ({found.backing_file}); "
                         "refused for security")
    if found.external_files:
        raise AbortBuild(f"image {image.id} refers to other files "
                         f"({', '.join(found.external_files)}); refused for security")
    return found


def _too_small(flavor_size: int, image_size: int) -> AbortBuild:
    return AbortBuild("Flavor's disk is too small for requested image. Flavor disk is "
                      f"{flavor_size} bytes, image is {image_size} bytes.")


def _mkfs_command(fs: str, label: str) -> list[str]:
    """The ``mkfs`` call for ``fs`` on a plain file (no root needed), minus the path.
    Each family spells "force" and "label" its own way."""
    if re.fullmatch(r"ext[234]", fs):
        return [qemuimg.find_tool(f"mkfs.{fs}"), "-F", "-q", *(["-L", label] if label else [])]
    if fs == "xfs":
        return [qemuimg.find_tool("mkfs.xfs"), "-f", "-q", *(["-L", label] if label else [])]
    if fs in ("vfat", "fat"):
        return [qemuimg.find_tool("mkfs.vfat"), *(["-n", label] if label else [])]
    if fs == "ntfs":
        return [qemuimg.find_tool("mkfs.ntfs"), "-F", "-Q", *(["-L", label] if label else [])]
    raise Invalid(f"unsupported ephemeral file system {fs!r}")


def _slug(label: str) -> str:
    """``label`` as a file-name part: itself when plain, else a short digest (base names
    must stay free of dots, see :func:`_owner_base`)."""
    if re.fullmatch(r"[A-Za-z0-9_-]{1,32}", label):
        return label
    return hashlib.sha1(label.encode(), usedforsecurity=False).hexdigest()[:12]


def _blank_file(path: Path, size: int) -> None:
    """A sparse file of ``size`` bytes (no data written, so instant at any size)."""
    with open(path, "wb") as f:
        f.truncate(size)


def _lock_path(path: Path) -> Path:
    return path.with_name(path.name + _LOCK_SUFFIX)


@contextlib.asynccontextmanager
async def _temp_beside(path: Path) -> AsyncIterator[Path]:
    """A unique temp name next to ``path`` (same file system, so renaming is atomic),
    removed on the way out unless the body renamed it away."""
    tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}{_TEMP_SUFFIX}")
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.asynccontextmanager
async def _flocked(lock_path: Path) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on ``lock_path`` (other processes wait for it)."""
    fd = await _acquire(lock_path)
    try:
        yield
    finally:
        os.close(fd)            # closing the descriptor drops the lock


async def _acquire(lock_path: Path) -> int:
    """Open and lock ``lock_path``; retry when the file was unlinked (by the sweeper)
    while we waited, since a lock on a deleted file excludes nobody."""
    while True:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        await _flock_in_thread(fd)
        if _is_current(fd, lock_path):
            return fd
        os.close(fd)


async def _flock_in_thread(fd: int) -> None:
    """A blocking ``flock`` in a worker thread, so the event loop keeps running. If we are
    cancelled (or it fails) the thread cannot be stopped: close ``fd`` once it returns,
    which drops whatever lock it got."""
    task = asyncio.ensure_future(asyncio.to_thread(fcntl.flock, fd, fcntl.LOCK_EX))
    try:
        await asyncio.shield(task)
    except BaseException:
        task.add_done_callback(lambda _: os.close(fd))
        raise


def _is_current(fd: int, path: Path) -> bool:
    """Whether ``fd`` still is the file at ``path``."""
    try:
        on_disk = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (held.st_dev, held.st_ino) == (on_disk.st_dev, on_disk.st_ino)


def _try_lock(lock_path: Path) -> int | None:
    """The locked descriptor of ``lock_path``, or None when someone holds it."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def _owner_base(name: str) -> str:
    """The base a ``.lock`` or temp file in ``_base`` belongs to (base names have no dots)."""
    return name.split(".", 1)[0]


# -- use records and the sweeper ----------------------------------------------------------


def record_use(instance_dir: Path, bases: Iterable[Path]) -> None:
    """Write ``<instance_dir>/disk.info``: the bases the instance needs kept (raw copies
    and kernels have no backing file that would tell the sweeper). Atomic: written to a
    temp file, synced, renamed."""
    listed = sorted({os.path.abspath(b) for b in bases})
    tmp = instance_dir / f"{DISK_INFO}.{uuid.uuid4().hex}{_TEMP_SUFFIX}"
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(listed, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, instance_dir / DISK_INFO)
    finally:
        tmp.unlink(missing_ok=True)


class _Undecidable(Exception):
    """Some instance's use of the cache could not be read: sweeping now could delete a
    base a guest needs, so the sweep is skipped."""


class CacheManager:
    """Removes bases no instance on this host uses once they are older than ``max_age``
    (by mtime, which every use refreshes). Leftover temp and lock files of failed builds
    go the same way."""

    def __init__(self, instances_dir: Path, *, max_age: float = 86400.0,
                 clock: Callable[[], float] = time.time) -> None:
        self._instances_dir = instances_dir
        self._base_dir = instances_dir / BASE_DIR_NAME
        self._max_age = max_age
        self._clock = clock

    async def sweep(self) -> list[Path]:
        """One pass; returns what it removed."""
        if not self._base_dir.is_dir():
            return []
        try:
            used = await self._used_bases()
        except _Undecidable as exc:
            log.warning("image cache sweep skipped: %s", exc)
            return []
        removed: list[Path] = []
        for entry in sorted(self._base_dir.iterdir(), key=_sweep_order):
            if entry.is_file() and self._remove_if_unused(entry, used):
                removed.append(entry)
        return removed

    def _remove_if_unused(self, entry: Path, used: set[Path]) -> bool:
        if entry.name.endswith(_LOCK_SUFFIX):
            return self._remove_orphan_lock(entry)
        if entry.name.endswith(_TEMP_SUFFIX):
            owner = self._base_dir / _owner_base(entry.name)
            return self._remove_aged(entry, owner, "left over from a failed build", None)
        if entry.resolve() in used:
            log.debug("keeping base %s: in use", entry)
            return False
        return self._remove_aged(entry, entry, "used by no instance",
                                 _lock_path(entry))

    def _remove_aged(self, entry: Path, owner: Path, why: str, extra: Path | None) -> bool:
        """Remove ``entry`` (and ``extra``) if older than max_age, under the owner base's
        lock taken without waiting: a held lock means a build is using it right now."""
        if self._age(entry) < self._max_age:
            return False
        fd = _try_lock(_lock_path(owner))
        if fd is None:
            log.debug("keeping %s: its lock is held", entry)
            return False
        try:
            age = self._age(entry)      # again: a use may have refreshed it meanwhile
            if age < self._max_age:
                return False
            entry.unlink(missing_ok=True)
            if extra is not None:
                extra.unlink(missing_ok=True)
        finally:
            os.close(fd)
        log.info("removed %s from the image cache: %s, last used %.0f s ago (max age %.0f s)",
                 entry, why, age, self._max_age)
        return True

    def _remove_orphan_lock(self, lock: Path) -> bool:
        """A lock file whose base and temp files are gone and that nobody holds. (One
        opened but not yet locked elsewhere is safe to unlink: its holder re-checks.)"""
        owner = _owner_base(lock.name)
        if any(p.name == owner or (p.name.startswith(owner + ".") and p != lock)
               for p in self._base_dir.iterdir()):
            return False
        fd = _try_lock(lock)
        if fd is None:
            return False
        try:
            lock.unlink(missing_ok=True)
        finally:
            os.close(fd)
        log.info("removed %s from the image cache: lock of a base that no longer exists", lock)
        return True

    def _age(self, path: Path) -> float:
        try:
            return self._clock() - path.stat().st_mtime
        except FileNotFoundError:
            return 0.0

    async def _used_bases(self) -> set[Path]:
        """Every base some instance needs: backing files of its qcow2 disks (the whole
        chain) and the bases listed in its ``disk.info``. Resolved paths."""
        used: set[Path] = set()
        for instance_dir in sorted(self._instances_dir.iterdir()):
            if not instance_dir.is_dir() or instance_dir.name == BASE_DIR_NAME:
                continue
            for entry in sorted(instance_dir.iterdir()):
                if entry.name == DISK_INFO:
                    used |= _read_disk_info(entry)
                elif _is_qcow2(entry):
                    used |= await self._backing_chain(entry)
        return used

    async def _backing_chain(self, disk: Path) -> set[Path]:
        """The backing files under ``disk``, read one level at a time (not with
        ``--backing-chain``, which fails as a whole when one link is missing)."""
        chain: set[Path] = set()
        current = disk
        for _ in range(_MAX_BACKING_CHAIN):
            try:
                found = await qemuimg.info(current)
            except NotFound:
                break                   # deleted since we listed it
            except StratoError as exc:
                raise _Undecidable(f"cannot read {current}: {exc}") from exc
            if found.backing_file is None:
                break
            backing = (current.parent / found.backing_file).resolve()
            chain.add(backing)
            if backing.parent == self._base_dir.resolve() or not _is_qcow2(backing):
                break
            current = backing
        return chain


def _sweep_order(entry: Path) -> tuple[int, str]:
    """Temp files first (they lock their base's lock file), then bases (which take their
    lock file along), then whatever lock files are left."""
    if entry.name.endswith(_TEMP_SUFFIX):
        return 0, entry.name
    return (2 if entry.name.endswith(_LOCK_SUFFIX) else 1), entry.name


def _read_disk_info(path: Path) -> set[Path]:
    try:
        listed = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return set()
    except (OSError, ValueError) as exc:
        raise _Undecidable(f"cannot read {path}: {exc}") from exc
    if not isinstance(listed, list) or not all(isinstance(p, str) for p in listed):
        raise _Undecidable(f"{path} is not a list of paths")
    return {Path(p).resolve() for p in listed}


def _is_qcow2(path: Path) -> bool:
    """Cheap pre-filter (qemu-img runs only on files that start like qcow2). A file we
    may not read could be a disk on a base: that makes the sweep undecidable."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == _QCOW2_MAGIC
    except (IsADirectoryError, FileNotFoundError):
        return False
    except OSError as exc:
        raise _Undecidable(f"cannot read {path}: {exc}") from exc

