"""An embedded strato (every role in this process, in-process bus, SQLite) for tests."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from strato.bootstrap import Cloud, ComputeSpec, embedded, run_compute
from strato.client import ApiClient
from strato.config import Settings
from strato.domain.ids import HostName
from strato.domain.resources import Resources
from strato.seed import seed_defaults
from strato.virt.fake import FakeDriver, FakeDriverConfig
from tests.invariants import assert_books_balance

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
    client: ApiClient
    image_id: str
    flavors: dict[str, str]

    def driver(self, host: str) -> FakeDriver:
        driver = self.cloud.drivers[host]
        assert isinstance(driver, FakeDriver)
        return driver


async def lift_default_quotas(client: ApiClient) -> None:
    """No instance, core or RAM limit unless a project has its own."""
    resp = await client.request("PUT", "/v2.1/os-quota-class-sets/default", json={
        "quota_class_set": {"instances": -1, "cores": -1, "ram": -1}})
    assert resp.status_code == 200, resp.text


@asynccontextmanager
async def running_cloud(data_dir: Path, computes: Sequence[ComputeSpec],
                        **overrides: Any) -> AsyncIterator[Harness]:
    """Start an embedded cloud with default flavors and one active image."""
    settings = test_settings(data_dir, **overrides)
    async with embedded(settings, computes) as cloud:
        await seed_defaults(cloud.db)
        transport = httpx.ASGITransport(app=cloud.app)
        async with ApiClient("http://strato", ADMIN_TOKEN, transport=transport) as client:
            # These flows create many servers in one project: lift Nova's default quotas
            # (tests/service/test_quotas.py covers them).
            await lift_default_quotas(client)
            image_id = await client.create_image("test-image", b"x" * 4096, disk_format="raw")
            flavors = {f["name"]: f["id"] for f in await client.flavors()}
            yield Harness(cloud=cloud, client=client, image_id=image_id, flavors=flavors)
            # Reached only when the test passed: then the books must balance.
            await assert_books_balance(cloud.db, computes=cloud.computes)


async def wait_until(predicate: Any, *, timeout: float = 20.0, interval: float = 0.02) -> None:
    """Poll an async predicate until it is true."""
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(interval)


@dataclass
class ComputeRun:
    """A compute service of its own next to an embedded cloud's (as if in a process of
    its own), which a test may kill and start again; its driver (the hypervisor) stays."""

    cloud: Cloud
    spec: ComputeSpec
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start the service (again): ``run_compute`` with the same host and driver."""
        assert self.task is None or self.task.done(), "already running"
        self.stop = asyncio.Event()
        self.task = asyncio.create_task(
            run_compute(self.cloud.settings, self.cloud.bus, self.spec, self.stop),
            name=f"compute-{self.spec.host}")

    async def kill(self) -> None:
        """End it where it stands, as ``kill -9`` would: the handlers in flight are
        cancelled mid-way, nothing waits for them to finish."""
        assert self.task is not None
        while not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task}, timeout=0.05)

    async def shutdown(self) -> None:
        """A clean stop (handlers in flight finish); re-raises what the service raised."""
        if self.task is None or self.task.cancelled():
            return
        self.stop.set()
        await self.task


@asynccontextmanager
async def compute_run(cloud: Cloud, spec: ComputeSpec) -> AsyncIterator[ComputeRun]:
    """Run one more compute against ``cloud`` until the block ends; yields once it has
    reported its nodes."""
    run = ComputeRun(cloud=cloud, spec=spec)
    run.start()
    try:
        async def reported() -> bool:
            assert run.task is not None
            if run.task.done():
                run.task.result()  # raise what stopped it
            return spec.host in {u.host for u in await cloud.db.nodes.usages()}

        await wait_until(reported)
        yield run
    finally:
        await run.shutdown()
