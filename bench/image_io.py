"""Stream an image into and out of the Image API and compare with the raw disk.

    python bench/image_io.py --size-mb 1024

Starts ``strato up`` (fake driver) as an OS process with a fresh data directory, then in
this order, all on the same file system:

1. disk baseline: writes ``size`` bytes (1 MiB blocks of one random block) to a file in
   the data directory and fsyncs it; the file is deleted before the next step. It runs
   twice here and once more after step 3, and the baseline is the median of the three:
   on a VM the first write into memory the guest has not touched yet can be several
   times slower than the next one;
2. upload: ``PUT /image/v2/images/{id}/file`` of the same bytes, streamed by
   :class:`strato.image.client.ImageClient` from an async generator (nothing read from
   disk on the client side). The server hashes (MD5, SHA-512), inspects, writes and
   fsyncs them;
3. download: ``ImageClient.download_to`` into the data directory: the client streams,
   hashes (SHA-512), writes, fsyncs and renames.

Prints one JSON line:

- ``size_mb``; ``disk_mb_s`` (step 1, the median) and ``disk_runs_mb_s`` (each run, in
  order);
- ``upload_mb_s`` (step 2, from the first byte sent to the 204) and ``download_mb_s``
  (step 3, from the request to the rename);
- ``upload_ratio`` = upload_mb_s / disk_mb_s and ``download_ratio`` = download_mb_s /
  disk_mb_s: both steps end in the same write-and-fsync of the same bytes to the same
  disk as the baseline, so 1.0 would mean the API path costs nothing over the disk;
- ``rss_start_mb`` (the API process's VmRSS before the upload) and ``peak_rss_mb`` (its
  VmHWM after the run).

MB here is MiB (2**20 bytes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from strato.image.client import ImageClient  # noqa: E402
from strato.testing.cluster import Cluster, free_port  # noqa: E402

TOKEN = "bench-admin"
MIB = 1024 * 1024


@contextlib.contextmanager
def api_process(data_dir: Path) -> Iterator[Cluster]:
    """``strato up`` on a free port with ``data_dir``; stopped (by PID) on exit."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(env={
        **{k: v for k, v in os.environ.items() if not k.startswith("STRATO_")},
        "STRATO_DATA_DIR": str(data_dir), "STRATO_API__LISTEN": f"127.0.0.1:{port}",
        "STRATO_API__ADMIN_TOKEN": TOKEN, "STRATO_LOG_LEVEL": "WARNING",
        "STRATO_COMPUTE__HOST": "bench"}, data_dir=data_dir,
        api_url=f"http://127.0.0.1:{port}")
    cluster.start("up", "up")
    try:
        cluster.wait_for_api()
        yield cluster
    finally:
        cluster.stop()


def vm_mib(pid: int, field: str) -> float:
    """``VmRSS`` or ``VmHWM`` of ``pid`` in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def disk_write(path: Path, block: bytes, count: int) -> float:
    """Seconds to write ``count`` copies of ``block`` to ``path`` and fsync it."""
    started = time.monotonic()
    with path.open("wb") as handle:
        for _ in range(count):
            handle.write(block)
        handle.flush()
        os.fsync(handle.fileno())
    elapsed = time.monotonic() - started
    path.unlink()
    return elapsed


async def blocks(block: bytes, count: int) -> AsyncIterator[bytes]:
    for _ in range(count):
        yield block


async def upload_and_download(api_url: str, data_dir: Path, block: bytes,
                              count: int) -> tuple[float, float]:
    """Seconds for the streamed upload and for the verified download."""
    async with ImageClient(api_url, TOKEN) as client:
        image = await client.create(name="bench", disk_format="raw", container_format="bare")
        started = time.monotonic()
        await client.upload(image["id"], blocks(block, count), size=len(block) * count)
        uploaded = time.monotonic()
        await client.download_to(image["id"], data_dir / "downloaded.raw")
        downloaded = time.monotonic()
        await client.delete(image["id"])
    (data_dir / "downloaded.raw").unlink()
    return uploaded - started, downloaded - uploaded


async def measure(size_mb: int, data_dir: Path) -> dict[str, Any]:
    block = os.urandom(MIB)
    baseline = data_dir / "baseline.raw"
    seconds = [await asyncio.to_thread(disk_write, baseline, block, size_mb)
               for _ in range(2)]
    with api_process(data_dir / "strato") as cluster:
        pid = cluster.processes["up"].pid
        rss_start = vm_mib(pid, "VmRSS")
        upload_s, download_s = await upload_and_download(cluster.api_url, data_dir, block,
                                                         size_mb)
        peak = vm_mib(pid, "VmHWM")
    seconds.append(await asyncio.to_thread(disk_write, baseline, block, size_mb))
    runs = [size_mb / s for s in seconds]
    disk, upload, download = statistics.median(runs), size_mb / upload_s, size_mb / download_s
    return {"size_mb": size_mb, "upload_mb_s": round(upload, 1),
            "download_mb_s": round(download, 1), "disk_mb_s": round(disk, 1),
            "disk_runs_mb_s": [round(r, 1) for r in runs],
            "upload_ratio": round(upload / disk, 2), "download_ratio": round(download / disk, 2),
            "rss_start_mb": round(rss_start, 1), "peak_rss_mb": round(peak, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="image size in MiB")
    parser.add_argument("--dir", type=Path, default=None,
                        help="parent of the data directory (default: the system temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="strato-bench-", dir=args.dir) as tmp:
        figures = asyncio.run(measure(args.size_mb, Path(tmp)))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
