"""The libvirt driver's disk layer against the real ``qemu-img``, ``mkfs`` and ``mkswap``.

Everything lives under ``tmp_path``; images are small or sparse, so the file stays fast.
The fake image service copies a prepared file, counts its calls and sleeps a little so
parallel builds really overlap.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from strato import process
from strato.domain.errors import AbortBuild, Invalid, NotFound, Unavailable
from strato.domain.ids import ImageId
from strato.domain.images import Image, ImageStatus
from strato.virt import qemuimg
from strato.virt.imagecache import (
    CacheManager,
    DiskSettings,
    ImageCache,
    record_use,
)

MiB = 1024**2
GiB = 1024**3
QCOW2_ID = ImageId("img-qcow2")
RAW_ID = ImageId("img-raw")
BIG_ID = ImageId("img-big")

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")


class FakeGlance:
    """Serves prepared files by image id; counts downloads; can be told to fail."""

    def __init__(self, files: dict[ImageId, Path], delay: float = 0.05) -> None:
        self.files = files
        self.delay = delay
        self.calls = 0
        self.fail_next = False

    async def fetch(self, image_id: ImageId, dest: Path) -> None:
        self.calls += 1
        await asyncio.sleep(self.delay)
        if self.fail_next:
            self.fail_next = False
            await asyncio.to_thread(dest.write_bytes, b"partial")
            raise ConnectionError("image service went away")
        await asyncio.to_thread(shutil.copyfile, self.files[image_id], dest)


def image(image_id: ImageId, disk_format: str | None, virtual_size: int | None = None) -> Image:
    return Image(id=image_id, name=image_id, status=ImageStatus.ACTIVE,
                 disk_format=disk_format, container_format="bare", virtual_size=virtual_size)


def write_raw(path: Path, size: int) -> None:
    with open(path, "wb") as f:
        f.write(b"boot sector" + bytes(500) + b"\x55\xaa")
        f.truncate(size)


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


@contextmanager
def held_lock(path: Path) -> Iterator[None]:
    """Hold ``path``'s flock, as a build in another process would."""
    with open(path, "rb") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        yield


def read_at(path: Path, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


@pytest.fixture
async def glance(tmp_path: Path) -> FakeGlance:
    src = tmp_path / "src"
    src.mkdir()
    await qemuimg.create(src / "cirros.qcow2", "qcow2", 64 * MiB)
    await qemuimg.create(src / "big.qcow2", "qcow2", 2 * GiB)
    write_raw(src / "disk.raw", 4 * MiB)
    return FakeGlance({QCOW2_ID: src / "cirros.qcow2", RAW_ID: src / "disk.raw",
                       BIG_ID: src / "big.qcow2"})


@pytest.fixture
def instances(tmp_path: Path) -> Path:
    path = tmp_path / "instances"
    path.mkdir()
    return path


@pytest.fixture
def cache(instances: Path, glance: FakeGlance) -> ImageCache:
    return ImageCache(instances, glance.fetch)


@pytest.fixture
def later() -> Iterator[float]:
    """A clock two days ahead, so everything on disk looks old to the sweeper."""
    yield time.time() + 2 * 86400


# -- qemuimg ----------------------------------------------------------------------------


async def test_qemuimg_handles_odd_paths_and_never_shrinks(tmp_path: Path) -> None:
    odd = tmp_path / "we,ird: dir"
    odd.mkdir()
    base, overlay = odd / "ba,se:1.qcow2", odd / "over lay,x:y.qcow2"
    await qemuimg.create(base, "qcow2", 32 * MiB)
    await qemuimg.create_overlay(base, "qcow2", overlay, 64 * MiB)

    found = await qemuimg.info(overlay)
    assert (found.format, found.virtual_size) == ("qcow2", 64 * MiB)
    assert (found.backing_file, found.backing_format) == (str(base), "qcow2")
    assert found.cluster_size == 65536 and found.external_files == ()

    await qemuimg.resize(overlay, 128 * MiB, fmt="qcow2")
    await qemuimg.resize(overlay, 16 * MiB, fmt="qcow2")      # a shrink is ignored
    assert (await qemuimg.info(overlay)).virtual_size == 128 * MiB

    flat = odd / "fl,at.raw"
    await qemuimg.convert(overlay, "qcow2", flat, "raw")
    flat_info = await qemuimg.info(flat, fmt="raw")
    assert (flat_info.format, flat_info.backing_file) == ("raw", None)


async def test_qemuimg_errors(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        await qemuimg.info(tmp_path / "missing.qcow2")
    with pytest.raises(NotFound):
        await qemuimg.create_overlay(tmp_path / "nope", "raw", tmp_path / "o.qcow2", MiB)
    with pytest.raises(Unavailable, match="qemu-img create"):
        await qemuimg.create(tmp_path / "x.img", "no-such-format", MiB)


async def test_preallocated_overlay(tmp_path: Path) -> None:
    base, overlay = tmp_path / "base.qcow2", tmp_path / "o.qcow2"
    await qemuimg.create(base, "qcow2", 16 * MiB)
    await qemuimg.create_overlay(base, "qcow2", overlay, 32 * MiB, preallocation="metadata")
    assert (await qemuimg.info(overlay)).backing_file == str(base)


# -- bases and root disks -----------------------------------------------------------------


async def test_parallel_builds_download_once(cache: ImageCache, glance: FakeGlance,
                                             instances: Path) -> None:
    img = image(QCOW2_ID, "qcow2", 64 * MiB)
    disks = await asyncio.gather(*(
        cache.create_root_disk(img, instances / f"vm{i}" / "disk", 1) for i in range(10)))

    assert glance.calls == 1 and cache.downloads == 1
    base = (await cache.base(img)).path
    assert base.parent == cache.base_dir and len(base.name) == 40
    for i, disk in enumerate(disks):
        assert disk.path == instances / f"vm{i}" / "disk"
        assert (disk.format, disk.virtual_size, disk.base) == ("qcow2", GiB, base)
        found = await qemuimg.info(disk.path)
        assert (found.format, found.virtual_size) == ("qcow2", GiB)
        assert (found.backing_file, found.backing_format) == (str(base), "qcow2")
    assert glance.calls == 1


@pytest.mark.parametrize(("force_raw", "expected"), [(False, "qcow2"), (True, "raw")])
async def test_qcow2_base_converted_only_when_forced(
        instances: Path, glance: FakeGlance, force_raw: bool, expected: str) -> None:
    cache = ImageCache(instances, glance.fetch, DiskSettings(force_raw_images=force_raw))
    disk = await cache.create_root_disk(image(QCOW2_ID, "qcow2"), instances / "vm" / "disk", 1)
    base = await cache.base(image(QCOW2_ID, "qcow2"))
    assert (base.format, base.virtual_size) == (expected, 64 * MiB)
    assert (await qemuimg.info(base.path)).format == expected
    assert (await qemuimg.info(disk.path)).backing_format == expected
    assert not [n for n in listing(cache.base_dir) if n.endswith(".tmp")]


async def test_raw_backend_makes_full_copies(instances: Path, glance: FakeGlance) -> None:
    cache = ImageCache(instances, glance.fetch, DiskSettings(backend="raw", preallocate=True))
    disk = await cache.create_root_disk(image(RAW_ID, "raw"), instances / "vm" / "disk", 1)
    found = await qemuimg.info(disk.path, fmt="raw")
    assert (disk.format, disk.virtual_size) == ("raw", GiB)
    assert (found.format, found.virtual_size, found.backing_file) == ("raw", GiB, None)
    assert read_at(disk.path, 0, 11) == b"boot sector"


async def test_zero_size_means_image_size(cache: ImageCache, instances: Path) -> None:
    disk = await cache.create_root_disk(image(RAW_ID, "raw"), instances / "vm" / "disk", 0)
    assert disk.virtual_size == 4 * MiB
    assert (await qemuimg.info(disk.path)).virtual_size == 4 * MiB


@pytest.mark.parametrize("glance_knows_size", [True, False])
async def test_flavor_disk_too_small(cache: ImageCache, instances: Path,
                                     glance_knows_size: bool) -> None:
    img = image(BIG_ID, "qcow2", 2 * GiB if glance_knows_size else None)
    dest = instances / "vm" / "disk"
    with pytest.raises(AbortBuild, match="Flavor's disk is too small"):
        await cache.create_root_disk(img, dest, 1)
    assert not dest.exists()
    assert cache.downloads == (0 if glance_knows_size else 1)
    if dest.parent.exists():
        assert listing(dest.parent) == []


@pytest.mark.parametrize(("image_id", "claimed"), [(RAW_ID, "qcow2"), (QCOW2_ID, "raw"),
                                                    (QCOW2_ID, "vmdk"), (QCOW2_ID, "bogus")])
async def test_format_lie_refused(cache: ImageCache, image_id: ImageId, claimed: str) -> None:
    with pytest.raises(AbortBuild):
        await cache.base(image(image_id, claimed))
    assert [n for n in listing(cache.base_dir) if not n.endswith(".lock")] == []


async def test_untyped_image_accepted_when_raw_or_qcow2(cache: ImageCache) -> None:
    assert (await cache.base(image(QCOW2_ID, None))).format == "qcow2"


async def test_backing_file_and_data_file_refused(tmp_path: Path, instances: Path) -> None:
    secret = tmp_path / "host-secret"
    write_raw(secret, MiB)
    backed, data_file = tmp_path / "backed.qcow2", tmp_path / "datafile.qcow2"
    await qemuimg.create_overlay(secret, "raw", backed, MiB)
    await process.execute("qemu-img", "create", "-f", "qcow2", "-o",
                          f"data_file={secret},data_file_raw=on", str(data_file), str(MiB))
    glance = FakeGlance({ImageId("a"): backed, ImageId("b"): data_file})
    cache = ImageCache(instances, glance.fetch)
    with pytest.raises(AbortBuild, match="backing file"):
        await cache.base(image(ImageId("a"), "qcow2"))
    with pytest.raises(AbortBuild, match="other files"):
        await cache.base(image(ImageId("b"), "qcow2"))
    assert [n for n in listing(cache.base_dir) if not n.endswith(".lock")] == []


async def test_failed_fetch_leaves_nothing_and_is_retried(cache: ImageCache,
                                                          glance: FakeGlance) -> None:
    glance.fail_next = True
    with pytest.raises(ConnectionError):
        await cache.base(image(QCOW2_ID, "qcow2"))
    assert [n for n in listing(cache.base_dir) if not n.endswith(".lock")] == []

    base = await cache.base(image(QCOW2_ID, "qcow2"))
    assert base.path.exists() and glance.calls == 2 and cache.downloads == 2


async def test_two_processes_download_once(instances: Path, glance: FakeGlance) -> None:
    """Two caches share no asyncio lock, only the flock, like two compute processes."""
    glance.delay = 0.2
    one, two = ImageCache(instances, glance.fetch), ImageCache(instances, glance.fetch)
    img = image(QCOW2_ID, "qcow2")
    bases = await asyncio.gather(*(c.base(img) for c in (one, two, one, two, two)))
    assert glance.calls == 1 and one.downloads + two.downloads == 1
    assert len({b.path for b in bases}) == 1


async def test_cancelled_waiter_does_not_keep_the_lock(instances: Path,
                                                       glance: FakeGlance) -> None:
    glance.delay = 0.3
    one, two = ImageCache(instances, glance.fetch), ImageCache(instances, glance.fetch)
    img = image(QCOW2_ID, "qcow2")
    first = asyncio.create_task(one.base(img))
    await asyncio.sleep(0.1)
    waiter = asyncio.create_task(two.base(img))     # blocks on the flock in a thread
    await asyncio.sleep(0.05)
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await first
    async with asyncio.timeout(5):
        await ImageCache(instances, glance.fetch).base(img)
    assert glance.calls == 1


async def test_fetch_file_copies_the_base(cache: ImageCache, instances: Path) -> None:
    dest = instances / "vm" / "kernel"
    dest.parent.mkdir()
    base = await cache.fetch_file(image(RAW_ID, "aki"), dest)
    assert dest.read_bytes() == base.path.read_bytes()
    assert (await qemuimg.info(dest)).backing_file is None


# -- ephemeral and swap ---------------------------------------------------------------------


async def test_ephemeral_is_formatted_and_cached(cache: ImageCache, instances: Path) -> None:
    first = await cache.create_ephemeral(instances / "vm1" / "disk.eph0", 1, "ephemeral0")
    second = await cache.create_ephemeral(instances / "vm2" / "disk.eph0", 1, "ephemeral0")
    assert first.base == second.base and first.base is not None
    assert first.base.name.startswith("ephemeral_1_ext4")
    assert (first.format, first.virtual_size) == ("qcow2", GiB)
    assert (await qemuimg.info(first.path)).backing_file == str(first.base)
    assert read_at(first.base, 1080, 2) == b"\x53\xef"          # ext2/3/4 superblock magic
    assert read_at(first.base, 1024 + 120, 10) == b"ephemeral0"  # s_volume_name


async def test_unformatted_raw_ephemeral(instances: Path, glance: FakeGlance) -> None:
    cache = ImageCache(instances, glance.fetch, DiskSettings(backend="raw", ephemeral_fs=""))
    disk = await cache.create_ephemeral(instances / "vm" / "disk.eph0", 1, "ephemeral0")
    assert (disk.format, (await qemuimg.info(disk.path, fmt="raw")).backing_file) == ("raw", None)
    assert read_at(disk.path, 1080, 2) == b"\0\0"


async def test_swap_has_a_signature(cache: ImageCache, instances: Path) -> None:
    disk = await cache.create_swap(instances / "vm" / "disk.swap", 16)
    assert disk.base is not None and disk.base.name == "swap_16"
    assert disk.virtual_size == 16 * MiB
    page = os.sysconf("SC_PAGE_SIZE")
    assert read_at(disk.base, page - 10, 10) == b"SWAPSPACE2"


async def test_bad_sizes_are_invalid(cache: ImageCache, instances: Path) -> None:
    with pytest.raises(Invalid):
        await cache.create_swap(instances / "vm" / "swap", 0)
    with pytest.raises(Invalid):
        await cache.create_ephemeral(instances / "vm" / "eph", 0, "ephemeral0")


# -- the sweeper ----------------------------------------------------------------------------


async def test_sweep_removes_only_old_unused_bases(cache: ImageCache, instances: Path,
                                                  later: float) -> None:
    overlaid = await cache.create_root_disk(image(QCOW2_ID, "qcow2"), instances / "a" / "disk", 1)
    recorded = await cache.base(image(RAW_ID, "raw"))
    (instances / "b").mkdir()
    record_use(instances / "b", [recorded.path])
    unused = await cache.create_swap(instances / "c" / "disk.swap", 8)
    shutil.rmtree(instances / "c")
    assert unused.base is not None and overlaid.base is not None

    assert await CacheManager(instances).sweep() == []     # young: kept
    removed = await CacheManager(instances, clock=lambda: later).sweep()

    assert removed == [unused.base]
    assert listing(cache.base_dir) == sorted(
        [overlaid.base.name, f"{overlaid.base.name}.lock", recorded.path.name,
         f"{recorded.path.name}.lock"])
    assert json.loads((instances / "b" / "disk.info").read_text()) == [str(recorded.path)]


async def test_sweep_skips_a_locked_base_and_cleans_leftovers(
        cache: ImageCache, instances: Path, later: float) -> None:
    base = await cache.base(image(RAW_ID, "raw"))
    stale_tmp = cache.base_dir / f"{base.path.name}.0123.tmp"
    stale_tmp.write_bytes(b"half a download")
    orphan_lock = cache.base_dir / "deadbeef.lock"
    orphan_lock.touch()
    with held_lock(base.path.with_name(f"{base.path.name}.lock")):
        removed = await CacheManager(instances, clock=lambda: later).sweep()
    assert removed == [orphan_lock]
    assert base.path.exists() and stale_tmp.exists()

    removed = await CacheManager(instances, clock=lambda: later).sweep()
    assert removed == [stale_tmp, base.path]
    assert listing(cache.base_dir) == []


async def test_sweep_skipped_when_use_unknown(cache: ImageCache, instances: Path,
                                              later: float) -> None:
    await cache.base(image(RAW_ID, "raw"))
    (instances / "vm").mkdir()
    (instances / "vm" / "disk.info").write_text("{not json")
    assert await CacheManager(instances, clock=lambda: later).sweep() == []


async def test_every_use_refreshes_a_base(cache: ImageCache, instances: Path) -> None:
    img = image(RAW_ID, "raw")
    base = await cache.base(img)
    long_ago = time.time() - 3 * 86400
    os.utime(base.path, (long_ago, long_ago))
    await cache.create_root_disk(img, instances / "vm" / "disk", 1)     # a use
    shutil.rmtree(instances / "vm")
    assert await CacheManager(instances).sweep() == []
    assert await CacheManager(instances, max_age=0.0).sweep() == [base.path]
