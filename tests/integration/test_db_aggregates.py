"""Host aggregates in the SQL adapter, on SQLite and PostgreSQL: the round trips, the
one-zone-per-host rule (also under concurrent writers on separate connections), every
change bumping ``updated_at``, and failed writes leaving nothing behind.
"""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import create_engine
from strato.db.sql import COMPUTE_BINARY, SqlDatabase
from strato.domain.aggregates import AZ_KEY
from strato.domain.errors import Conflict, Invalid, InvalidState, NotFound
from strato.domain.ids import HostName
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    T0,
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    open_db,
    pg_url,
)

H1, H2, H3 = HostName("h1"), HostName("h2"), HostName("h3")


async def computes(db: SqlDatabase, *hosts: HostName) -> None:
    for host in hosts:
        await db.services.heartbeat(binary=COMPUTE_BINARY, host=host, topic="compute")


async def row_counts(url: str) -> dict[str, int]:
    """The number of rows of each aggregate table, read on a connection of its own."""
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return {table.name: (await conn.execute(
                        sa.select(sa.func.count()).select_from(table))).scalar_one()
                    for table in (t.aggregates, t.aggregate_hosts, t.aggregate_metadata)}
    finally:
        await engine.dispose()


async def test_create_get_list_round_trip(db: SqlDatabase) -> None:
    plain = await db.aggregates.create("plain")
    zoned = await db.aggregates.create("zoned", availability_zone="az1")
    assert (plain.name, plain.hosts, plain.metadata, plain.availability_zone) == (
        "plain", (), {}, None)
    assert zoned.metadata == {AZ_KEY: "az1"} and zoned.availability_zone == "az1"
    # Unlike Nova (null), a new aggregate has an updated_at: the scheduler's stamp.
    assert (zoned.created_at, zoned.updated_at) == (T0, T0)
    assert zoned.id > plain.id and len(zoned.uuid) == 36 and zoned.uuid != plain.uuid
    assert await db.aggregates.get(zoned.id) == zoned
    assert await db.aggregates.list() == [plain, zoned]


async def test_unknown_ids_are_not_found(db: SqlDatabase) -> None:
    for missing in (1, 0, -1, 2**31, 2**63):
        with pytest.raises(NotFound, match="could not be found"):
            await db.aggregates.get(missing)
    with pytest.raises(NotFound):
        await db.aggregates.update(7, name="x")
    with pytest.raises(NotFound):
        await db.aggregates.delete(7)
    with pytest.raises(NotFound):
        await db.aggregates.set_metadata(7, {"a": "b"})
    with pytest.raises(NotFound):
        await db.aggregates.remove_host(7, H1)


async def test_duplicate_name_is_a_conflict_and_creates_nothing(db: SqlDatabase,
                                                                db_url: str) -> None:
    first = await db.aggregates.create("rack1", availability_zone="az1")
    with pytest.raises(Conflict, match="rack1 already exists"):
        await db.aggregates.create("rack1", availability_zone="az2")
    assert await db.aggregates.list() == [first]
    assert await row_counts(db_url) == {"aggregates": 1, "aggregate_hosts": 0,
                                        "aggregate_metadata": 1}


@pytest.mark.parametrize("zone", ["", "a:b", "internal", "z" * 256])
async def test_invalid_zone_names_are_refused(db: SqlDatabase, db_url: str,
                                              zone: str) -> None:
    with pytest.raises(Invalid):
        await db.aggregates.create("agg", availability_zone=zone)
    agg = await db.aggregates.create("agg")
    with pytest.raises(Invalid):
        await db.aggregates.update(agg.id, availability_zone=zone)
    with pytest.raises(Invalid):
        await db.aggregates.set_metadata(agg.id, {AZ_KEY: zone, "other": "x"})
    assert await db.aggregates.get(agg.id) == agg
    assert (await row_counts(db_url))["aggregate_metadata"] == 0


async def test_invalid_names_and_metadata_are_refused(db: SqlDatabase) -> None:
    for name in ("", "n" * 256):
        with pytest.raises(Invalid):
            await db.aggregates.create(name)
    agg = await db.aggregates.create("agg")
    with pytest.raises(Invalid):
        await db.aggregates.update(agg.id, name="")
    for changes in ({"": "v"}, {"k" * 256: "v"}, {"k": "v" * 256}):
        with pytest.raises(Invalid):
            await db.aggregates.set_metadata(agg.id, changes)
    assert await db.aggregates.list() == [agg]


async def test_update_renames_and_moves_bumping_updated_at(db: SqlDatabase,
                                                           clock: FakeClock) -> None:
    agg = await db.aggregates.create("old")
    later = clock.advance(10)
    renamed = await db.aggregates.update(agg.id, name="new")
    assert (renamed.name, renamed.updated_at, renamed.created_at) == ("new", later, T0)
    later = clock.advance(10)
    moved = await db.aggregates.update(agg.id, availability_zone="az1")
    assert (moved.name, moved.availability_zone, moved.updated_at) == ("new", "az1", later)
    later = clock.advance(10)
    both = await db.aggregates.update(agg.id, name="newer", availability_zone="az2")
    assert (both.name, both.availability_zone, both.updated_at) == ("newer", "az2", later)
    assert both.metadata == {AZ_KEY: "az2"}
    # Nothing to change: nothing changes.
    clock.advance(10)
    assert await db.aggregates.update(agg.id) == both
    assert await db.aggregates.get(agg.id) == both


async def test_rename_to_a_taken_name_changes_nothing(db: SqlDatabase,
                                                      clock: FakeClock) -> None:
    await db.aggregates.create("a")
    b = await db.aggregates.create("b")
    clock.advance(10)
    with pytest.raises(Conflict, match="a already exists"):
        await db.aggregates.update(b.id, name="a", availability_zone="az9")
    assert await db.aggregates.get(b.id) == b
    # Its own name is no clash.
    assert (await db.aggregates.update(b.id, name="b")).name == "b"


async def test_add_and_remove_hosts_bump_updated_at(db: SqlDatabase,
                                                    clock: FakeClock) -> None:
    await computes(db, H1, H2)
    agg = await db.aggregates.create("rack", availability_zone="az1")
    t1 = clock.advance(5)
    agg = await db.aggregates.add_host(agg.id, H1)
    assert (agg.hosts, agg.updated_at) == ((H1,), t1)
    t2 = clock.advance(5)
    agg = await db.aggregates.add_host(agg.id, H2)
    assert (agg.hosts, agg.updated_at) == ((H1, H2), t2)
    t3 = clock.advance(5)
    agg = await db.aggregates.remove_host(agg.id, H1)
    assert (agg.hosts, agg.updated_at) == ((H2,), t3)
    assert await db.aggregates.get(agg.id) == agg


async def test_add_host_needs_a_compute_service(db: SqlDatabase) -> None:
    agg = await db.aggregates.create("rack")
    # A conductor on the host is no compute.
    await db.services.heartbeat(binary="strato-conductor", host=H1, topic="conductor")
    with pytest.raises(NotFound, match="Compute host h1 could not be found"):
        await db.aggregates.add_host(agg.id, H1)
    await computes(db, H1)
    with pytest.raises(NotFound, match="Aggregate 999 could not be found"):
        await db.aggregates.add_host(999, H1)
    assert (await db.aggregates.add_host(agg.id, H1)).hosts == (H1,)


async def test_duplicate_member_and_missing_member(db: SqlDatabase, clock: FakeClock) -> None:
    await computes(db, H1, H2)
    agg = await db.aggregates.add_host((await db.aggregates.create("rack")).id, H1)
    clock.advance(5)
    with pytest.raises(Conflict, match="already has host h1"):
        await db.aggregates.add_host(agg.id, H1)
    with pytest.raises(NotFound, match="has no host h2"):
        await db.aggregates.remove_host(agg.id, H2)
    assert await db.aggregates.get(agg.id) == agg   # updated_at untouched


async def test_host_in_several_aggregates_but_one_zone(db: SqlDatabase, db_url: str,
                                                       clock: FakeClock) -> None:
    await computes(db, H1, H2)
    az1 = await db.aggregates.create("az1-hosts", availability_zone="az1")
    also_az1 = await db.aggregates.create("az1-ssd", availability_zone="az1")
    plain = await db.aggregates.create("gpu")
    az2 = await db.aggregates.create("az2-hosts", availability_zone="az2")
    await db.aggregates.add_host(az1.id, H1)
    await db.aggregates.add_host(also_az1.id, H1)       # same zone: fine
    await db.aggregates.add_host(plain.id, H1)          # no zone: fine
    await db.aggregates.add_host(az2.id, H2)
    before = await db.aggregates.get(az2.id)
    clock.advance(5)
    with pytest.raises(Conflict, match=r"availability zone\(s\) \['az1'\] \(h1 is in az1\)"):
        await db.aggregates.add_host(az2.id, H1)
    assert await db.aggregates.get(az2.id) == before    # not added, not bumped
    assert (await row_counts(db_url))["aggregate_hosts"] == 4
    assert await db.aggregates.host_zones() == {H1: "az1", H2: "az2"}


async def test_zone_changes_that_split_a_host_are_refused(db: SqlDatabase,
                                                          clock: FakeClock) -> None:
    await computes(db, H1, H2)
    az1 = await db.aggregates.create("az1-hosts", availability_zone="az1")
    plain = await db.aggregates.create("gpu")
    await db.aggregates.add_host(az1.id, H1)
    await db.aggregates.add_host(plain.id, H1)
    await db.aggregates.add_host(plain.id, H2)
    plain = await db.aggregates.set_metadata(plain.id, {"gpu": "true"})
    clock.advance(5)
    with pytest.raises(Conflict, match="h1 is in az1"):
        await db.aggregates.update(plain.id, name="renamed", availability_zone="az2")
    with pytest.raises(Conflict, match="h1 is in az1"):
        await db.aggregates.set_metadata(plain.id, {AZ_KEY: "az2", "ssd": "true",
                                                    "gpu": None})
    assert await db.aggregates.get(plain.id) == plain   # all or nothing
    # Into the host's own zone is fine: h1 stays in az1, h2 joins it.
    moved = await db.aggregates.set_metadata(plain.id, {AZ_KEY: "az1"})
    assert moved.availability_zone == "az1"
    assert await db.aggregates.host_zones() == {H1: "az1", H2: "az1"}
    # Moving the only zoned aggregate of h1 elsewhere clashes with the other one now.
    with pytest.raises(Conflict):
        await db.aggregates.update(az1.id, availability_zone="az3")
    # Leaving the zone is always possible.
    await db.aggregates.set_metadata(plain.id, {AZ_KEY: None})
    await db.aggregates.update(az1.id, availability_zone="az3")
    assert await db.aggregates.host_zones() == {H1: "az3"}


async def test_set_metadata_sets_and_deletes_keys(db: SqlDatabase, clock: FakeClock) -> None:
    agg = await db.aggregates.create("rack", availability_zone="az1")
    t1 = clock.advance(5)
    agg = await db.aggregates.set_metadata(agg.id, {"ssd": "true", "tier": "gold",
                                                    "empty": ""})
    assert agg.metadata == {AZ_KEY: "az1", "ssd": "true", "tier": "gold", "empty": ""}
    assert agg.updated_at == t1
    t2 = clock.advance(5)
    agg = await db.aggregates.set_metadata(agg.id, {"ssd": "false", "tier": None,
                                                    "never-set": None})
    assert (agg.metadata, agg.updated_at) == ({AZ_KEY: "az1", "ssd": "false", "empty": ""}, t2)
    t3 = clock.advance(5)
    agg = await db.aggregates.set_metadata(agg.id, {AZ_KEY: None})
    assert (agg.availability_zone, agg.updated_at) == (None, t3)
    assert await db.aggregates.get(agg.id) == agg


async def test_delete(db: SqlDatabase, db_url: str) -> None:
    await computes(db, H1)
    agg = await db.aggregates.create("rack", availability_zone="az1")
    await db.aggregates.set_metadata(agg.id, {"k": "v"})
    agg = await db.aggregates.add_host(agg.id, H1)
    with pytest.raises(InvalidState, match="not empty"):
        await db.aggregates.delete(agg.id)
    assert await db.aggregates.get(agg.id) == agg
    await db.aggregates.remove_host(agg.id, H1)
    await db.aggregates.delete(agg.id)
    with pytest.raises(NotFound):
        await db.aggregates.get(agg.id)
    assert await db.aggregates.list() == []
    assert await row_counts(db_url) == {"aggregates": 0, "aggregate_hosts": 0,
                                        "aggregate_metadata": 0}
    # The name is free again.
    assert (await db.aggregates.create("rack")).name == "rack"


async def test_host_zones(db: SqlDatabase) -> None:
    assert await db.aggregates.host_zones() == {}
    await computes(db, H1, H2, H3)
    az1 = await db.aggregates.create("a", availability_zone="az1")
    plain = await db.aggregates.create("b")
    await db.aggregates.add_host(az1.id, H1)
    await db.aggregates.add_host(plain.id, H2)          # no zone: not listed
    assert await db.aggregates.host_zones() == {H1: "az1"}
    await db.aggregates.update(plain.id, availability_zone="az2")
    assert await db.aggregates.host_zones() == {H1: "az1", H2: "az2"}
    await db.aggregates.remove_host(az1.id, H1)
    assert await db.aggregates.host_zones() == {H2: "az2"}


async def test_every_change_moves_the_scheduler_watermark(db: SqlDatabase,
                                                          clock: FakeClock) -> None:
    """The scheduler notices aggregate changes by (count, newest updated_at)."""
    async def watermark() -> tuple[int, object]:
        aggregates = await db.aggregates.list()
        stamps = [a.updated_at for a in aggregates if a.updated_at is not None]
        return len(aggregates), max(stamps, default=None)

    # A create and a delete between two looks still move the watermark.
    doomed = await db.aggregates.create("doomed")
    clock.advance(1)
    before = await watermark()
    clock.advance(1)
    await db.aggregates.create("newcomer")
    await db.aggregates.delete(doomed.id)
    assert await watermark() != before
    await db.aggregates.delete((await db.aggregates.list())[0].id)

    await computes(db, H1)
    mark = await watermark()
    agg = await db.aggregates.create("a")
    changes: list[Callable[[], Awaitable[object]]] = [
        lambda: db.aggregates.update(agg.id, name="b"),
        lambda: db.aggregates.update(agg.id, availability_zone="az1"),
        lambda: db.aggregates.add_host(agg.id, H1),
        lambda: db.aggregates.set_metadata(agg.id, {"k": "v"}),
        lambda: db.aggregates.set_metadata(agg.id, {AZ_KEY: None}),
        lambda: db.aggregates.remove_host(agg.id, H1),
        lambda: db.aggregates.delete(agg.id),
    ]
    for change in changes:
        previous, mark = mark, await watermark()
        assert mark != previous
        clock.advance(1)
        await change()
    assert await watermark() != mark


async def test_concurrent_adds_never_put_a_host_in_two_zones(db: SqlDatabase, db_url: str,
                                                             clock: FakeClock) -> None:
    await computes(db, H1)
    others = [await open_db(db_url, clock) for _ in range(4)]
    try:
        for attempt in range(5):
            zoned = [await db.aggregates.create(f"r{attempt}-{n}", availability_zone=f"az{n}")
                     for n in range(4)]
            results = await asyncio.gather(
                *(others[n].aggregates.add_host(agg.id, H1) for n, agg in enumerate(zoned)),
                return_exceptions=True)
            assert sum(not isinstance(r, BaseException) for r in results) == 1, results
            assert all(isinstance(r, Conflict) for r in results if isinstance(r, BaseException))
            members = [a for a in await db.aggregates.list() if H1 in a.hosts]
            assert len(members) == 1
            await db.aggregates.remove_host(members[0].id, H1)
    finally:
        for other in others:
            await other.close()


async def test_concurrent_zone_changes_never_split_a_host(db: SqlDatabase, db_url: str,
                                                          clock: FakeClock) -> None:
    await computes(db, H1)
    others = [await open_db(db_url, clock) for _ in range(2)]
    try:
        for attempt in range(5):
            pair = [await db.aggregates.create(f"p{attempt}-{n}") for n in range(2)]
            for agg in pair:
                await db.aggregates.add_host(agg.id, H1)
            results = await asyncio.gather(
                others[0].aggregates.set_metadata(pair[0].id, {AZ_KEY: "left"}),
                others[1].aggregates.update(pair[1].id, availability_zone="right"),
                return_exceptions=True)
            assert sum(not isinstance(r, BaseException) for r in results) == 1, results
            zones = {a.availability_zone for a in await db.aggregates.list()
                     if H1 in a.hosts and a.availability_zone}
            assert len(zones) == 1
            for agg in pair:
                await db.aggregates.remove_host(agg.id, H1)
    finally:
        for other in others:
            await other.close()
