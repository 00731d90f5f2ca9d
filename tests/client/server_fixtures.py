"""A real strato API for client tests: ``strato up`` (fake driver) as an OS process on a
free loopback port, its data directory under pytest's tmp, stopped by PID afterwards."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from strato.testing.cluster import Cluster, free_port

TOKEN = "client-test-admin"
SERVICE_TOKEN = "client-test-service"
MIB = 1024 * 1024


@dataclass(frozen=True)
class RunningApi:
    """One ``strato up`` process: its URL, admin token and PID."""

    cluster: Cluster
    url: str
    token: str

    @property
    def pid(self) -> int:
        return self.cluster.processes["up"].pid

    @property
    def image_url(self) -> str:
        return f"{self.url}/image"


def start_api(data_dir: Path) -> Cluster:
    """Start ``strato up`` with its own data directory; wait until the API answers."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATO_")}
    env.update({"STRATO_DATA_DIR": str(data_dir), "STRATO_API__LISTEN": f"127.0.0.1:{port}",
                "STRATO_API__ADMIN_TOKEN": TOKEN, "STRATO_API__SERVICE_TOKEN": SERVICE_TOKEN,
                "STRATO_LOG_LEVEL": "WARNING",
                "STRATO_COMPUTE__HOST": "client-test", "STRATO_COMPUTE__DRIVER": "fake",
                "PYTHONUNBUFFERED": "1"})
    data_dir.mkdir(parents=True, exist_ok=True)
    cluster = Cluster(env=env, data_dir=data_dir, api_url=f"http://127.0.0.1:{port}")
    cluster.start("up", "up")
    try:
        cluster.wait_for_api()
    except BaseException:
        cluster.stop()
        raise
    return cluster


@pytest.fixture(scope="module", name="api")
def api_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """One ``strato up`` for the module's tests."""
    cluster = start_api(tmp_path_factory.mktemp("strato"))
    try:
        yield RunningApi(cluster=cluster, url=cluster.api_url, token=TOKEN)
    finally:
        cluster.stop()


def make_qcow2(path: Path, virtual_size: int = 16 * MIB) -> bytes:
    """An empty qcow2 image of ``virtual_size`` bytes, written to ``path``: made by
    ``qemu-img`` when the machine has it, else built here (see :func:`build_qcow2`)."""
    if has_qemu_img():
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path),
                        str(virtual_size)], check=True, timeout=30)
    else:
        path.write_bytes(build_qcow2(virtual_size))
    return path.read_bytes()


def build_qcow2(virtual_size: int, *, backing_file: str | None = None) -> bytes:
    """A valid, empty qcow2 version 3 image (``qemu-img check`` passes): 64 KiB clusters;
    cluster 0 the header (and the backing file's name, if any), 1 the refcount table, 2
    its one refcount block, 3 the L1 table (one entry per 512 MiB, all zero: nothing
    allocated)."""
    cluster = 65536
    l1_size = -(-virtual_size // (cluster * cluster // 8))
    backing = (backing_file or "").encode()
    header = struct.pack(">4sIQIIQIIQQIIQQQQII", b"QFI\xfb", 3, 512 if backing else 0,
                         len(backing), 16, virtual_size, 0, l1_size, 3 * cluster, cluster,
                         1, 0, 0, 0, 0, 0, 4, 104)
    header = header.ljust(512, b"\0") + backing  # extensions end at 104 (a zero type)
    refcount_table = struct.pack(">Q", 2 * cluster)
    refcount_block = struct.pack(">4H", 1, 1, 1, 1)  # 16-bit refcounts of clusters 0-3
    return b"".join(part.ljust(cluster, b"\0") for part in
                    (header, refcount_table, refcount_block, b""))


def has_qemu_img() -> bool:
    return shutil.which("qemu-img") is not None


def vm_status(pid: int) -> dict[str, int]:
    """``VmRSS`` and ``VmHWM`` of a process, in bytes (from ``/proc/<pid>/status``)."""
    fields: dict[str, int] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) * 1024
    return fields
