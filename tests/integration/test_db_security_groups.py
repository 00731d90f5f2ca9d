"""Security groups in the SQL adapter, on SQLite and PostgreSQL, raced from separate
``SqlDatabase`` objects (own pools, so on PostgreSQL truly concurrent transactions):
one default group per project, the group quota, one of identical rules, and the
cascade of a deleted group to the rules naming it."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio

import pytest

from strato.db.sql import SqlDatabase
from strato.domain.errors import Conflict, OverQuota
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import Direction, SecurityGroupRule
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    open_db,
    pg_url,
)

P1 = ProjectId("p1")


async def _databases(url: str, clock: FakeClock, count: int) -> list[SqlDatabase]:
    return [await open_db(url, clock) for _ in range(count)]


def _rule(group_id: str, **fields: object) -> SecurityGroupRule:
    return SecurityGroupRule(id=new_uuid(), security_group_id=group_id, project_id=P1,
                             direction=Direction.INGRESS, **fields)  # type: ignore[arg-type]


async def test_concurrent_ensure_default_makes_one_group(db_url: str, clock: FakeClock) -> None:
    dbs = await _databases(db_url, clock, 4)
    try:
        made = await asyncio.gather(*(d.security_groups.ensure_default(P1)
                                      for d in dbs for _ in range(3)))
        assert len({g.id for g in made}) == 1
        assert len(await dbs[0].security_groups.list(project_id=P1)) == 1
        assert len(made[0].rules) == 4
    finally:
        for d in dbs:
            await d.close()


async def test_concurrent_creates_stop_at_the_group_limit(db_url: str,
                                                          clock: FakeClock) -> None:
    dbs = await _databases(db_url, clock, 4)
    try:
        results = await asyncio.gather(
            *(d.security_groups.create(project_id=P1, name=f"g{i}{n}", description="",
                                       group_limit=5, rule_limit=100)
              for i, d in enumerate(dbs) for n in range(3)), return_exceptions=True)
        assert sum(1 for r in results if isinstance(r, OverQuota)) == 7
        assert len(await dbs[0].security_groups.list(project_id=P1)) == 5
        assert len(await dbs[0].security_groups.list_rules(project_id=P1)) == 10
    finally:
        for d in dbs:
            await d.close()


async def test_concurrent_identical_rules_store_one(db_url: str, clock: FakeClock) -> None:
    dbs = await _databases(db_url, clock, 4)
    try:
        group = await dbs[0].security_groups.create(project_id=P1, name="web",
                                                    description="", group_limit=-1,
                                                    rule_limit=-1)
        results = await asyncio.gather(
            *(d.security_groups.add_rule(_rule(group.id, protocol="tcp", port_range_min=22,
                                               port_range_max=22), limit=-1)
              for d in dbs for _ in range(2)), return_exceptions=True)
        assert sum(1 for r in results if isinstance(r, Conflict)) == 7
        assert len((await dbs[0].security_groups.get(group.id)).rules) == 3
    finally:
        for d in dbs:
            await d.close()


async def test_deleting_a_group_drops_rules_naming_it(db: SqlDatabase) -> None:
    repo = db.security_groups
    web = await repo.create(project_id=P1, name="web", description="", group_limit=-1,
                            rule_limit=-1)
    app = await repo.create(project_id=P1, name="app", description="", group_limit=-1,
                            rule_limit=-1)
    await repo.add_rule(_rule(app.id, remote_group_id=web.id), limit=-1)
    await repo.delete(web.id)
    assert [r.remote_group_id for r in (await repo.get(app.id)).rules] == [None, None]
    with pytest.raises(Conflict):
        await repo.delete((await repo.ensure_default(P1)).id)
