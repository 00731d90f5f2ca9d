"""Fixtures for tests that run on every database backend.

``db_url`` is parametrized over ``sqlite`` (a fresh file under ``tmp_path`` per test) and
``postgres`` (marked ``postgres``: one fresh ``strato_test_<random>`` database per test
module, migrated once, emptied before each test, dropped at the end). A PostgreSQL that is
not running is started, never skipped. ``db`` is a :class:`SqlDatabase` on that URL
whose clock is the test's :class:`FakeClock`.

Import the fixtures by name into a test module:
``from tests.db_fixtures import backend_url, clock, db, db_url, pg_url  # noqa: F401``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import pytest_asyncio

from strato.db.migrate import upgrade
from strato.db.sql import SqlDatabase
from strato.db.tables import metadata
from strato.domain.ids import (
    FlavorId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    UserId,
    new_uuid,
)
from strato.domain.instances import Instance
from strato.domain.resources import Flavor, NodeCapacity, Resources
from strato.testing.infra import temporary_database

__all__ = ["T0", "FakeClock", "backend_url", "clock", "db", "db_url", "make_capacity",
           "make_flavor", "make_instance", "open_db", "pg_url"]

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class FakeClock:
    """A clock that stands still until the test moves it (``advance``)."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> datetime:
        """Move the clock forward; returns the new time."""
        self.now += timedelta(seconds=seconds)
        return self.now


def make_flavor(**overrides: object) -> Flavor:
    """A small flavor (1 vCPU, 512 MB, 1 GB) with any field overridden."""
    flavor = Flavor(id=FlavorId("1"), name="m1.tiny", vcpus=1, memory_mb=512, root_gb=1)
    return replace(flavor, **overrides)  # type: ignore[arg-type]


def make_instance(**overrides: object) -> Instance:
    """A building instance of project ``p1`` with a fresh id, any field overridden."""
    instance = Instance(id=InstanceId(new_uuid()), display_name="vm", project_id=ProjectId("p1"),
                        user_id=UserId("u1"), image_ref=ImageId(new_uuid()),
                        flavor=make_flavor(extra_specs={"hw:cpu_policy": "shared"}))
    return replace(instance, **overrides)  # type: ignore[arg-type]


def make_capacity(host: str = "h1", node: str = "n1", *, vcpus: int = 8,
                  memory_mb: int = 8192, disk_gb: int = 100) -> NodeCapacity:
    """A node with the given totals, no overcommit and nothing reserved."""
    return NodeCapacity(host=HostName(host), node=NodeName(node),
                        total=Resources(vcpus=vcpus, memory_mb=memory_mb, disk_gb=disk_gb),
                        cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
                        disk_allocation_ratio=1.0)


async def open_db(url: str, clock: FakeClock) -> SqlDatabase:
    """Another :class:`SqlDatabase` (its own engine and connection pool) on ``url``."""
    return await SqlDatabase.open(url, clock=clock, service_down_time=60.0)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def pg_url() -> AsyncIterator[str]:
    """A migrated PostgreSQL database for this test module; dropped afterwards (its
    connections terminated first). Starts the local cluster if it is not running."""
    async with temporary_database("strato_test") as url:
        await upgrade(url)
        yield url


async def _empty_pg(url: str) -> None:
    tables = ", ".join(table.name for table in metadata.sorted_tables)
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        await conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The URL of a database of each backend (SQLite: not created yet)."""
    # Sync on purpose: pg_url runs on the module's event loop, which cannot be started
    # from inside this test's running loop.
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'db' / 'strato.db'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
async def db_url(backend_url: str) -> str:
    """The URL of a migrated, empty database of each backend."""
    if backend_url.startswith("sqlite"):
        await upgrade(backend_url)
    else:
        await _empty_pg(backend_url)
    return backend_url


@pytest.fixture
def clock() -> FakeClock:
    """The test's clock, starting at :data:`T0`."""
    return FakeClock()


@pytest.fixture
async def db(db_url: str, clock: FakeClock) -> AsyncIterator[SqlDatabase]:
    """A :class:`SqlDatabase` on ``db_url`` with the test's clock; closed afterwards."""
    database = await open_db(db_url, clock)
    yield database
    await database.close()
