"""The SQL adapter against real SQLite and PostgreSQL: every test runs on both.

Concurrency tests open several :class:`SqlDatabase` objects (each its own engine and
connection pool) so the racing transactions really run on separate connections.
"""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from strato.db._engine import create_engine
from strato.db.migrate import upgrade
from strato.db.ports import ImageQuery, ImageSort, InstanceQuery
from strato.db.sql import COMPUTE_BINARY, SqlDatabase
from strato.db.tables import metadata
from strato.domain.actions import EventResult
from strato.domain.errors import (
    Conflict,
    Invalid,
    InvalidState,
    NotFound,
    OverQuota,
    Unavailable,
)
from strato.domain.ids import (
    FlavorId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    RequestId,
    UserId,
    new_uuid,
)
from strato.domain.images import Image, ImageData, ImageMember, ImageStatus, MemberStatus
from strato.domain.instances import Fault, Instance, PowerState, TaskState, VmState
from strato.domain.requests import Destination
from strato.domain.resources import NodeCapacity, NodeUsage, Resources
from strato.testing.infra import temporary_database
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    T0,
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    make_capacity,
    make_flavor,
    make_instance,
    open_db,
    pg_url,
)

REQ = RequestId("req-1")
GB = Resources(memory_mb=1024)
H1 = Destination(host=HostName("h1"), node=NodeName("n1"))
H2 = Destination(host=HostName("h2"), node=NodeName("n1"))


async def _create(db: SqlDatabase, *instances: Instance) -> None:
    await db.instances.create_many(instances, request_id=REQ)


def _ids(instances: list[Instance]) -> list[str]:
    return [i.id for i in instances]


# ---- migrations -------------------------------------------------------------------------


def _schema_diff(conn: Connection) -> list[object]:
    context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                     "compare_server_default": True})
    return list(compare_metadata(context, metadata))


async def test_migrations_create_exactly_the_tables_module(db_url: str) -> None:
    await upgrade(db_url)  # a second run is a no-op
    engine = create_engine(db_url)
    try:
        async with engine.connect() as conn:
            diff = await conn.run_sync(_schema_diff)
    finally:
        await engine.dispose()
    assert await _version(db_url) == _head()
    assert diff == []


def _head() -> str:
    from alembic.script import ScriptDirectory

    from strato.db.migrate import alembic_config

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None
    return head


async def _version(url: str) -> str:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return str((await conn.execute(
                sa.text("SELECT version_num FROM alembic_version"))).scalar_one())
    finally:
        await engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", pytest.param("postgres",
                                                            marks=pytest.mark.postgres)])
async def test_processes_upgrading_a_fresh_database_at_once_take_turns(
        backend: str, tmp_path: Path) -> None:
    async with contextlib.AsyncExitStack() as stack:
        url = (f"sqlite+aiosqlite:///{tmp_path / 'new' / 'fresh.db'}" if backend == "sqlite"
               else await stack.enter_async_context(temporary_database("strato_test")))
        await asyncio.gather(*(upgrade(url) for _ in range(3)))
        assert await _version(url) == _head()


async def test_open_reports_unreachable_and_unsupported_databases() -> None:
    with pytest.raises(Unavailable):
        await SqlDatabase.open("postgresql+asyncpg://postgres@127.0.0.1:1/nowhere")
    with pytest.raises(Invalid):
        await SqlDatabase.open("sqlite+aiosqlite:///:memory:")


# ---- instances --------------------------------------------------------------------------


async def test_create_and_get_round_trips_every_field(db: SqlDatabase) -> None:
    launched = datetime(2024, 5, 1, 14, 0, tzinfo=timezone(timedelta(hours=2)))
    original = make_instance(display_name="web", metadata={"a": "b"}, user_data="#!",
                             config_drive=True, key_name="k", availability_zone="az1",
                             reservation_id="r-1", launch_index=2, launched_at=launched,
                             fault=Fault(code=500, message="boom", details="tb"))
    await _create(db, original)

    got = await db.instances.get(original.id)

    assert got.created_at == T0 and got.created_at.tzinfo is not None
    assert got.launched_at == launched and got.launched_at.utcoffset() == timedelta(0)
    assert got.fault == Fault(code=500, message="boom", details="tb", created_at=T0)
    assert got.flavor == original.flavor  # the snapshot, extra specs included
    expected = {**_fields(original), "created_at": T0, "launched_at": launched,
                "fault": got.fault}
    assert _fields(got) == expected


def _fields(instance: Instance) -> dict[str, object]:
    return {name: getattr(instance, name) for name in Instance.__slots__}


async def test_get_hides_other_projects_and_deleted(db: SqlDatabase) -> None:
    inst = make_instance()
    await _create(db, inst)
    with pytest.raises(NotFound):
        await db.instances.get(inst.id, project_id=ProjectId("other"))
    await db.instances.soft_delete(inst.id)
    with pytest.raises(NotFound):
        await db.instances.get(inst.id)
    assert (await db.instances.get(inst.id, include_deleted=True)).deleted


async def test_create_many_is_all_or_nothing_and_records_create_actions(
        db: SqlDatabase) -> None:
    first, second = make_instance(), make_instance()
    await _create(db, first)
    with pytest.raises(Conflict):
        await _create(db, second, first)  # `first` exists: neither is written
    with pytest.raises(NotFound):
        await db.instances.get(second.id)
    [action] = await db.actions.list(first.id)
    assert (action.action, action.request_id, action.user_id) == ("create", REQ, "u1")


async def test_list_filters(db: SqlDatabase, clock: FakeClock) -> None:
    web1 = make_instance(display_name="web-1", host=HostName("h1"), reservation_id="r-a")
    web2 = make_instance(display_name="web-2", project_id=ProjectId("p2"),
                         vm_state=VmState.ACTIVE, task_state=None)
    db1 = make_instance(display_name="db-1", reservation_id="r-a")
    await _create(db, web1, web2, db1)
    clock.advance(60)
    gone = make_instance(display_name="web-3")
    await _create(db, gone)
    await db.instances.soft_delete(gone.id)

    async def ids(**filters: object) -> set[str]:
        return set(_ids(await db.instances.list(InstanceQuery(**filters))))  # type: ignore[arg-type]

    assert await ids() == {web1.id, web2.id, db1.id}
    assert await ids(project_id=ProjectId("p1")) == {web1.id, db1.id}
    assert await ids(name=r"^web-\d$") == {web1.id, web2.id}
    assert await ids(name="eb") == {web1.id, web2.id}  # search(), not match()
    assert await ids(vm_states=(VmState.ACTIVE,)) == {web2.id}
    assert await ids(host=HostName("h1")) == {web1.id}
    assert await ids(reservation_id="r-a") == {web1.id, db1.id}
    assert await ids(include_deleted=True) == {web1.id, web2.id, db1.id, gone.id}
    # changes-since shows what changed since then, the deleted ones included.
    assert await ids(changes_since=T0 + timedelta(seconds=30)) == {gone.id}
    with pytest.raises(Invalid):
        await ids(name="(")


async def test_list_pages_newest_first_with_a_marker(db: SqlDatabase, clock: FakeClock) -> None:
    created = []
    for _ in range(3):  # two share each created_at: the uuid breaks the tie
        pair = [make_instance(), make_instance()]
        await _create(db, *pair)
        created += sorted(pair, key=lambda i: i.id, reverse=True)
        clock.advance(1)
    newest_first = [*_ids(created[4:]), *_ids(created[2:4]), *_ids(created[:2])]

    assert _ids(await db.instances.list(InstanceQuery())) == newest_first
    pages, marker = [], None
    while page := await db.instances.list(InstanceQuery(limit=4, marker=marker)):
        pages.append(_ids(page))
        marker = page[-1].id
    assert pages == [newest_first[:4], newest_first[4:]]


async def test_list_marker_must_exist_and_be_visible(db: SqlDatabase) -> None:
    other = make_instance(project_id=ProjectId("p2"))
    await _create(db, other)
    with pytest.raises(NotFound):
        await db.instances.list(InstanceQuery(marker=InstanceId(new_uuid())))
    with pytest.raises(NotFound):
        await db.instances.list(InstanceQuery(project_id=ProjectId("p1"), marker=other.id))


# ---- compare-and-swap updates -----------------------------------------------------------


async def test_update_writes_when_the_task_state_matches(db: SqlDatabase,
                                                         clock: FakeClock) -> None:
    inst = make_instance()
    await _create(db, inst)
    clock.advance(5)

    got = await db.instances.update(
        inst.id, {"task_state": None, "vm_state": VmState.ACTIVE,
                  "power_state": PowerState.RUNNING, "host": HostName("h1"),
                  "launched_at": clock.now},
        expected_task_state=(TaskState.SPAWNING, TaskState.SCHEDULING))

    assert (got.vm_state, got.task_state, got.power_state) == (
        VmState.ACTIVE, None, PowerState.RUNNING)
    assert (got.host, got.launched_at, got.updated_at) == ("h1", clock.now, clock.now)
    assert got.node is None  # absent keys are left alone
    assert await db.instances.get(inst.id) == got


async def test_update_matches_no_task_state_with_none(db: SqlDatabase) -> None:
    inst = make_instance(task_state=None)
    await _create(db, inst)
    got = await db.instances.update(inst.id, {"task_state": TaskState.DELETING},
                                    expected_task_state=(None,))
    assert got.task_state is TaskState.DELETING
    with pytest.raises(InvalidState, match="deleting"):
        await db.instances.update(inst.id, {"task_state": None}, expected_task_state=(None,))
    # None skips the check altogether.
    got = await db.instances.update(inst.id, {"task_state": None}, expected_task_state=None)
    assert got.task_state is None


async def test_update_loses_to_a_delete_in_progress(db: SqlDatabase) -> None:
    inst = make_instance(task_state=TaskState.SPAWNING)
    await _create(db, inst)
    # The user's delete wins the race and marks the instance first ...
    await db.instances.update(inst.id, {"task_state": TaskState.DELETING},
                              expected_task_state=None)
    # ... so the build's write, which expected SPAWNING, is refused and says why.
    with pytest.raises(InvalidState, match="task state deleting"):
        await db.instances.update(inst.id, {"vm_state": VmState.ACTIVE, "task_state": None},
                                  expected_task_state=(TaskState.SPAWNING,))
    assert (await db.instances.get(inst.id)).vm_state is VmState.BUILDING


async def test_update_of_a_deleted_or_unknown_instance_is_not_found(db: SqlDatabase) -> None:
    inst = make_instance()
    await _create(db, inst)
    await db.instances.soft_delete(inst.id)
    for instance_id in (inst.id, InstanceId(new_uuid())):
        with pytest.raises(NotFound):
            await db.instances.update(instance_id, {"task_state": None},
                                      expected_task_state=(TaskState.SCHEDULING,))


async def test_concurrent_updates_expecting_the_same_state_one_wins(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    inst = make_instance()
    await _create(db, inst)
    others = [await open_db(db_url, clock) for _ in range(3)]
    try:
        results = await asyncio.gather(*(
            others[n % 3].instances.update(inst.id, {"task_state": TaskState.NETWORKING},
                                           expected_task_state=(TaskState.SCHEDULING,))
            for n in range(10)), return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    assert sum(isinstance(r, Instance) for r in results) == 1
    assert sum(isinstance(r, InvalidState) for r in results) == 9


async def test_soft_delete_frees_allocations_and_is_idempotent(db: SqlDatabase,
                                                              clock: FakeClock) -> None:
    await db.nodes.report([make_capacity()])
    inst = make_instance()
    await _create(db, inst)
    assert await db.nodes.claim(inst.id, H1, Resources(vcpus=2, memory_mb=1024, disk_gb=10))

    deleted = await db.instances.soft_delete(inst.id)
    clock.advance(10)
    again = await db.instances.soft_delete(inst.id)

    assert (deleted.vm_state, deleted.task_state, deleted.deleted) == (
        VmState.DELETED, None, True)
    assert deleted.terminated_at == T0 and again == deleted
    assert await db.nodes.allocations(inst.id) == []
    [usage] = await db.nodes.usages()
    assert (usage.used, usage.instances) == (Resources(), 0)
    with pytest.raises(NotFound):
        await db.instances.soft_delete(InstanceId(new_uuid()))


# ---- nodes and claims -------------------------------------------------------------------


async def test_report_updates_totals_but_never_usage(db: SqlDatabase) -> None:
    await db.nodes.report([make_capacity(), make_capacity("h2")])
    assert await db.nodes.claim(InstanceId(new_uuid()), H1, GB)
    bigger = make_capacity(memory_mb=16384)
    await db.nodes.report([bigger])
    usages: dict[str, NodeUsage] = {u.host: u for u in await db.nodes.usages()}
    assert usages["h1"].capacity == bigger
    assert (usages["h1"].used, usages["h1"].instances) == (GB, 1)
    assert usages["h2"].used == Resources()


@pytest.mark.parametrize(("need", "fits"), [
    (Resources(vcpus=2, memory_mb=1537, disk_gb=10), True),  # exactly the limit
    (Resources(vcpus=3), False), (Resources(memory_mb=1538), False),
    (Resources(disk_gb=11), False)])
async def test_claim_respects_ratios_and_reserved(db: SqlDatabase, need: Resources,
                                                  fits: bool) -> None:
    # limit = floor(total * ratio) - reserved: vcpus 3 - 1, memory floor(1537.5), disk 12 - 2
    cap = NodeCapacity(host=HostName("h1"), node=NodeName("n1"),
                       total=Resources(vcpus=2, memory_mb=1025, disk_gb=12),
                       cpu_allocation_ratio=1.5, ram_allocation_ratio=1.5,
                       disk_allocation_ratio=1.0, reserved=Resources(vcpus=1, disk_gb=2))
    await db.nodes.report([cap])
    assert cap.limit == Resources(vcpus=2, memory_mb=1537, disk_gb=10)
    assert await db.nodes.claim(InstanceId(new_uuid()), H1, need) is fits
    [usage] = await db.nodes.usages()
    assert usage.used == (need if fits else Resources())


async def test_concurrent_claims_never_overcommit(db: SqlDatabase, db_url: str,
                                                  clock: FakeClock) -> None:
    await db.nodes.report([make_capacity(memory_mb=5 * 1024)])  # room for exactly five
    others = [await open_db(db_url, clock) for _ in range(4)]
    instance_ids = [InstanceId(new_uuid()) for _ in range(20)]
    try:
        results = await asyncio.gather(*(others[n % 4].nodes.claim(instance_id, H1, GB)
                                         for n, instance_id in enumerate(instance_ids)))
    finally:
        for other in others:
            await other.close()

    assert results.count(True) == 5
    [usage] = await db.nodes.usages()
    assert (usage.used.memory_mb, usage.instances) == (5 * 1024, 5)
    held = [i for i, ok in zip(instance_ids, results, strict=True) if ok]
    for instance_id in instance_ids:
        allocations = await db.nodes.allocations(instance_id)
        assert len(allocations) == (1 if instance_id in held else 0)


async def test_claim_moves_an_existing_allocation(db: SqlDatabase) -> None:
    await db.nodes.report([make_capacity("h1"), make_capacity("h2", memory_mb=1024)])
    inst = InstanceId(new_uuid())
    assert await db.nodes.claim(inst, H1, GB)
    assert await db.nodes.claim(inst, H1, GB)  # a re-claim on the same node: no double count

    assert await db.nodes.claim(inst, H2, GB)

    [allocation] = await db.nodes.allocations(inst)
    assert (allocation.host, allocation.node, allocation.resources) == ("h2", "n1", GB)
    used = {u.host: (u.used, u.instances) for u in await db.nodes.usages()}
    assert used == {"h1": (Resources(), 0), "h2": (GB, 1)}


async def test_failed_claim_keeps_the_old_allocation(db: SqlDatabase) -> None:
    await db.nodes.report([make_capacity("h1"), make_capacity("h2", memory_mb=512)])
    inst = InstanceId(new_uuid())
    assert await db.nodes.claim(inst, H1, GB)

    assert not await db.nodes.claim(inst, H2, GB)

    [allocation] = await db.nodes.allocations(inst)
    assert allocation.host == "h1"
    used = {u.host: u.used for u in await db.nodes.usages()}
    assert used == {"h1": GB, "h2": Resources()}
    with pytest.raises(NotFound):
        await db.nodes.claim(inst, Destination(host=HostName("nope"), node=NodeName("n1")), GB)


async def test_release_is_idempotent(db: SqlDatabase) -> None:
    await db.nodes.report([make_capacity()])
    inst = InstanceId(new_uuid())
    assert await db.nodes.claim(inst, H1, GB)
    await db.nodes.release(inst)
    await db.nodes.release(inst)
    await db.nodes.release(InstanceId(new_uuid()))
    [usage] = await db.nodes.usages()
    assert (usage.used, usage.instances) == (Resources(), 0)


# ---- services ---------------------------------------------------------------------------


async def test_heartbeat_keeps_a_service_up(db: SqlDatabase, clock: FakeClock) -> None:
    await db.nodes.report([make_capacity()])
    [usage] = await db.nodes.usages()
    assert not usage.service_up  # no compute service has reported yet

    await db.services.heartbeat(binary=COMPUTE_BINARY, host=HostName("h1"), topic="compute")
    [svc] = await db.services.list(binary=COMPUTE_BINARY)
    assert (svc.host, svc.topic, svc.last_seen, svc.is_up) == ("h1", "compute", T0, True)
    assert (await db.nodes.usages())[0].service_up

    clock.advance(61)
    assert not (await db.services.list())[0].is_up
    assert not (await db.nodes.usages())[0].service_up
    await db.services.heartbeat(binary=COMPUTE_BINARY, host=HostName("h1"), topic="compute")
    assert (await db.services.list())[0].is_up
    assert len(await db.services.list()) == 1
    assert await db.services.list(binary="strato-scheduler") == []


async def test_disable_survives_heartbeats(db: SqlDatabase) -> None:
    await db.nodes.report([make_capacity()])
    await db.services.heartbeat(binary=COMPUTE_BINARY, host=HostName("h1"), topic="compute")
    [svc] = await db.services.list()

    disabled = await db.services.set_disabled(svc.id, True, "maintenance")
    await db.services.heartbeat(binary=COMPUTE_BINARY, host=HostName("h1"), topic="compute")

    assert (disabled.disabled, disabled.disabled_reason) == (True, "maintenance")
    [usage] = await db.nodes.usages()
    assert (usage.service_disabled, usage.disabled_reason) == (True, "maintenance")
    enabled = await db.services.set_disabled(svc.id, False)
    assert (enabled.disabled, enabled.disabled_reason) == (False, None)
    with pytest.raises(NotFound):
        await db.services.set_disabled(svc.id + 100, True)


# ---- flavors and images -----------------------------------------------------------------


async def test_flavor_crud(db: SqlDatabase) -> None:
    tiny = make_flavor(extra_specs={"hw:numa_nodes": "1"})
    big = make_flavor(id=FlavorId("2"), name="m1.big", memory_mb=4096, root_gb=40)
    hidden = make_flavor(id=FlavorId("3"), name="secret", is_public=False)
    for flavor in (big, tiny, hidden):
        assert await db.flavors.create(flavor) == flavor

    assert await db.flavors.get(FlavorId("1")) == tiny
    assert await db.flavors.list() == [tiny, big]
    assert await db.flavors.list(include_private=True) == [tiny, big, hidden]
    assert await db.flavors.list(min_ram=1024, min_disk=10) == [big]
    assert await db.flavors.list(include_private=True, marker=FlavorId("1"), limit=1) == [big]
    with pytest.raises(NotFound):
        await db.flavors.list(marker=FlavorId("nope"))

    await db.flavors.delete(FlavorId("1"))
    with pytest.raises(NotFound):
        await db.flavors.get(FlavorId("1"))
    with pytest.raises(NotFound):
        await db.flavors.delete(FlavorId("1"))
    assert await db.flavors.create(tiny) == tiny  # its extra specs went with it


async def test_duplicate_flavor_id_or_name_conflicts(db: SqlDatabase) -> None:
    await db.flavors.create(make_flavor())
    with pytest.raises(Conflict):
        await db.flavors.create(make_flavor(name="other"))
    with pytest.raises(Conflict):
        await db.flavors.create(make_flavor(id=FlavorId("9")))
    assert await db.flavors.list() == [make_flavor()]


def _image(name: str | None, owner: str = "p1", **fields: object) -> Image:
    return Image(id=ImageId(new_uuid()), name=name, owner=ProjectId(owner),
                 **fields)  # type: ignore[arg-type]


async def test_images(db: SqlDatabase, clock: FakeClock) -> None:
    mine = await db.images.create(_image("mine", visibility="private", tags=("b", "a"),
                                         properties={"os_distro": "debian"}))
    clock.advance(1)
    public = await db.images.create(_image("pub", "p2", visibility="public"))
    clock.advance(1)
    theirs = await db.images.create(_image("theirs", "p2", visibility="private"))
    with pytest.raises(Conflict):
        await db.images.create(mine)

    assert mine.created_at == T0 and mine.tags == ("a", "b")
    assert await db.images.get(mine.id) == mine
    assert await db.images.list(ImageQuery()) == [theirs, public, mine]
    assert await db.images.list(ImageQuery(viewer=ProjectId("p1"))) == [public, mine]
    assert await db.images.list(ImageQuery(marker=public.id)) == [mine]

    clock.advance(1)
    with pytest.raises(InvalidState, match="queued"):
        await db.images.activate(mine.id, ImageData(size=1, checksum="c", os_hash_value="h",
                                                    virtual_size=None))
    saving = await db.images.set_status(mine.id, ImageStatus.SAVING,
                                        expected=(ImageStatus.QUEUED,))
    assert (saving.status, saving.updated_at, saving.tags) == (
        ImageStatus.SAVING, clock.now, ("a", "b"))
    active = await db.images.activate(mine.id, ImageData(
        size=42, checksum="abc", os_hash_value="f" * 128, virtual_size=1024))
    assert (active.status, active.size, active.checksum, active.os_hash_algo,
            active.os_hash_value, active.virtual_size) == (
        ImageStatus.ACTIVE, 42, "abc", "sha512", "f" * 128, 1024)
    with pytest.raises(InvalidState, match="active"):
        await db.images.set_status(mine.id, ImageStatus.SAVING,
                                   expected=(ImageStatus.QUEUED,))
    await db.images.delete(mine.id)
    with pytest.raises(NotFound):
        await db.images.get(mine.id)
    with pytest.raises(NotFound):
        await db.images.delete(mine.id)


async def test_image_update_checks_the_status(db: SqlDatabase, clock: FakeClock) -> None:
    image = await db.images.create(_image("old", tags=("x",)))
    clock.advance(5)
    changed = replace(image, name="new", min_ram=64, os_hidden=True, protected=True,
                      properties={"a": "b"}, tags=("y", "z"), owner=ProjectId("p9"))
    updated = await db.images.update(changed, expected=ImageStatus.QUEUED)
    assert updated == replace(changed, updated_at=clock.now)
    assert await db.images.get(image.id) == updated
    with pytest.raises(InvalidState, match="queued"):
        await db.images.update(changed, expected=ImageStatus.ACTIVE)
    # Data columns are not the metadata update's to write.
    sneaky = replace(changed, status=ImageStatus.ACTIVE, size=5, checksum="x")
    kept = await db.images.update(sneaky, expected=ImageStatus.QUEUED)
    assert (kept.status, kept.size, kept.checksum) == (ImageStatus.QUEUED, None, None)
    with pytest.raises(NotFound):
        await db.images.update(replace(image, id=ImageId(new_uuid())),
                               expected=ImageStatus.QUEUED)


async def test_image_tags(db: SqlDatabase) -> None:
    image = await db.images.create(_image("t"))
    await db.images.add_tag(image.id, "b", max_tags=2)
    await db.images.add_tag(image.id, "a", max_tags=2)
    await db.images.add_tag(image.id, "a", max_tags=2)  # idempotent, even when full
    with pytest.raises(OverQuota):
        await db.images.add_tag(image.id, "c", max_tags=2)
    assert (await db.images.get(image.id)).tags == ("a", "b")
    await db.images.remove_tag(image.id, "a")
    with pytest.raises(NotFound):
        await db.images.remove_tag(image.id, "a")
    with pytest.raises(NotFound):
        await db.images.add_tag(ImageId(new_uuid()), "a", max_tags=2)
    assert (await db.images.get(image.id)).tags == ("b",)


async def test_image_members(db: SqlDatabase, clock: FakeClock) -> None:
    image = await db.images.create(_image("s", visibility="shared"))
    first = await db.images.add_member(ImageMember(image_id=image.id,
                                                   member_id=ProjectId("p2")))
    assert (first.status, first.created_at) == (MemberStatus.PENDING, T0)
    clock.advance(1)
    await db.images.add_member(ImageMember(image_id=image.id, member_id=ProjectId("p3")))
    with pytest.raises(Conflict):
        await db.images.add_member(ImageMember(image_id=image.id, member_id=ProjectId("p2")))
    clock.advance(1)
    accepted = await db.images.set_member_status(image.id, ProjectId("p2"),
                                                 MemberStatus.ACCEPTED)
    assert (accepted.status, accepted.updated_at) == (MemberStatus.ACCEPTED, clock.now)
    assert await db.images.get_member(image.id, ProjectId("p2")) == accepted
    assert [m.member_id for m in await db.images.list_members(image.id)] == ["p2", "p3"]
    await db.images.remove_member(image.id, ProjectId("p3"))
    for call in (db.images.remove_member(image.id, ProjectId("p3")),
                 db.images.get_member(image.id, ProjectId("p3")),
                 db.images.set_member_status(image.id, ProjectId("p3"), MemberStatus.ACCEPTED)):
        with pytest.raises(NotFound):
            await call
    await db.images.delete(image.id)  # members and tags go with the image
    assert await db.images.list_members(image.id) == []


async def test_image_list_visibility(db: SqlDatabase, clock: FakeClock) -> None:
    made = {}
    for name, owner, visibility in [("own", "p1", "private"), ("pub", "p2", "public"),
                                    ("com", "p2", "community"), ("priv", "p2", "private"),
                                    ("acc", "p2", "shared"), ("pend", "p2", "shared"),
                                    ("unshared", "p2", "shared")]:
        clock.advance(1)
        made[name] = await db.images.create(_image(name, owner, visibility=visibility))
    for name, status in (("acc", MemberStatus.ACCEPTED), ("pend", MemberStatus.PENDING)):
        await db.images.add_member(ImageMember(image_id=made[name].id,
                                               member_id=ProjectId("p1"), status=status))

    async def names(**query: object) -> list[str]:
        found = await db.images.list(ImageQuery(viewer=ProjectId("p1"), **query))  # type: ignore[arg-type]
        return sorted(i.name or "" for i in found)

    assert await names() == ["acc", "own", "pub"]
    assert await names(member_status=MemberStatus.PENDING) == ["own", "pend", "pub"]
    assert await names(member_status=None) == ["acc", "own", "pend", "pub"]
    assert await names(visibility="all") == ["acc", "com", "own", "pub"]
    assert await names(visibility="community") == ["com"]
    assert await names(visibility="shared") == ["acc"]
    assert await names(visibility="private") == ["own"]
    assert await names(visibility="public") == ["pub"]
    admin = await db.images.list(ImageQuery(visibility="shared"))
    assert sorted(i.name or "" for i in admin) == ["acc", "pend", "unshared"]
    with pytest.raises(NotFound):  # a marker the viewer cannot see
        await db.images.list(ImageQuery(viewer=ProjectId("p1"), marker=made["priv"].id))


async def test_image_list_filters_and_sorts(db: SqlDatabase, clock: FakeClock) -> None:
    images = []
    for n, (name, size, tags) in enumerate([("b", 30, ("x", "y")), (None, None, ("x",)),
                                            ("a", 10, ()), ("b", 20, ("y",))]):
        clock.advance(1)
        image = await db.images.create(_image(name, properties={"n": str(n)}, tags=tags,
                                              os_hidden=n == 2))
        if size is not None:
            await db.images.set_status(image.id, ImageStatus.ACTIVE, size=size)
        images.append(image.id)
    b30, unnamed, a10, b20 = images

    async def ids(**query: object) -> list[ImageId]:
        return [i.id for i in await db.images.list(ImageQuery(os_hidden=None, **query))]  # type: ignore[arg-type]

    assert await ids(tags=("x",)) == [unnamed, b30]
    assert await ids(tags=("x", "y")) == [b30]
    assert await ids(properties=(("n", "3"),)) == [b20]
    assert await ids(name="b", size_min=25) == [b30]
    assert await ids(size_max=20) == [b20, a10]
    assert await db.images.list(ImageQuery()) == [await db.images.get(i)
                                                  for i in (b20, unnamed, b30)]
    by_name = (ImageSort(key="name", ascending=True), ImageSort(key="size"))
    assert await ids(sort=by_name) == [unnamed, a10, b30, b20]
    # Every page boundary of every sort lands on one position: nothing lost or repeated.
    for sort in (by_name, (ImageSort(key="size", ascending=True),),
                 (ImageSort(key="name"), ImageSort(key="id", ascending=True))):
        expected = await ids(sort=sort)
        seen: list[ImageId] = []
        marker: ImageId | None = None
        while page := await ids(sort=sort, limit=1, marker=marker):
            seen += page
            marker = page[-1]
        assert seen == expected, sort


# ---- actions ----------------------------------------------------------------------------


async def test_actions_and_events(db: SqlDatabase, clock: FakeClock) -> None:
    inst = make_instance()
    await _create(db, inst)
    clock.advance(1)
    await db.actions.start_event(instance_id=inst.id, request_id=REQ,
                                 event="compute_build", host=HostName("h1"))
    clock.advance(1)
    await db.actions.start_event(instance_id=inst.id, request_id=REQ, event="spawn")
    clock.advance(1)
    await db.actions.finish_event(instance_id=inst.id, request_id=REQ, event="spawn",
                                  result=EventResult.ERROR, traceback="Traceback ...")
    await db.actions.finish_event(instance_id=inst.id, request_id=REQ,
                                  event="compute_build", result=EventResult.SUCCESS)
    clock.advance(1)
    await db.actions.start_action(instance_id=inst.id, action="delete",
                                  request_id=RequestId("req-2"), user_id=UserId("u2"),
                                  project_id=ProjectId("p1"))

    delete, create = await db.actions.list(inst.id)
    assert (delete.action, delete.message, delete.events) == ("delete", None, ())
    assert (create.action, create.message, create.start_time) == ("create", "Error", T0)
    build, spawn = create.events
    assert (build.event, build.host, build.result) == ("compute_build", "h1",
                                                       EventResult.SUCCESS)
    assert (spawn.event, spawn.result, spawn.traceback) == ("spawn", EventResult.ERROR,
                                                           "Traceback ...")
    assert spawn.start_time == T0 + timedelta(seconds=2)
    assert spawn.finish_time == T0 + timedelta(seconds=3)
    assert await db.actions.get(inst.id, REQ) == create


async def test_action_lookups_of_unknown_things_are_not_found(db: SqlDatabase) -> None:
    inst = make_instance()
    await _create(db, inst)
    with pytest.raises(NotFound):
        await db.actions.get(inst.id, RequestId("req-x"))
    with pytest.raises(NotFound):
        await db.actions.start_event(instance_id=inst.id, request_id=RequestId("req-x"),
                                     event="spawn")
    with pytest.raises(NotFound):
        await db.actions.finish_event(instance_id=inst.id, request_id=REQ,
                                      event="never-started", result=EventResult.SUCCESS)
    with pytest.raises(NotFound):
        await db.actions.start_action(instance_id=InstanceId(new_uuid()), action="reboot",
                                      request_id=REQ, user_id=UserId("u1"),
                                      project_id=ProjectId("p1"))
