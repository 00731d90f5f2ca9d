"""Boot real guests through strato and, in the same run, directly with libvirt.

    python bench/boot.py --guests 1
    python bench/boot.py --guests 4

strato: an embedded cloud (libvirt driver; KVM if it works here, else TCG) boots N tiny
guests, each with a config drive, POSTed at once. raw: the same domains (the XML strato
wrote, the same base image under fresh qcow2 overlays, the same config drives) defined
and started directly with libvirt, N at once, after strato's guests are gone.

Prints one JSON line: guests, virt_type, active_s_p50 (POST to ACTIVE), console_s_p50
(POST to the guest's ``strato-guest:`` console line), raw_active_s_p50 (define to
running), raw_console_s_p50 (define to the console line), ratio_active, ratio_console,
overlay_ms_1g and overlay_ms_10g (a root disk as a qcow2 overlay on a cached base,
resized to 1 and 10 GiB; median of 5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import secrets
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import httpx  # noqa: E402
import libvirt  # noqa: E402

from strato.bootstrap import ComputeSpec, embedded  # noqa: E402
from strato.client import ApiClient  # noqa: E402
from strato.config import Settings  # noqa: E402
from strato.image.client import ImageClient, image_from_record  # noqa: E402
from strato.seed import seed_defaults  # noqa: E402
from strato.tinyguest import build_tiny_guest  # noqa: E402
from strato.virt import qemuimg  # noqa: E402

TOKEN = "bench-admin"
MARKER = "strato-guest: uuid="
ROOT = Path("/var/tmp/strato-bench")   # QEMU (libvirt-qemu) must reach the disks


async def wait_console(path: Path, deadline: float) -> float:
    """Seconds (monotonic clock) at which ``path`` first shows the marker."""
    while time.monotonic() < deadline:
        try:
            if MARKER in await asyncio.to_thread(path.read_text, errors="replace"):
                return time.monotonic()
        except FileNotFoundError:
            pass
        await asyncio.sleep(0.05)
    raise TimeoutError(f"no console line in {path}")


async def boot_with_strato(client: ApiClient, instances: Path, image: str, flavor: str,
                           guests: int) -> tuple[list[float], list[float], list[str]]:
    async def one(i: int) -> tuple[float, float, str]:
        start = time.monotonic()
        server_id = await client.create_server(f"bench-{i}", image=image, flavor=flavor,
                                               config_drive=True)
        server = await client.wait_for_status(server_id, {"ACTIVE", "ERROR"},
                                              timeout=300, interval=0.05)
        active = time.monotonic()
        if server.status != "ACTIVE":
            raise RuntimeError(f"{server_id} is {server.status}")
        console = await wait_console(instances / server_id / "console.log", start + 300)
        return active - start, console - start, server_id

    results = await asyncio.gather(*(one(i) for i in range(guests)))
    return [r[0] for r in results], [r[1] for r in results], [r[2] for r in results]


def raw_copy(instance_dir: Path, raw_dir: Path, prefix: str) -> str:
    """The XML of strato's domain, renamed and pointed at fresh copies of its disks."""
    xml = (instance_dir / "libvirt.xml").read_text()
    old_uuid = instance_dir.name
    new_uuid = str(uuid.uuid4())
    raw_dir.mkdir(mode=0o755)
    xml = xml.replace(old_uuid, new_uuid).replace(str(instance_dir.parent / new_uuid),
                                                   str(raw_dir))
    xml = re.sub(r"<name>[^<]*</name>", f"<name>{prefix}{new_uuid}</name>", xml)
    shutil.copy(instance_dir / "disk.config", raw_dir / "disk.config")
    return xml


async def boot_raw(xmls: list[tuple[str, Path]], base: Path) -> tuple[list[float], list[float]]:
    conn = libvirt.open("qemu:///system")

    async def one(xml: str, directory: Path) -> tuple[float, float]:
        await qemuimg.create_overlay(base, "qcow2", directory / "disk", 1024**3)
        start = time.monotonic()
        dom = await asyncio.to_thread(conn.defineXML, xml)
        await asyncio.to_thread(dom.create)
        running = time.monotonic()
        console = await wait_console(directory / "console.log", start + 300)
        return running - start, console - start

    try:
        results = await asyncio.gather(*(one(x, d) for x, d in xmls))
    finally:
        conn.close()
    return [r[0] for r in results], [r[1] for r in results]


def remove_domains(prefix: str) -> None:
    conn = libvirt.open("qemu:///system")
    try:
        for dom in conn.listAllDomains(0):
            if dom.name().startswith(prefix):
                if dom.isActive():
                    dom.destroy()
                dom.undefine()
    finally:
        conn.close()


async def overlay_ms(cache: Any, image: Any, work: Path, size_gb: int) -> float:
    times = []
    for i in range(5):
        dest = work / f"overlay-{size_gb}-{i}"
        start = time.perf_counter()
        await cache.create_root_disk(image, dest, size_gb)
        times.append((time.perf_counter() - start) * 1000)
        dest.unlink()
    return statistics.median(times)


async def run(guests: int, work: Path, tag: str) -> dict[str, Any]:
    prefix = f"bench-{tag}-"
    with tempfile.TemporaryDirectory(prefix="strato-bench-") as tmp:
        tiny = await build_tiny_guest(ROOT / "tiny")
        settings = Settings(data_dir=Path(tmp), log_level="WARNING",
                            api={"admin_token": TOKEN},
                            compute={"host": f"bench-{tag}", "driver": "libvirt",
                                     "report_interval": 1.0,
                                     "libvirt": {"instances_path": str(work / "instances"),
                                                 "domain_prefix": prefix,
                                                 "image_cache_interval": 0}})
        try:
            async with embedded(settings, [ComputeSpec(settings.compute.host)]) as cloud:
                await seed_defaults(cloud.db)
                driver: Any = cloud.drivers[settings.compute.host]
                transport = httpx.ASGITransport(app=cloud.app)
                async with ApiClient("http://strato", TOKEN, transport=transport,
                                         timeout=300) as client, \
                        ImageClient("http://strato", TOKEN, transport=transport) as images:
                    record = await images.create(name="tiny", disk_format="qcow2",
                                                 container_format="bare")
                    await images.upload(record["id"], tiny.disk)
                    flavor = next(f["id"] for f in await client.flavors()
                                  if f["name"] == "m1.tiny")
                    # Warm the cache: the figures are boots, not the first download.
                    warm = await client.create_server("warm", image=record["id"],
                                                      flavor=flavor)
                    await client.wait_for_status(warm, {"ACTIVE"}, timeout=300)
                    await client.delete_server(warm)
                    await client.wait_for_status(warm, {"DELETED"}, timeout=60)

                    active, console, ids = await boot_with_strato(
                        client, work / "instances", record["id"], flavor, guests)
                    raw_prefix = f"{prefix}raw-"
                    xmls = [(raw_copy(work / "instances" / i, work / f"raw-{n}", raw_prefix),
                             work / f"raw-{n}") for n, i in enumerate(ids)]
                    for server_id in ids:
                        await client.delete_server(server_id)
                    for server_id in ids:
                        await client.wait_for_status(server_id, {"DELETED"}, timeout=60)
                    base = (await driver.cache.base(image_from_record(
                        await images.get(record["id"])))).path
                    raw_active, raw_console = await boot_raw(xmls, base)
                    remove_domains(raw_prefix)
                    image = image_from_record(await images.get(record["id"]))
                    ms_1g = await overlay_ms(driver.cache, image, work, 1)
                    ms_10g = await overlay_ms(driver.cache, image, work, 10)
                    virt_type = driver.caps.virt_type
        finally:
            remove_domains(prefix)
            shutil.rmtree(work, ignore_errors=True)
    p50 = statistics.median
    return {"guests": guests, "virt_type": virt_type,
            "active_s_p50": round(p50(active), 2), "console_s_p50": round(p50(console), 2),
            "raw_active_s_p50": round(p50(raw_active), 2),
            "raw_console_s_p50": round(p50(raw_console), 2),
            "ratio_active": round(p50(active) / p50(raw_active), 2),
            "ratio_console": round(p50(console) / p50(raw_console), 2),
            "overlay_ms_1g": round(ms_1g, 1), "overlay_ms_10g": round(ms_10g, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--guests", type=int, default=1)
    args = parser.parse_args()
    os.environ.pop("STRATO_CONFIG", None)
    ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    ROOT.chmod(0o755)
    tag = secrets.token_hex(3)
    work = ROOT / tag
    work.mkdir(mode=0o755)
    print(json.dumps(asyncio.run(run(args.guests, work, tag))), flush=True)


if __name__ == "__main__":
    main()
