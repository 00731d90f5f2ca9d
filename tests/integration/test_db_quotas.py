"""Quotas in the SQL adapter, on SQLite and PostgreSQL: limits and their layers, usage
counted from the instances, and the quota-checked create, which parallel creates on
separate connections never push past a limit.
"""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import replace

import pytest
import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import create_engine
from strato.db.ports import InstanceQuery
from strato.db.sql import SqlDatabase
from strato.domain.errors import Conflict, Invalid, OverQuota
from strato.domain.ids import InstanceId, ProjectId, RequestId, new_uuid
from strato.domain.instances import Instance
from strato.domain.quotas import DEFAULT_CLASS, DEFAULT_LIMITS, Usage, merge
from strato.domain.resources import Flavor
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    make_flavor,
    make_instance,
    open_db,
    pg_url,
)

P1 = ProjectId("p1")
P2 = ProjectId("p2")
REQ = RequestId("req-quota")
DEFAULTS = merge()
TINY = make_flavor()                                          # 1 vCPU, 512 MB
BIG = make_flavor(vcpus=4, memory_mb=4096)


def builder(project: ProjectId = P1,
            flavor: Flavor = TINY) -> Callable[[int], Sequence[Instance]]:
    """A ``build`` callable: ``count`` fresh instances of ``project`` and ``flavor``."""
    def build(count: int) -> list[Instance]:
        return [make_instance(project_id=project, flavor=flavor, display_name=f"vm-{n}",
                              launch_index=n) for n in range(count)]
    return build


async def create(db: SqlDatabase, *, project: ProjectId = P1, flavor: Flavor = TINY,
                 min_count: int = 1, max_count: int = 1) -> list[Instance]:
    return await db.instances.create_within_quota(
        builder(project, flavor), project_id=project, flavor=flavor, min_count=min_count,
        max_count=max_count, defaults=DEFAULTS, request_id=REQ)


async def live(db: SqlDatabase, project: ProjectId = P1) -> list[Instance]:
    return await db.instances.list(InstanceQuery(project_id=project))


async def action_count(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(
                sa.select(sa.func.count()).select_from(t.instance_actions))).scalar_one())
    finally:
        await engine.dispose()


# ---- limits -----------------------------------------------------------------------------


async def test_limits_layer_project_over_default_class_over_defaults(db: SqlDatabase) -> None:
    defaults = merge({"metadata_items": 8})
    assert await db.quotas.limits(P1, defaults=defaults) == defaults
    assert await db.quotas.class_limits(DEFAULT_CLASS, defaults=defaults) == defaults

    await db.quotas.set_class_limits(DEFAULT_CLASS, {"instances": 20, "cores": -1},
                                     defaults=defaults)
    await db.quotas.set_limits(P1, {"instances": 3, "key_pairs": 7}, defaults=defaults,
                               force=False)

    assert await db.quotas.limits(P1, defaults=defaults) == {
        **defaults, "instances": 3, "cores": -1, "key_pairs": 7}
    assert await db.quotas.limits(P2, defaults=defaults) == {
        **defaults, "instances": 20, "cores": -1}
    # Another class does not change anyone's defaults.
    await db.quotas.set_class_limits("gold", {"ram": 1}, defaults=defaults)
    assert (await db.quotas.limits(P2, defaults=defaults))["ram"] == DEFAULT_LIMITS["ram"]
    assert (await db.quotas.class_limits("gold", defaults=defaults))["ram"] == 1


async def test_set_limits_updates_in_place_and_reset_restores_defaults(
        db: SqlDatabase, clock: FakeClock) -> None:
    await db.quotas.set_limits(P1, {"instances": 3}, defaults=DEFAULTS, force=False)
    clock.advance(5)
    after = await db.quotas.set_limits(P1, {"instances": 4, "ram": -1}, defaults=DEFAULTS,
                                       force=False)
    assert after == {**DEFAULTS, "instances": 4, "ram": -1}
    await db.quotas.set_limits(P2, {"instances": 1}, defaults=DEFAULTS, force=False)

    await db.quotas.reset(P1)
    await db.quotas.reset(P1)  # idempotent

    assert await db.quotas.limits(P1, defaults=DEFAULTS) == DEFAULTS
    assert (await db.quotas.limits(P2, defaults=DEFAULTS))["instances"] == 1


async def test_set_limits_refuses_unknown_resources_and_values_below_minus_one(
        db: SqlDatabase) -> None:
    with pytest.raises(Invalid, match="bogus"):
        await db.quotas.set_limits(P1, {"bogus": 1}, defaults=DEFAULTS, force=True)
    with pytest.raises(Invalid, match="-2"):
        await db.quotas.set_limits(P1, {"instances": -2}, defaults=DEFAULTS, force=True)
    with pytest.raises(Invalid, match="bogus"):
        await db.quotas.set_class_limits(DEFAULT_CLASS, {"bogus": 1}, defaults=DEFAULTS)
    assert await db.quotas.limits(P1, defaults=DEFAULTS) == DEFAULTS


async def test_a_limit_below_usage_needs_force(db: SqlDatabase) -> None:
    await create(db, flavor=BIG, max_count=2)  # 2 instances, 8 cores, 8192 MB

    with pytest.raises(Invalid, match="Quota limit 1 for instances must be greater than or "
                                      "equal to already used and reserved 2."):
        await db.quotas.set_limits(P1, {"key_pairs": 1, "instances": 1},
                                   defaults=DEFAULTS, force=False)
    with pytest.raises(Invalid, match="for cores"):
        await db.quotas.set_limits(P1, {"cores": 7}, defaults=DEFAULTS, force=False)
    assert await db.quotas.limits(P1, defaults=DEFAULTS) == DEFAULTS  # nothing written

    # At the usage, unlimited, uncounted resources, or forced: accepted.
    await db.quotas.set_limits(P1, {"instances": 2, "cores": -1, "key_pairs": 0},
                               defaults=DEFAULTS, force=False)
    forced = await db.quotas.set_limits(P1, {"ram": 1}, defaults=DEFAULTS, force=True)
    assert (forced["instances"], forced["cores"], forced["ram"], forced["key_pairs"]) == (
        2, -1, 1, 0)


# ---- usage ------------------------------------------------------------------------------


async def test_usage_is_counted_from_live_instances_of_the_project(db: SqlDatabase) -> None:
    assert await db.quotas.usage(P1) == Usage()
    tiny = await create(db, max_count=3)
    await create(db, flavor=BIG)
    await create(db, project=P2, flavor=BIG)

    assert await db.quotas.usage(P1) == Usage(instances=4, cores=3 + 4, ram=3 * 512 + 4096)
    await db.instances.soft_delete(tiny[0].id)
    assert await db.quotas.usage(P1) == Usage(instances=3, cores=2 + 4, ram=2 * 512 + 4096)
    assert await db.quotas.usage(P2) == Usage(instances=1, cores=4, ram=4096)


async def test_usage_follows_each_instances_flavor_snapshot(db: SqlDatabase) -> None:
    # Instances made by other paths (create_many) count the same way.
    odd = replace(make_instance(), flavor=make_flavor(vcpus=3, memory_mb=1000))
    await db.instances.create_many([odd], request_id=REQ)
    assert await db.quotas.usage(P1) == Usage(instances=1, cores=3, ram=1000)


# ---- the quota-checked create -----------------------------------------------------------


async def test_create_within_quota_makes_max_count_when_everything_fits(
        db: SqlDatabase, db_url: str) -> None:
    made = await create(db, max_count=4)
    assert len(made) == 4
    assert sorted(i.id for i in await live(db)) == sorted(i.id for i in made)
    assert await action_count(db_url) == 4


async def test_create_within_quota_reduces_to_what_fits_down_to_min_count(
        db: SqlDatabase) -> None:
    await db.quotas.set_limits(P1, {"instances": 5}, defaults=DEFAULTS, force=False)
    await create(db, max_count=2)

    made = await create(db, min_count=1, max_count=10)

    assert len(made) == 3
    assert len(await live(db)) == 5


async def test_create_within_quota_counts_cores_and_ram(db: SqlDatabase) -> None:
    await db.quotas.set_limits(P1, {"cores": 10, "ram": -1}, defaults=DEFAULTS, force=False)
    assert len(await create(db, flavor=BIG, min_count=1, max_count=5)) == 2  # 8 of 10 cores
    with pytest.raises(OverQuota, match="Quota exceeded for cores: Requested 4, but already "
                                        "used 8 of 10 cores"):
        await create(db, flavor=BIG)
    await db.quotas.set_limits(P1, {"cores": -1, "ram": 9000}, defaults=DEFAULTS,
                               force=False)
    with pytest.raises(OverQuota, match="Quota exceeded for ram: Requested 4096, but "
                                        "already used 8192 of 9000 ram"):
        await create(db, flavor=BIG)
    assert len(await create(db, min_count=1, max_count=3)) == 1  # 808 MB left: one tiny


async def test_over_quota_writes_nothing(db: SqlDatabase, db_url: str) -> None:
    await db.quotas.set_limits(P1, {"instances": 2}, defaults=DEFAULTS, force=False)
    await create(db, max_count=2)

    with pytest.raises(OverQuota, match=r"^Quota exceeded for instances: Requested 2-3, "
                                        r"but already used 2 of 2 instances$"):
        await create(db, min_count=2, max_count=3)

    assert len(await live(db)) == 2
    assert await action_count(db_url) == 2
    # Another project is not affected.
    assert len(await create(db, project=P2, max_count=3)) == 3


async def test_deleting_frees_quota(db: SqlDatabase) -> None:
    await db.quotas.set_limits(P1, {"instances": 1}, defaults=DEFAULTS, force=False)
    [first] = await create(db)
    with pytest.raises(OverQuota):
        await create(db)
    await db.instances.soft_delete(first.id)
    assert len(await create(db)) == 1


async def test_build_must_make_the_instances_it_was_asked_for(db: SqlDatabase) -> None:
    def wrong_project(count: int) -> Sequence[Instance]:
        return [make_instance(project_id=P2) for _ in range(count)]

    with pytest.raises(Invalid):
        await db.instances.create_within_quota(
            wrong_project, project_id=P1, flavor=TINY, min_count=1, max_count=1,
            defaults=DEFAULTS, request_id=REQ)
    assert await live(db, P2) == []


@pytest.mark.parametrize(("min_count", "max_count"), [(1, 1), (1, 3)])
async def test_parallel_creates_never_exceed_the_quota(
        db: SqlDatabase, db_url: str, clock: FakeClock, min_count: int,
        max_count: int) -> None:
    limit = 7
    await db.quotas.set_limits(P1, {"instances": limit}, defaults=DEFAULTS, force=False)
    others = [await open_db(db_url, clock) for _ in range(4)]
    try:
        results = await asyncio.gather(*(
            create(others[n % 4], min_count=min_count, max_count=max_count)
            for n in range(16)), return_exceptions=True)
    finally:
        for other in others:
            await other.close()

    made = [i for r in results if isinstance(r, list) for i in r]
    errors = [r for r in results if not isinstance(r, list)]
    assert all(isinstance(e, OverQuota) for e in errors), errors
    assert len(made) == limit
    assert len(await live(db)) == limit
    assert await db.quotas.usage(P1) == Usage(instances=limit, cores=limit, ram=limit * 512)


async def test_a_limit_lowered_while_creates_run_is_never_passed(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    # set_limits (not forced) takes the same lock: either the creates come first and
    # the new limit is refused, or the limit comes first and the creates respect it.
    others = [await open_db(db_url, clock) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(create(others[n % 3]) for n in range(6)),
            others[0].quotas.set_limits(P1, {"instances": 3}, defaults=DEFAULTS,
                                        force=False),
            return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    limits = await db.quotas.limits(P1, defaults=DEFAULTS)
    count = len(await live(db))
    if isinstance(results[-1], Invalid):
        assert limits["instances"] == DEFAULT_LIMITS["instances"] and count > 3
    else:
        assert limits["instances"] == 3 and count <= 3


async def test_instance_ids_stay_unique_under_quota(db: SqlDatabase) -> None:
    fixed = InstanceId(new_uuid())

    def same_id(count: int) -> list[Instance]:
        return [make_instance(id=fixed) for _ in range(count)]

    await db.instances.create_within_quota(same_id, project_id=P1, flavor=TINY,
                                           min_count=1, max_count=1, defaults=DEFAULTS,
                                           request_id=REQ)
    with pytest.raises(Conflict):
        await db.instances.create_within_quota(same_id, project_id=P1, flavor=TINY,
                                               min_count=1, max_count=1,
                                               defaults=DEFAULTS, request_id=REQ)
