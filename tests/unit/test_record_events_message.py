"""``RecordEvents`` (a compute's timed build steps, one cast per build try) survives the
wire: JSON in the envelope, no pickle, times still aware and in UTC."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from strato.domain.actions import EventResult, TimedEvent
from strato.domain.context import RequestContext
from strato.domain.ids import HostName, InstanceId, RequestId
from strato.rpc.contracts.conductor import RecordEvents
from strato.rpc.messages import Envelope, decode_body

T0 = datetime(2026, 11, 23, 12, 0, 0, 123456, tzinfo=UTC)


def test_record_events_round_trips_through_the_envelope() -> None:
    msg = RecordEvents(
        instance_id=InstanceId("7b1c7f4e-0000-4000-8000-000000000001"),
        request_id=RequestId("req-1"),
        events=(
            TimedEvent(event="compute_claim_resources", start_time=T0,
                       finish_time=T0 + timedelta(milliseconds=3),
                       result=EventResult.SUCCESS, host=HostName("h1")),
            TimedEvent(event="compute_spawn", start_time=T0 + timedelta(seconds=1),
                       finish_time=T0 + timedelta(seconds=2), result=EventResult.ERROR,
                       traceback="injected spawn failure", host=HostName("h1")),
        ))
    raw = Envelope.wrap(msg, ctx=RequestContext(request_id=RequestId("req-1"))).to_bytes()
    json.loads(raw)  # plain JSON on the wire
    envelope = Envelope.from_bytes(raw)
    assert envelope.kind == "RecordEvents"
    back = decode_body(RecordEvents, envelope.body)
    assert back == msg
    assert all(e.start_time.utcoffset() == timedelta(0) for e in back.events)
    assert back.events[1].result is EventResult.ERROR
