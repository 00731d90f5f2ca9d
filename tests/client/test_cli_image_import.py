"""``strato image import`` as a user runs it: a separate process, against a real API."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from strato.image.client import ImageClient
from strato.testing.cluster import free_port
from tests.client.server_fixtures import (
    MIB,
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
    build_qcow2,
    make_qcow2,
)


def strato_image(api: RunningApi, *args: str) -> subprocess.CompletedProcess[str]:
    """Run ``strato image ...`` with the API's settings (token and listen address)."""
    return subprocess.run([sys.executable, "-m", "strato", "image", *args],
                          env=api.cluster.env, capture_output=True, text=True, timeout=120)


def printed(output: str) -> dict[str, str]:
    return dict(line.split(None, 1) for line in output.splitlines() if " " in line)


async def shown(api: RunningApi, image_id: str) -> dict[str, object]:
    async with ImageClient(api.url, api.token) as client:
        return await client.get(image_id)


async def test_import_detects_qcow2_and_sets_fields(api: RunningApi, tmp_path: Path) -> None:
    path = tmp_path / "tiny.qcow2"
    data = make_qcow2(path)
    done = strato_image(api, "import", str(path), "--name", "cli-qcow2", "--public",
                        "--min-disk", "1", "--min-ram", "64", "--property", "os_distro=cirros",
                        "--property", "hw_disk_bus=virtio")
    assert done.returncode == 0, done.stderr
    out = printed(done.stdout)
    assert (out["status"], out["disk_format"], out["size"]) == ("active", "qcow2",
                                                                str(len(data)))
    image = await shown(api, out["id"])
    assert (image["visibility"], image["min_disk"], image["min_ram"]) == ("public", 1, 64)
    assert (image["os_distro"], image["hw_disk_bus"]) == ("cirros", "virtio")
    assert (image["container_format"], image["checksum"]) == ("bare", out["checksum"])


async def test_import_raw_with_explicit_url(api: RunningApi, tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    path.write_bytes(b"\1" * (3 * MIB))
    done = strato_image(api, "import", str(path), "--name", "cli-raw", "--url", api.url)
    assert done.returncode == 0, done.stderr
    out = printed(done.stdout)
    assert (out["status"], out["disk_format"], out["size"]) == ("active", "raw",
                                                                str(3 * MIB))


async def test_rejected_upload_exits_2_and_leaves_no_image(api: RunningApi,
                                                           tmp_path: Path) -> None:
    path = tmp_path / "liar.img"
    path.write_bytes(build_qcow2(16 * MIB))
    done = strato_image(api, "import", str(path), "--name", "cli-liar", "--disk-format", "raw")
    assert done.returncode == 2
    assert done.stderr.startswith("strato: error: 400") and done.stderr.count("\n") == 1
    async with ImageClient(api.url, api.token) as client:
        assert await client.list(name="cli-liar") == []


def test_backing_file_is_refused_before_upload(api: RunningApi, tmp_path: Path) -> None:
    path = tmp_path / "overlay.qcow2"
    path.write_bytes(build_qcow2(16 * MIB, backing_file="base.qcow2"))
    done = strato_image(api, "import", str(path), "--name", "cli-overlay")
    assert done.returncode == 2
    assert "backing file" in done.stderr and done.stderr.count("\n") == 1


def test_unreachable_api_exits_2(api: RunningApi, tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    done = strato_image(api, "import", str(path), "--name", "cli-nowhere", "--url",
                        f"http://127.0.0.1:{free_port()}")
    assert done.returncode == 2
    assert done.stderr.startswith("strato: error: image API at")


def test_bad_property_exits_2(api: RunningApi, tmp_path: Path) -> None:
    path = tmp_path / "disk.img"
    path.write_bytes(b"\0" * 4096)
    done = strato_image(api, "import", str(path), "--name", "cli-prop", "--property",
                        "no-equals-sign")
    assert done.returncode == 2
    assert "KEY=VALUE" in done.stderr
