"""Background loops outlive database faults: the conductor's and the scheduler's service
heartbeat and the conductor's build-deadline check each log a failed tick (a database
that is down, a lost connection, even a bug) and carry on, so later ticks succeed once the
database answers again. Cancelling a loop still stops it.

The database is the real SQLite adapter, whose repositories are wrapped to fail their
first calls (:class:`FlakyServices`, :class:`FlakyInstances` implement the real ports).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from strato.bootstrap import run_conductor, run_scheduler
from strato.conductor.deadlines import DeadlineDeps, watch_builds
from strato.config import Settings
from strato.db.migrate import upgrade
from strato.db.ports import InstanceQuery, InstanceRepo, ServiceRecord, ServiceRepo
from strato.db.sql import SqlDatabase
from strato.domain.errors import Unavailable
from strato.domain.ids import HostName, RequestId
from strato.domain.instances import Instance, VmState
from strato.rpc.local import LocalBus
from tests.db_fixtures import make_instance

# One of each kind of failure a tick can meet.
FAILURES: tuple[Callable[[], Exception], ...] = (
    lambda: Unavailable("The database is unavailable; try again later."),
    lambda: ConnectionResetError(104, "Connection reset by peer"),
    lambda: RuntimeError("a bug in one tick"),
)


class FlakyServices:
    """The real :class:`ServiceRepo`, whose first heartbeats raise ``failures`` in turn;
    ``beaten`` is set after ``wanted`` heartbeats got through."""

    def __init__(self, real: ServiceRepo, failures: Sequence[Exception], *,
                 wanted: int = 2) -> None:
        self.real = real
        self.failures = list(failures)
        self.wanted = wanted
        self.attempts = 0
        self.beats = 0
        self.beaten = asyncio.Event()

    async def heartbeat(self, *, binary: str, host: HostName, topic: str) -> None:
        self.attempts += 1
        if self.failures:
            raise self.failures.pop(0)
        await self.real.heartbeat(binary=binary, host=host, topic=topic)
        self.beats += 1
        if self.beats >= self.wanted:
            self.beaten.set()

    async def list(self, *, binary: str | None = None) -> list[ServiceRecord]:
        return await self.real.list(binary=binary)

    async def set_disabled(self, service_id: int, disabled: bool,
                           reason: str | None = None) -> ServiceRecord:
        return await self.real.set_disabled(service_id, disabled, reason)


class FlakyInstances:
    """The real :class:`InstanceRepo`, whose first ``list`` calls raise ``failures`` in
    turn (every other method is the real one's); ``listed`` is set after a ``list`` got
    through."""

    def __init__(self, real: InstanceRepo, failures: Sequence[Exception]) -> None:
        self.real = real
        self.failures = list(failures)
        self.listed = asyncio.Event()

    async def list(self, query: InstanceQuery) -> list[Instance]:
        if self.failures:
            raise self.failures.pop(0)
        found = await self.real.list(query)
        self.listed.set()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqlDatabase]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'strato.db'}"
    await upgrade(url)
    database = await SqlDatabase.open(url)
    yield database
    await database.close()


def _settings(tmp_path: Path) -> Settings:
    # Heartbeats every 10 ms; no build deadline (its own test is below).
    return Settings(data_dir=tmp_path, compute={"report_interval": 0.01},
                    scheduler={"build_timeout": 0})


async def _until(event: asyncio.Event, task: asyncio.Task[None]) -> None:
    """Wait until ``event`` is set; fail at once if the loop's ``task`` ends first."""
    waiter = asyncio.ensure_future(event.wait())
    async with asyncio.timeout(20):
        await asyncio.wait({waiter, task}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    assert not task.done(), "the loop died"
    assert event.is_set()


Runner = Callable[[Settings, SqlDatabase, LocalBus, asyncio.Event], Coroutine[Any, Any, None]]


@pytest.mark.parametrize(("run", "binary"), [(run_conductor, "strato-conductor"),
                                             (run_scheduler, "strato-scheduler")])
async def test_heartbeat_survives_failed_ticks(tmp_path: Path, db: SqlDatabase, run: Runner,
                                               binary: str) -> None:
    services = FlakyServices(db.services, [make() for make in FAILURES])
    db.services = services
    bus, stop = LocalBus(), asyncio.Event()
    task = asyncio.create_task(run(_settings(tmp_path), db, bus, stop))
    try:
        await _until(services.beaten, task)
        assert services.attempts >= len(FAILURES) + 2
        assert [s.binary for s in await db.services.list(binary=binary)] == [binary]
    finally:
        stop.set()
        await task  # stops cleanly, without an error
        await bus.close()


async def test_a_cancelled_heartbeat_stops_even_while_failing(
        tmp_path: Path, db: SqlDatabase) -> None:
    services = FlakyServices(db.services, [RuntimeError("down")] * 10_000)
    db.services = services
    bus, stop = LocalBus(), asyncio.Event()
    task = asyncio.create_task(run_conductor(_settings(tmp_path), db, bus, stop))
    try:
        async with asyncio.timeout(20):
            while services.attempts < 3 and not task.done():
                await asyncio.sleep(0.01)
        assert not task.done(), "the loop died"
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    finally:
        await bus.close()


async def test_build_deadline_survives_failed_ticks(db: SqlDatabase) -> None:
    lost = make_instance()
    await db.instances.create_many([lost], request_id=RequestId("req-lost"))
    instances = FlakyInstances(db.instances, [make() for make in FAILURES])
    db.instances = instances

    def later() -> datetime:
        return db.now() + timedelta(hours=1)

    stop = asyncio.Event()
    # A deadline of 40 ms: a check every 10 ms; the build is an hour past it.
    task = asyncio.create_task(watch_builds(DeadlineDeps(db=db, timeout=0.04, clock=later),
                                            stop))
    try:
        async with asyncio.timeout(20):
            while (await instances.real.get(lost.id)).vm_state is not VmState.ERROR \
                    and not task.done():
                await asyncio.sleep(0.01)
        assert instances.failures == [] and not task.done()
    finally:
        stop.set()
        await task
