"""Fixtures for tests that run real guests with libvirtd and QEMU (TCG).

Every test gets its own domain prefix and instances directory; on the way out every
domain with that prefix is destroyed and undefined and the directory removed, whatever
the test did. The tiny guest is built once per session (its .debs are downloaded then).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import libvirt
import pytest

from strato.bootstrap import ComputeSpec, embedded
from strato.client.compute import ApiClient
from strato.image.client import ImageClient
from strato.seed import seed_defaults
from strato.testing.cluster import free_port
from strato.tinyguest import TinyGuest, build_tiny_guest
from tests.cloud_fixtures import ADMIN_TOKEN, test_settings

# QEMU runs as libvirt-qemu: instance directories must sit where it can reach them, so
# not under pytest's tmp_path (mode 0700).
TEST_ROOT = Path("/var/tmp/strato-tests")
URI = "qemu:///system"


def require_libvirtd() -> None:
    """Fail (not skip) when libvirtd is not there: `make setup` starts it, so a missing
    daemon is a broken machine, not a reason to pass."""
    try:
        libvirt.open(URI).close()
    except libvirt.libvirtError as exc:
        pytest.fail(f"libvirtd does not answer at {URI} ({exc}); run `make setup`")


def remove_domains(prefix: str) -> list[str]:
    """Destroy and undefine every domain whose name starts with ``prefix``."""
    conn = libvirt.open(URI)
    removed = []
    try:
        for dom in conn.listAllDomains(0):
            if not dom.name().startswith(prefix):
                continue
            with contextlib.suppress(libvirt.libvirtError):
                dom.destroy()
            with contextlib.suppress(libvirt.libvirtError):
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                                  | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)
            removed.append(dom.name())
    finally:
        conn.close()
    return removed


def domains_with(prefix: str) -> list[str]:
    conn = libvirt.open(URI)
    try:
        return [d.name() for d in conn.listAllDomains(0) if d.name().startswith(prefix)]
    finally:
        conn.close()


@dataclass(frozen=True)
class Sandbox:
    """One test's share of the host: its domain prefix, instances directory, nftables
    tables and DHCP state directory."""

    prefix: str
    instances: Path
    host: str
    firewall_table: str
    dhcp_dir: Path


def network_devices() -> set[str]:
    """strato's bridges, taps and DHCP veths on this host."""
    out = subprocess.run(["ip", "-j", "link", "show"], check=True, capture_output=True,
                         text=True).stdout
    return {d["ifname"] for d in json.loads(out or "[]")
            if d["ifname"].startswith(("brq", "tap", "dhp"))}


def namespaces() -> set[str]:
    out = subprocess.run(["ip", "-j", "netns", "list"], check=True, capture_output=True,
                         text=True).stdout
    return {n["name"] for n in json.loads(out or "[]")}


def remove_network_leftovers(devices: set[str], spaces: set[str], table: str) -> None:
    """Whatever a failed test left: devices and namespaces made since it started, and
    its nftables tables."""
    for name in sorted(devices, key=lambda n: not n.startswith("tap")):
        subprocess.run(["ip", "link", "del", "dev", name], capture_output=True, check=False)
    for space in spaces:
        subprocess.run(["ip", "netns", "del", space], capture_output=True, check=False)
    subprocess.run(["nft", "-f", "-"], input=(
        f"table inet {table}\ndelete table inet {table}\n"
        f"table bridge {table}_spoof\ndelete table bridge {table}_spoof\n"),
        capture_output=True, text=True, check=False)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    require_libvirtd()
    token = secrets.token_hex(3)
    prefix = f"t{os.getpid()}-{token}-"
    TEST_ROOT.mkdir(mode=0o755, parents=True, exist_ok=True)
    TEST_ROOT.chmod(0o755)
    instances = TEST_ROOT / prefix.rstrip("-")
    devices, spaces = network_devices(), namespaces()
    box = Sandbox(prefix=prefix, instances=instances, host=f"lv-{token}",
                  firewall_table=f"st{token}", dhcp_dir=TEST_ROOT / f"{prefix}dhcp")
    try:
        yield box
    finally:
        remove_domains(prefix)
        # dnsmasq processes this test's DHCP agent started (by their pid files).
        for pid_file in box.dhcp_dir.glob("*/pid"):
            with contextlib.suppress(ValueError, OSError):
                os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
        remove_network_leftovers(network_devices() - devices, namespaces() - spaces,
                                 box.firewall_table)
        shutil.rmtree(instances, ignore_errors=True)
        shutil.rmtree(box.dhcp_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_guest(tmp_path_factory: pytest.TempPathFactory) -> TinyGuest:
    out = tmp_path_factory.mktemp("tiny-guest")
    return asyncio.run(build_tiny_guest(out))


def libvirt_settings(data_dir: Path, box: Sandbox, *, listen: str = "127.0.0.1:8774",
                     **libvirt_overrides: Any) -> Any:
    return test_settings(data_dir, api={"admin_token": ADMIN_TOKEN, "listen": listen},
                         network={"firewall_table": box.firewall_table,
                                  "dhcp_state_dir": str(box.dhcp_dir),
                                  "resync_interval": 2.0},
                         compute={
        "report_interval": 0.5, "host": box.host, "driver": "libvirt",
        "libvirt": {"instances_path": str(box.instances), "domain_prefix": box.prefix,
                    "virt_type": "qemu", "spawn_timeout": 60.0,
                    "clean_shutdown_timeout": 20.0, "image_cache_interval": 0,
                    **libvirt_overrides}})


@dataclass
class LvCloud:
    cloud: Any
    client: ApiClient
    images: ImageClient
    box: Sandbox

    @property
    def driver(self) -> Any:
        return self.cloud.drivers[self.box.host]

    async def upload(self, name: str, path: Path, disk_format: str,
                     container_format: str = "bare", **props: str) -> str:
        record = await self.images.create(name=name, disk_format=disk_format,
                                          container_format=container_format,
                                          visibility="public", **props)
        await self.images.upload(record["id"], path)
        return str(record["id"])

    async def flavor(self, name: str, *, ram: int = 128, disk: int = 1, vcpus: int = 1) -> str:
        resp = await self.client.request("POST", "/v2.1/flavors", json={"flavor": {
            "name": name, "ram": ram, "disk": disk, "vcpus": vcpus}})
        return str(resp.json()["flavor"]["id"])

    async def console_line(self, server_id: str, marker: str, *, timeout: float = 90.0,
                           after: int = 0) -> str:
        """Wait until the guest's console shows a line containing ``marker`` (beyond
        the first ``after`` bytes); return the whole console."""
        async with asyncio.timeout(timeout):
            while True:
                text: str = await self.driver.console_output(server_id)
                if marker in text[after:]:
                    return text
                await asyncio.sleep(0.2)


@contextlib.asynccontextmanager
async def libvirt_cloud(data_dir: Path, box: Sandbox, *, serve_http: bool = False,
                        **overrides: Any) -> AsyncIterator[LvCloud]:
    """An embedded cloud with one libvirt compute. With ``serve_http`` the API listens
    on a free port and the compute downloads images over HTTP with the service token,
    as a compute on another host does; otherwise it reaches the API in-process."""
    port = free_port()
    settings = libvirt_settings(data_dir, box, listen=f"127.0.0.1:{port}", **overrides)
    async with embedded(settings, [ComputeSpec(box.host)], serve_http=serve_http) as cloud:
        if serve_http:
            await _wait_for_port(port)
        await seed_defaults(cloud.db)
        transport = httpx.ASGITransport(app=cloud.app)
        async with ApiClient("http://strato", ADMIN_TOKEN, transport=transport,
                                 timeout=120.0) as client, \
                ImageClient("http://strato", ADMIN_TOKEN, transport=transport) as images:
            yield LvCloud(cloud=cloud, client=client, images=images, box=box)


async def _wait_for_port(port: int, timeout: float = 20.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return
