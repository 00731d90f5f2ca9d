"""The admin project and user, and several scheduler processes claiming one database."""

# ruff: noqa: F811 (pytest fixtures are imported by name and then requested as arguments)

from __future__ import annotations

import asyncio

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
)
from strato.domain.images import Image, ImageStatus
from strato.domain.requests import BootRequest
from strato.rpc.contracts.scheduler import SelectDestinations
from strato.scheduler.service import SchedulerDeps, select_destinations
from strato.seed import seed_admin
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    make_capacity,
    make_flavor,
    make_instance,
    pg_url,
)


async def test_seed_admin_is_idempotent_and_links_user_to_project(db: SqlDatabase) -> None:
    user, project = await seed_admin(db)
    again_user, again_project = await seed_admin(db)
    assert (again_user, again_project) == (user, project)
    assert user.name == project.name == "admin"
    assert user.default_project_id == project.id
    assert await db.identity.project_by_name("admin") == project


async def test_concurrent_seeding_creates_one_admin(db: SqlDatabase) -> None:
    results = await asyncio.gather(*(seed_admin(db) for _ in range(5)))
    assert len({user.id for user, _ in results}) == 1


def _boot(instance_id: InstanceId) -> BootRequest:
    image = Image(id=ImageId("img"), name="img", status=ImageStatus.ACTIVE)
    return BootRequest(instance_id=instance_id, project_id=ProjectId("p1"),
                       user_id=UserId("u1"), name="vm", flavor=make_flavor(), image=image,
                       reservation_id=ReservationId("r-1"))


async def test_two_schedulers_never_oversubscribe_and_retry_lost_races(
        db_url: str, clock: FakeClock, db: SqlDatabase) -> None:
    # Two scheduler "processes": separate connections, locks and in-flight claims.
    other = await SqlDatabase.open(db_url, clock=clock)
    try:
        await db.nodes.report([make_capacity("h1", "n1", memory_mb=512 * 6),
                               make_capacity("h2", "n2", memory_mb=512 * 6)])
        for host in ("h1", "h2"):
            await db.services.heartbeat(binary="strato-compute", host=HostName(host),
                                        topic="compute")
        instances = [make_instance() for _ in range(20)]
        await db.instances.create_many(instances, request_id=admin_context().request_id)
        schedulers = [SchedulerDeps(db=db), SchedulerDeps(db=other)]

        async def place(i: int) -> bool:
            msg = SelectDestinations(requests=(_boot(instances[i].id),))
            try:
                await select_destinations(admin_context(), msg, deps=schedulers[i % 2])
            except NoValidHost:
                return False
            return True

        placed = await asyncio.gather(*(place(i) for i in range(20)))
        assert sum(placed) == 12
        usage = {u.node: u for u in await db.nodes.usages()}
        n1, n2 = usage[NodeName("n1")], usage[NodeName("n2")]
        assert n1.used.memory_mb == n2.used.memory_mb == 512 * 6
        assert n1.instances + n2.instances == 12
    finally:
        await other.close()
