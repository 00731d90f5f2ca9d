"""Server groups in the SQL adapter, on SQLite and PostgreSQL: create, get, list and
delete, project scoping, live members only, and the ``server_groups`` quota, which
parallel creates on separate connections never pass.
"""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest
import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import create_engine
from strato.db.sql import SqlDatabase
from strato.domain.errors import Conflict, NotFound, OverQuota
from strato.domain.groups import GroupPolicy, ServerGroup
from strato.domain.ids import GroupId, InstanceId, ProjectId, RequestId, UserId, new_uuid
from strato.domain.instances import Instance
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    T0,
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    make_instance,
    open_db,
    pg_url,
)

P1 = ProjectId("p1")
P2 = ProjectId("p2")
REQ = RequestId("req-groups")


def make_group(project: ProjectId = P1, name: str = "g",
               policy: GroupPolicy = GroupPolicy.ANTI_AFFINITY, **rules: int) -> ServerGroup:
    return ServerGroup(id=GroupId(new_uuid()), name=name, project_id=project,
                       user_id=UserId("u1"), policy=policy, rules=dict(rules))


async def add_members(url: str, group: ServerGroup, *instance_ids: str) -> None:
    """Insert member rows, as the instance creation transaction does."""
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            pk = (await conn.execute(sa.select(t.server_groups.c.id)
                                     .where(t.server_groups.c.uuid == group.id))).scalar_one()
            await conn.execute(t.server_group_members.insert(), [
                {"group_id": pk, "instance_uuid": instance_id, "created_at": T0}
                for instance_id in instance_ids])
    finally:
        await engine.dispose()


async def member_rows(url: str) -> int:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return int((await conn.execute(sa.select(sa.func.count())
                                           .select_from(t.server_group_members))).scalar_one())
    finally:
        await engine.dispose()


async def instances(db: SqlDatabase, count: int) -> list[Instance]:
    made = [make_instance(display_name=f"vm{n}") for n in range(count)]
    await db.instances.create_many(made, request_id=REQ)
    return made


async def test_create_get_delete_round_trip(db: SqlDatabase, clock: FakeClock) -> None:
    group = make_group(name="web", policy=GroupPolicy.ANTI_AFFINITY, max_server_per_host=2)
    created = await db.groups.create(group, limit=10)
    assert created == replace(group, created_at=T0)
    fetched = await db.groups.get(group.id)
    assert fetched == created
    assert fetched.max_server_per_host == 2
    assert await db.groups.get(group.id, project_id=P1) == created
    await db.groups.delete(group.id)
    with pytest.raises(NotFound, match=f"Instance group {group.id} could not be found."):
        await db.groups.get(group.id)
    with pytest.raises(NotFound, match="could not be found"):
        await db.groups.delete(group.id)


async def test_every_policy_round_trips(db: SqlDatabase) -> None:
    for policy in GroupPolicy:
        group = await db.groups.create(make_group(policy=policy), limit=-1)
        assert (await db.groups.get(group.id)).policy is policy


async def test_a_duplicate_id_is_a_conflict(db: SqlDatabase) -> None:
    group = await db.groups.create(make_group(), limit=-1)
    with pytest.raises(Conflict):
        await db.groups.create(replace(group, name="other"), limit=-1)
    assert [g.name for g in await db.groups.list()] == ["g"]


async def test_another_projects_group_is_not_found(db: SqlDatabase) -> None:
    group = await db.groups.create(make_group(P1), limit=-1)
    with pytest.raises(NotFound):
        await db.groups.get(group.id, project_id=P2)
    with pytest.raises(NotFound):
        await db.groups.delete(group.id, project_id=P2)
    assert (await db.groups.get(group.id)).id == group.id
    await db.groups.delete(group.id, project_id=P1)
    assert await db.groups.list() == []


async def test_list_is_oldest_first_per_project_with_paging(db: SqlDatabase,
                                                            clock: FakeClock) -> None:
    for n in range(4):
        await db.groups.create(make_group(P1, f"a{n}"), limit=-1)
        clock.advance(1)
        await db.groups.create(make_group(P2, f"b{n}"), limit=-1)
        clock.advance(1)

    def names(groups: list[ServerGroup]) -> list[str]:
        return [g.name for g in groups]

    assert names(await db.groups.list(project_id=P1)) == ["a0", "a1", "a2", "a3"]
    assert names(await db.groups.list(project_id=P2, limit=2)) == ["b0", "b1"]
    assert names(await db.groups.list(project_id=P1, limit=2, offset=1)) == ["a1", "a2"]
    assert names(await db.groups.list(project_id=P1, offset=4)) == []
    assert names(await db.groups.list()) == ["a0", "b0", "a1", "b1", "a2", "b2", "a3", "b3"]
    assert names(await db.groups.list(limit=3, offset=6)) == ["a3", "b3"]
    assert names(await db.groups.list(limit=0)) == []


async def test_members_are_live_instances_in_joining_order(db: SqlDatabase,
                                                           db_url: str) -> None:
    group = await db.groups.create(make_group(), limit=-1)
    other = await db.groups.create(make_group(name="other"), limit=-1)
    a, b, c, d = await instances(db, 4)
    await add_members(db_url, group, c.id, a.id, new_uuid(), b.id)
    await add_members(db_url, other, d.id)
    assert (await db.groups.get(group.id)).members == (c.id, a.id, b.id)
    await db.instances.soft_delete(a.id)
    assert (await db.groups.get(group.id)).members == (c.id, b.id)
    listed = {g.name: g.members for g in await db.groups.list()}
    assert listed == {"g": (c.id, b.id), "other": (d.id,)}


async def test_delete_removes_the_members_but_not_the_instances(db: SqlDatabase,
                                                                 db_url: str) -> None:
    group = await db.groups.create(make_group(), limit=-1)
    [inst] = await instances(db, 1)
    await add_members(db_url, group, inst.id)
    await db.groups.delete(group.id)
    assert await member_rows(db_url) == 0
    assert (await db.instances.get(InstanceId(inst.id))).id == inst.id


async def test_create_stops_at_the_limit(db: SqlDatabase) -> None:
    for n in range(3):
        await db.groups.create(make_group(P1, f"g{n}"), limit=3)
    with pytest.raises(OverQuota, match=r"^Quota exceeded, too many server groups\.$"):
        await db.groups.create(make_group(P1, "g3"), limit=3)
    # Another project's groups do not count; a negative limit is no limit.
    await db.groups.create(make_group(P2), limit=1)
    await db.groups.create(make_group(P1, "g3"), limit=-1)
    with pytest.raises(OverQuota):
        await db.groups.create(make_group(P2, "zero"), limit=0)
    assert len(await db.groups.list(project_id=P1)) == 4
    assert len(await db.groups.list(project_id=P2)) == 1


async def test_two_parallel_creates_with_limit_one_make_one_group(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    others = [await open_db(db_url, clock) for _ in range(2)]
    try:
        results = await asyncio.gather(
            *(other.groups.create(make_group(P1, f"g{n}"), limit=1)
              for n, other in enumerate(others)), return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    made = [r for r in results if isinstance(r, ServerGroup)]
    errors = [r for r in results if not isinstance(r, ServerGroup)]
    assert len(made) == 1
    assert len(errors) == 1 and isinstance(errors[0], OverQuota), errors
    assert [g.id for g in await db.groups.list(project_id=P1)] == [made[0].id]


async def test_many_parallel_creates_never_pass_the_limit(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    limit = 3
    others = [await open_db(db_url, clock) for _ in range(4)]
    try:
        results = await asyncio.gather(
            *(others[n % 4].groups.create(make_group(P1, f"g{n}"), limit=limit)
              for n in range(12)),
            *(others[n % 4].groups.create(make_group(P2, f"h{n}"), limit=limit)
              for n in range(4)), return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    errors = [r for r in results if not isinstance(r, ServerGroup)]
    assert all(isinstance(e, OverQuota) for e in errors), errors
    assert len(await db.groups.list(project_id=P1)) == limit
    assert len(await db.groups.list(project_id=P2)) == limit
