"""Instance-action events timed elsewhere and recorded after the fact (a compute's build
steps), and what a scheduling event keeps: its host, ``details`` and ``alternates``; on
each backend. Also the conductor's handler, which skips an action that is gone."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

from datetime import timedelta, timezone

import pytest

from strato.conductor.service import record_events
from strato.db.sql import SqlDatabase
from strato.domain.actions import EventResult, TimedEvent
from strato.domain.context import RequestContext
from strato.domain.errors import NotFound
from strato.domain.ids import HostName, InstanceId, RequestId, new_uuid
from strato.rpc.contracts.conductor import RecordEvents
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    T0,
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    make_instance,
    pg_url,
)

REQ = RequestId("req-1")
H1 = HostName("h1")


def _step(name: str, start: float, finish: float, *,
          error: str | None = None) -> TimedEvent:
    return TimedEvent(event=name, start_time=T0 + timedelta(seconds=start),
                      finish_time=T0 + timedelta(seconds=finish),
                      result=EventResult.SUCCESS if error is None else EventResult.ERROR,
                      traceback=error, host=H1)


async def test_recorded_events_keep_their_own_times_in_start_order(
        db: SqlDatabase, clock: FakeClock) -> None:
    inst = make_instance()
    await db.instances.create_many([inst], request_id=REQ)
    await db.actions.start_event(instance_id=inst.id, request_id=REQ, event="build", host=H1)
    # Recorded in the order they finished; listed in the order they started. A time in
    # another zone is the same instant in UTC.
    late = _step("image", 1.5, 3)
    early = _step("networks", 1, 2)
    paris = timezone(timedelta(hours=1))
    await db.actions.record_events(instance_id=inst.id, request_id=REQ, events=[
        _step("claim", 0.5, 1),
        early,
        TimedEvent(event=late.event, start_time=late.start_time.astimezone(paris),
                   finish_time=late.finish_time.astimezone(paris), result=late.result,
                   host=H1),
    ])
    [create] = await db.actions.list(inst.id)
    assert create.message is None
    build, claim, networks, image = create.events
    assert (build.event, build.finish_time) == ("build", None)
    assert (claim.event, networks.event, image.event) == ("claim", "networks", "image")
    assert (networks.start_time, networks.finish_time) == (early.start_time,
                                                           early.finish_time)
    assert (image.start_time, image.finish_time) == (late.start_time, late.finish_time)
    assert image.start_time.utcoffset() == timedelta(0)
    assert all((e.result, e.host, e.traceback, e.details, e.alternates)
               == (EventResult.SUCCESS, "h1", None, None, ()) for e in create.events[1:])
    # Nothing to record is no write at all.
    await db.actions.record_events(instance_id=inst.id, request_id=REQ, events=[])
    assert len((await db.actions.get(inst.id, REQ)).events) == 4


async def test_a_recorded_error_marks_the_action(db: SqlDatabase) -> None:
    inst = make_instance()
    await db.instances.create_many([inst], request_id=REQ)
    await db.actions.record_events(instance_id=inst.id, request_id=REQ, events=[
        _step("claim", 0, 1), _step("spawn", 1, 2, error="boom")])
    create = await db.actions.get(inst.id, REQ)
    assert create.message == "Error"
    assert [(e.event, e.result, e.traceback) for e in create.events] == [
        ("claim", EventResult.SUCCESS, None), ("spawn", EventResult.ERROR, "boom")]


async def test_finish_event_keeps_host_details_and_alternates(db: SqlDatabase) -> None:
    inst = make_instance()
    await db.instances.create_many([inst], request_id=REQ)
    for _ in range(2):
        await db.actions.start_event(instance_id=inst.id, request_id=REQ, event="schedule")
    await db.actions.finish_event(instance_id=inst.id, request_id=REQ, event="schedule",
                                  result=EventResult.SUCCESS, host=H1,
                                  details="placed on a host; 2 alternate hosts kept",
                                  alternates=[HostName("h2"), HostName("h3")])
    await db.actions.finish_event(instance_id=inst.id, request_id=REQ, event="schedule",
                                  result=EventResult.ERROR, traceback="no room")
    first, second = (await db.actions.get(inst.id, REQ)).events
    # The newest open one was closed first.
    assert (second.host, second.details, second.alternates) == (
        "h1", "placed on a host; 2 alternate hosts kept", ("h2", "h3"))
    assert (first.host, first.details, first.alternates, first.traceback) == (
        None, None, (), "no room")


async def test_recording_under_an_unknown_action_is_not_found(db: SqlDatabase) -> None:
    inst = make_instance()
    await db.instances.create_many([inst], request_id=REQ)
    with pytest.raises(NotFound):
        await db.actions.record_events(instance_id=inst.id, request_id=RequestId("req-x"),
                                       events=[_step("claim", 0, 1)])
    assert (await db.actions.get(inst.id, REQ)).events == ()


async def test_the_conductor_skips_events_of_an_action_that_is_gone(db: SqlDatabase) -> None:
    gone = RecordEvents(instance_id=InstanceId(new_uuid()), request_id=REQ,
                        events=(_step("claim", 0, 1),))
    await record_events(RequestContext(), gone, db=db)  # no error
    inst = make_instance()
    await db.instances.create_many([inst], request_id=REQ)
    await record_events(RequestContext(), RecordEvents(
        instance_id=inst.id, request_id=REQ, events=(_step("claim", 0, 1),)), db=db)
    assert [e.event for e in (await db.actions.get(inst.id, REQ)).events] == ["claim"]
