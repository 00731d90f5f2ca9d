"""The scheduler's host-state cache on a real migrated SQLite database: a full read
first, then only what changed (counted through a recording node repository), claims,
generations, pending decisions, invalidation, services going down at decision time and
zones from aggregates; and ``select_destinations`` claiming on that database
(multi-create with and without ``min_count``, excluded hosts, alternates)."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from strato.db.migrate import upgrade
from strato.db.ports import AllocationHealing, NodeChanges, NodeRecord, NodeRepo
from strato.db.sql import SqlDatabase
from strato.domain.context import admin_context
from strato.domain.errors import NoValidHost
from strato.domain.ids import (
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    ReservationId,
    UserId,
    new_uuid,
)
from strato.domain.images import Image, ImageStatus
from strato.domain.requests import BootRequest, Destination, RetryInfo
from strato.domain.resources import Allocation, NodeCapacity, NodeUsage, Resources
from strato.rpc.contracts.scheduler import Placements, SelectDestinations
from strato.scheduler.hoststate import CacheSettings, HostStateCache, NodeKey
from strato.scheduler.service import SchedulerDeps, select_destinations
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    T0,
    FakeClock,
    clock,
    make_capacity,
    make_flavor,
    open_db,
)

COMPUTE = "strato-compute"
NEED = Resources(vcpus=1, memory_mb=512, disk_gb=1)
MARGIN = 5.0


# -- a recording node repository and a monotonic clock to move by hand ----------------

@dataclass(frozen=True, slots=True)
class ChangesRead:
    """One ``changes(since)`` call and the rows it answered."""

    since: datetime | None
    nodes: tuple[str, ...]
    services: tuple[str, ...]


class RecordingNodes:
    """The real node repository, recording every ``changes`` call and what it returned.
    ``replay``, when set, is answered (once) instead of reading: a slow read whose
    snapshot predates writes made since."""

    def __init__(self, real: NodeRepo) -> None:
        self.real = real
        self.reads: list[ChangesRead] = []
        self.replay: NodeChanges | None = None

    async def changes(self, since: datetime | None) -> NodeChanges:
        if self.replay is not None:
            found, self.replay = self.replay, None
        else:
            found = await self.real.changes(since)
        self.reads.append(ChangesRead(since=since,
                                      nodes=tuple(sorted(n.capacity.node for n in found.nodes)),
                                      services=tuple(sorted(s.host for s in found.services))))
        return found

    async def report(self, capacities: Sequence[NodeCapacity]) -> None:
        await self.real.report(capacities)

    async def usages(self) -> list[NodeUsage]:
        return await self.real.usages()

    async def exists(self, *, host: HostName | None = None, node: NodeName | None = None,
                     unzoned: bool = False) -> bool:
        return await self.real.exists(host=host, node=node, unzoned=unzoned)

    async def claim(self, instance_id: InstanceId, dest: Destination, need: Resources) -> bool:
        return await self.real.claim(instance_id, dest, need)

    async def claim_node(self, instance_id: InstanceId, dest: Destination,
                         need: Resources) -> NodeRecord | None:
        return await self.real.claim_node(instance_id, dest, need)

    async def record_build(self, dest: Destination, *, succeeded: bool) -> None:
        await self.real.record_build(dest, succeeded=succeeded)

    async def release(self, instance_id: InstanceId) -> None:
        await self.real.release(instance_id)

    async def allocations(self, instance_id: InstanceId) -> list[Allocation]:
        return await self.real.allocations(instance_id)

    async def heal_host(self, host: HostName) -> AllocationHealing:
        return await self.real.heal_host(host)


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(tmp_path: Path, clock: FakeClock) -> AsyncIterator[SqlDatabase]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'db' / 'strato.db'}"
    await upgrade(url)
    database = await open_db(url, clock)
    yield database
    await database.close()


@pytest.fixture
def nodes(db: SqlDatabase) -> RecordingNodes:
    recorder = RecordingNodes(db.nodes)
    db.nodes = recorder
    return recorder


def key(host: str) -> NodeKey:
    return (HostName(host), NodeName(f"n{host[1:]}"))


def dest(host: str) -> Destination:
    h, n = key(host)
    return Destination(host=h, node=n)


async def computes(db: SqlDatabase, *hosts: str, memory_mb: int = 4096) -> None:
    """Nodes ``hN``/``nN``, each with a compute service that heartbeats now."""
    await db.nodes.report([make_capacity(h, f"n{h[1:]}", memory_mb=memory_mb) for h in hosts])
    for h in hosts:
        await db.services.heartbeat(binary=COMPUTE, host=HostName(h), topic="compute")


def cache_for(db: SqlDatabase, mono: Monotonic, *, refresh: float = 1.0,
              full: float = 3600.0) -> HostStateCache:
    return HostStateCache(db, CacheSettings(service_down_time=60.0, refresh_interval=refresh,
                                            full_refresh_interval=full, margin=MARGIN),
                          monotonic=mono)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def iid() -> InstanceId:
    return InstanceId(new_uuid())


# -- reading ---------------------------------------------------------------------------

async def test_first_states_is_a_full_read(db: SqlDatabase, nodes: RecordingNodes,
                                           clock: FakeClock) -> None:
    await computes(db, "h1", "h2", "h3")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono)
    states = await cache.states()
    assert nodes.reads == [ChangesRead(since=None, nodes=("n1", "n2", "n3"),
                                       services=("h1", "h2", "h3"))]
    assert (cache.reads, cache.full_reads) == (1, 1)
    assert set(states) == {key("h1"), key("h2"), key("h3")}
    for state in states.values():
        assert state.service_up and not state.service_disabled
        assert state.used == Resources() and state.instances == 0
        assert state.free == Resources(vcpus=8, memory_mb=4096, disk_gb=100)
        assert state.availability_zone == "nova"
    # Within refresh_interval the cache answers from memory.
    mono.now += 0.5
    await cache.states()
    assert len(nodes.reads) == 1


async def test_a_refresh_with_nothing_changed_reads_nothing(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2", "h3")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono)
    before = dict(await cache.states())
    clock.advance(10)
    mono.now += 2
    after = await cache.states()
    assert nodes.reads[1] == ChangesRead(since=at(10 - MARGIN), nodes=(), services=())
    assert (cache.reads, cache.full_reads) == (2, 1)
    assert dict(after) == before


async def test_a_claim_is_read_incrementally(db: SqlDatabase, nodes: RecordingNodes,
                                             clock: FakeClock) -> None:
    await computes(db, "h1", "h2", "h3")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono)
    before = dict(await cache.states())
    clock.advance(10)
    record = await db.nodes.claim_node(iid(), dest("h2"), NEED)
    assert record is not None
    mono.now += 2
    states = await cache.states()
    assert nodes.reads[1] == ChangesRead(since=at(10 - MARGIN), nodes=("n2",), services=())
    assert cache.full_reads == 1
    h2 = states[key("h2")]
    assert h2.used == NEED and h2.instances == 1
    assert h2.free == Resources(vcpus=7, memory_mb=3584, disk_gb=99)
    assert h2.generation == record.generation > before[key("h2")].generation
    assert states[key("h1")] == before[key("h1")]
    assert states[key("h3")] == before[key("h3")]


async def test_the_full_read_comes_back_after_its_interval(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=1.0, full=60.0)
    await cache.states()
    clock.advance(10)
    mono.now += 30
    await cache.states()
    mono.now += 30
    await cache.states()
    assert [r.since for r in nodes.reads] == [None, at(-MARGIN), None]
    assert [r.nodes for r in nodes.reads] == [("n1", "n2"), ("n1", "n2"), ("n1", "n2")]
    assert (cache.reads, cache.full_reads) == (3, 2)


async def test_a_stale_record_never_replaces_a_newer_one(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono)
    await cache.states()
    snapshot = await nodes.real.changes(None)  # read before the claim below...
    clock.advance(10)
    record = await db.nodes.claim_node(iid(), dest("h1"), NEED)
    assert record is not None
    cache.settle(key("h1"), iid(), record)
    assert (await cache.states())[key("h1")].used == NEED
    # ...answered late: the older row must not undo the claim.
    nodes.replay = snapshot
    await cache.states(fresh=True)
    assert nodes.reads[-1].nodes == ("n1", "n2")
    state = (await cache.states())[key("h1")]
    assert state.used == NEED and state.generation == record.generation
    # A record handed back directly follows the same rule.
    older = replace(record, used=Resources(memory_mb=1), generation=record.generation - 1)
    cache.settle(key("h1"), iid(), older)
    assert (await cache.states())[key("h1")].used == NEED
    # An equal or newer generation does replace it.
    newer = replace(record, used=Resources(memory_mb=2048), generation=record.generation + 1)
    cache.settle(key("h1"), iid(), newer)
    assert (await cache.states())[key("h1")].used == Resources(memory_mb=2048)


# -- this process's decisions ----------------------------------------------------------

async def test_consume_then_settle_counts_a_claim_once(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=3600.0)
    await cache.states()
    instance = iid()
    cache.consume(key("h1"), instance, NEED)
    pending = (await cache.states())[key("h1")]
    assert pending.used == NEED and pending.instances == 1 and cache.pending == 1
    assert (await cache.states())[key("h2")].used == Resources()
    record = await db.nodes.claim_node(instance, dest("h1"), NEED)
    assert record is not None and record.used == NEED
    cache.settle(key("h1"), instance, record)
    settled = (await cache.states())[key("h1")]
    assert settled.used == NEED and settled.instances == 1 and cache.pending == 0
    assert settled.generation == record.generation
    assert cache.reads == 1  # all of it without reading the database
    # Reading the row again does not count it twice either.
    await cache.states(fresh=True)
    assert (await cache.states())[key("h1")].used == NEED


async def test_two_pending_decisions_add_up(db: SqlDatabase, nodes: RecordingNodes) -> None:
    await computes(db, "h1")
    cache = cache_for(db, Monotonic(), refresh=3600.0)
    await cache.states()
    first, second = iid(), iid()
    cache.consume(key("h1"), first, NEED)
    cache.consume(key("h1"), second, NEED)
    state = (await cache.states())[key("h1")]
    assert state.used == NEED + NEED and state.instances == 2 and cache.pending == 2
    cache.settle(key("h1"), first, None)
    state = (await cache.states())[key("h1")]
    assert state.used == NEED and state.instances == 1 and cache.pending == 1


async def test_settle_without_record_drops_the_pending_usage_and_reads_again(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=3600.0)
    await cache.states()
    instance = iid()
    cache.consume(key("h2"), instance, NEED)
    assert (await cache.states())[key("h2")].used == NEED
    assert cache.reads == 1
    # Meanwhile another scheduler filled the node: our claim lost.
    other = await db.nodes.claim_node(iid(), dest("h2"), Resources(memory_mb=4000))
    assert other is not None
    cache.settle(key("h2"), instance, None)
    assert cache.pending == 0
    state = (await cache.states())[key("h2")]
    assert cache.reads == 2  # read again despite the hour-long refresh interval
    assert state.used == Resources(memory_mb=4000) and state.instances == 1
    assert state.generation == other.generation


# -- invalidation, services, zones -----------------------------------------------------

async def test_invalidate_forces_a_read_within_the_refresh_interval(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=3600.0)
    await cache.states()
    await cache.states()
    assert cache.reads == 1
    cache.invalidate()
    await cache.states()
    assert (cache.reads, cache.full_reads) == (2, 1)
    assert nodes.reads[-1].since == at(10 - MARGIN)


async def test_a_disabled_service_is_seen_after_invalidate(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=3600.0)
    await cache.states()
    clock.advance(10)
    services = {s.host: s for s in await db.services.list(binary=COMPUTE)}
    await db.services.set_disabled(services[HostName("h1")].id, True, "maintenance")
    assert not (await cache.states())[key("h1")].service_disabled  # cached still
    cache.invalidate()
    states = await cache.states()
    assert nodes.reads[-1] == ChangesRead(since=at(10 - MARGIN), nodes=(), services=("h1",))
    assert states[key("h1")].service_disabled
    assert states[key("h1")].disabled_reason == "maintenance"
    assert states[key("h1")].service_up
    assert not states[key("h2")].service_disabled


async def test_a_service_goes_down_at_decision_time_without_a_read(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1")
    clock.advance(30)
    await computes(db, "h2", "h3")  # heartbeats 30 s after h1's
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=1e9, full=1e9)

    async def up() -> dict[str, bool]:
        return {k[0]: s.service_up for k, s in (await cache.states()).items()}

    assert await up() == {"h1": True, "h2": True, "h3": True}
    clock.advance(30)   # h1's heartbeat exactly service_down_time old: still up
    assert await up() == {"h1": True, "h2": True, "h3": True}
    clock.advance(1)
    assert await up() == {"h1": False, "h2": True, "h3": True}
    clock.advance(29)
    assert await up() == {"h1": False, "h2": True, "h3": True}
    clock.advance(1)
    assert await up() == {"h1": False, "h2": False, "h3": False}
    assert cache.reads == 1 and len(nodes.reads) == 1


async def test_a_heartbeat_brings_a_down_service_back_on_the_next_read(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1")
    mono = Monotonic()
    cache = cache_for(db, mono, refresh=1.0)
    await cache.states()
    clock.advance(61)
    assert not (await cache.states())[key("h1")].service_up
    await db.services.heartbeat(binary=COMPUTE, host=HostName("h1"), topic="compute")
    mono.now += 2
    assert (await cache.states())[key("h1")].service_up
    assert nodes.reads[-1].services == ("h1",)


async def test_a_host_added_to_a_zone_aggregate_gets_that_zone(
        db: SqlDatabase, nodes: RecordingNodes, clock: FakeClock) -> None:
    await computes(db, "h1", "h2")
    clock.advance(10)
    mono = Monotonic()
    cache = cache_for(db, mono)
    states = await cache.states()
    assert {s.availability_zone for s in states.values()} == {"nova"}
    clock.advance(10)
    aggregate = await db.aggregates.create("rack1", "az1")
    await db.aggregates.add_host(aggregate.id, HostName("h1"))
    mono.now += 2
    states = await cache.states()
    assert nodes.reads[-1].nodes == ()  # no node row changed, the zone did
    assert states[key("h1")].availability_zone == "az1"
    assert states[key("h2")].availability_zone == "nova"
    # Moving the aggregate to another zone is seen as well.
    clock.advance(10)
    await db.aggregates.update(aggregate.id, availability_zone="az2")
    mono.now += 2
    assert (await cache.states())[key("h1")].availability_zone == "az2"


# -- select_destinations on the database -----------------------------------------------

def boot(instance_id: InstanceId, *, retried_on: tuple[str, ...] = ()) -> BootRequest:
    image = Image(id=ImageId("img"), name="img", status=ImageStatus.ACTIVE)
    return BootRequest(instance_id=instance_id, project_id=ProjectId("p1"),
                       user_id=UserId("u1"), name="vm", flavor=make_flavor(), image=image,
                       reservation_id=ReservationId("r-1"),
                       retry=RetryInfo(hosts=tuple(HostName(h) for h in retried_on)))


async def place(deps: SchedulerDeps, ids: Sequence[InstanceId], *,
                min_count: int | None = None, exclude: tuple[str, ...] = ()) -> Placements:
    msg = SelectDestinations(requests=tuple(boot(i) for i in ids), min_count=min_count,
                             exclude_hosts=tuple(HostName(h) for h in exclude))
    return await select_destinations(admin_context(), msg, deps=deps)


def scheduler(db: SqlDatabase) -> SchedulerDeps:
    return SchedulerDeps(db, rng=random.Random(0))


async def used_memory(db: SqlDatabase) -> dict[str, int]:
    return {u.host: u.used.memory_mb for u in await db.nodes.usages()}


def check_alternates(placements: Placements) -> None:
    for selection in placements.selections:
        hosts = [a.host for a in selection.alternates]
        assert selection.chosen.host not in hosts
        assert len(set(hosts)) == len(hosts) <= 2


async def test_multi_create_with_min_count_places_what_fits_and_explains_the_rest(
        db: SqlDatabase) -> None:
    await computes(db, "h1", "h2", "h3", memory_mb=512)  # one instance each
    ids = [iid() for _ in range(5)]
    placements = await place(scheduler(db), ids, min_count=2)
    assert [s.instance_id for s in placements.selections] == ids[:3]
    assert sorted(s.chosen.host for s in placements.selections) == ["h1", "h2", "h3"]
    assert [r.instance_id for r in placements.refusals] == ids[3:]
    for refusal in placements.refusals:
        assert refusal.message == ("No valid host was found. 3 hosts: 3 removed by RamFilter "
                                   "(free RAM 0 MB < 512 MB requested).")
        assert "h1" not in refusal.message
        assert refusal.details.split("\n")[1:] == [
            f"h{i} (node n{i}): RamFilter: free RAM 0 MB < 512 MB requested"
            for i in (1, 2, 3)]
    check_alternates(placements)
    assert await used_memory(db) == {"h1": 512, "h2": 512, "h3": 512}
    for selection in placements.selections:
        held = await db.nodes.allocations(selection.instance_id)
        assert [(a.host, a.node) for a in held] == [(selection.chosen.host,
                                                     selection.chosen.node)]
    for refused in ids[3:]:
        assert await db.nodes.allocations(refused) == []


async def test_multi_create_without_min_count_releases_every_claim(
        db: SqlDatabase, caplog: pytest.LogCaptureFixture) -> None:
    await computes(db, "h1", "h2", "h3", memory_mb=512)
    ids = [iid() for _ in range(5)]
    with caplog.at_level(logging.WARNING, logger="strato.scheduler.service"):
        with pytest.raises(NoValidHost) as info:
            await place(scheduler(db), ids)
    assert info.value.message == (
        "No valid host was found. 3 hosts: 3 removed by RamFilter (free RAM 0 MB < 512 MB "
        "requested). Only 3 of the 5 instances requested could be placed.")
    # Once one is refused the request has failed: the fifth is not even tried.
    refused = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(refused) == 1 and refused[0].startswith(f"instance {ids[3]}: ")
    assert info.value.details is not None and "h2 (node n2): RamFilter" in info.value.details
    for instance in ids:
        assert await db.nodes.allocations(instance) == []
    assert await used_memory(db) == {"h1": 0, "h2": 0, "h3": 0}


async def test_min_count_out_of_reach_releases_every_claim(db: SqlDatabase) -> None:
    await computes(db, "h1", "h2", "h3", memory_mb=512)
    ids = [iid() for _ in range(5)]
    deps = scheduler(db)
    with pytest.raises(NoValidHost) as info:
        await place(deps, ids, min_count=4)
    assert info.value.message.endswith(
        " Only 3 of the 5 instances requested could be placed (at least 4 required).")
    for instance in ids:
        assert await db.nodes.allocations(instance) == []
    assert await used_memory(db) == {"h1": 0, "h2": 0, "h3": 0}
    # Every claim was released, and a scheduler reading again can use the room.
    deps.cache.invalidate()
    again = await place(deps, ids[:3])
    assert sorted(s.chosen.host for s in again.selections) == ["h1", "h2", "h3"]


async def test_excluded_hosts_are_never_chosen_nor_alternates(db: SqlDatabase) -> None:
    await db.nodes.report([make_capacity("h1", "n1", memory_mb=16384),
                           make_capacity("h2", "n2", memory_mb=4096),
                           make_capacity("h3", "n3", memory_mb=2048)])
    for h in ("h1", "h2", "h3"):
        await db.services.heartbeat(binary=COMPUTE, host=HostName(h), topic="compute")
    deps = scheduler(db)
    excluded = await place(deps, [iid()], exclude=("h1",))
    (selection,) = excluded.selections
    assert selection.chosen.host == "h2"
    assert [a.host for a in selection.alternates] == ["h3"]
    # A reschedule's own list of failed hosts counts the same way.
    msg = SelectDestinations(requests=(boot(iid(), retried_on=("h1", "h2")),))
    retried = await select_destinations(admin_context(), msg, deps=deps)
    assert [s.chosen.host for s in retried.selections] == ["h3"]
    assert retried.selections[0].alternates == ()
    # Without exclusions the roomiest host wins: the exclusions above were what mattered.
    free = await place(deps, [iid()])
    assert free.selections[0].chosen.host == "h1"
    assert [a.host for a in free.selections[0].alternates] == ["h2", "h3"]


async def test_each_selection_spreads_and_names_other_hosts_as_alternates(
        db: SqlDatabase) -> None:
    await computes(db, "h1", "h2", "h3", "h4")
    ids = [iid() for _ in range(3)]
    placements = await place(scheduler(db), ids)
    got = [(s.chosen.host, [a.host for a in s.alternates]) for s in placements.selections]
    # Each decision counts the ones before it: the next emptiest host, ties by name.
    assert got == [("h1", ["h2", "h3"]), ("h2", ["h3", "h4"]), ("h3", ["h4", "h1"])]
    assert all(s.chosen.availability_zone == "nova" for s in placements.selections)
    check_alternates(placements)
    assert await used_memory(db) == {"h1": 512, "h2": 512, "h3": 512, "h4": 0}


async def test_concurrent_requests_count_each_others_pending_claims(
        db: SqlDatabase) -> None:
    # Each decision is made while the claims before it may still be in flight: the
    # pending ones must count, or every request would pick the same emptiest host.
    await computes(db, "h1", "h2", "h3", "h4")
    deps = scheduler(db)
    results = await asyncio.gather(*(place(deps, [iid()]) for _ in range(4)))
    assert sorted(r.selections[0].chosen.host for r in results) == ["h1", "h2", "h3", "h4"]
    assert deps.cache.pending == 0
    assert await used_memory(db) == {"h1": 512, "h2": 512, "h3": 512, "h4": 512}
