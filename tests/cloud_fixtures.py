"""An embedded strato (every role in this process, in-process bus, SQLite) for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from strato.bootstrap import Cloud, ComputeSpec, embedded
from strato.client import ComputeClient
from strato.config import Settings
from strato.domain.ids import HostName
from strato.domain.resources import Resources
from strato.seed import seed_defaults
from strato.virt.fake import FakeDriver, FakeDriverConfig

ADMIN_TOKEN = "test-admin-token"


def fake_hosts(count: int, *, prefix: str = "h", memory_mb: int = 8192, vcpus: int = 8,
               disk_gb: int = 200, **config: Any) -> list[ComputeSpec]:
    """``count`` compute hosts, each with a fake driver of the given capacity."""
    return [ComputeSpec(f"{prefix}{i + 1}", FakeDriver(FakeDriverConfig(
        host=HostName(f"{prefix}{i + 1}"),
        capacity=Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb), **config)))
        for i in range(count)]


def test_settings(data_dir: Path, **overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "data_dir": data_dir,
        "api": {"admin_token": ADMIN_TOKEN},
        "compute": {"report_interval": 0.5, "max_concurrent_builds": 10},
    }
    base.update(overrides)
    return Settings(**base)


@dataclass
class Harness:
    cloud: Cloud
    client: ComputeClient
    image_id: str
    flavors: dict[str, str]

    def driver(self, host: str) -> FakeDriver:
        driver = self.cloud.drivers[host]
        assert isinstance(driver, FakeDriver)
        return driver


@asynccontextmanager
async def running_cloud(data_dir: Path, computes: Sequence[ComputeSpec],
                        **overrides: Any) -> AsyncIterator[Harness]:
    """Start an embedded cloud with default flavors and one active image."""
    settings = test_settings(data_dir, **overrides)
    async with embedded(settings, computes) as cloud:
        await seed_defaults(cloud.db)
        transport = httpx.ASGITransport(app=cloud.app)  # type: ignore[arg-type]
        async with ComputeClient("http://strato", ADMIN_TOKEN, transport=transport) as client:
            image_id = await client.create_image("test-image", b"x" * 4096, disk_format="raw")
            flavors = {f["name"]: f["id"] for f in await client.flavors()}
            yield Harness(cloud=cloud, client=client, image_id=image_id, flavors=flavors)


async def wait_until(predicate: Any, *, timeout: float = 20.0, interval: float = 0.02) -> None:
    """Poll an async predicate until it is true."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(interval)
