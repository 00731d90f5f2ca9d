"""Notifications on every bus transport: what a compute publishes reaches a consumer on
another connection (RabbitMQ's fan-out exchange, or the in-process bus), and a bus that
cannot take a notification does not fail the work that sent it."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from strato.compute.notify import ERROR_TOPIC, INFO_TOPIC, Notification, Notifier, Phase
from strato.domain.context import RequestContext
from strato.domain.errors import Unavailable
from strato.domain.ids import FlavorId, HostName, ImageId, InstanceId, ProjectId, RequestId, UserId
from strato.domain.instances import Fault, Instance, VmState
from strato.domain.resources import Flavor
from strato.rpc.bus import Bus
from tests.fakes.bus import RecordingBus

pytest_plugins = ("tests.bus_fixtures",)

CTX = RequestContext(request_id=RequestId("req-notify"), user_id=UserId("alice"),
                     project_id=ProjectId("p1"))
INSTANCE = Instance(id=InstanceId("4d9e3c52-1f0a-4d5e-9d5b-7f1d7c0a9b11"), display_name="vm",
                    project_id=ProjectId("p1"), user_id=UserId("alice"),
                    image_ref=ImageId("img"), host=HostName("h1"),
                    flavor=Flavor(id=FlavorId("1"), name="m1.tiny", vcpus=1, memory_mb=512,
                                  root_gb=1))


async def test_notifications_reach_a_consumer_on_another_connection(bus: Bus,
                                                                    peer: Bus) -> None:
    heard: list[tuple[str, Notification, str]] = []
    arrived = asyncio.Event()

    def on(topic: str) -> Any:
        async def handler(ctx: RequestContext, note: Notification) -> None:
            heard.append((topic, note, ctx.request_id))
            if len(heard) == 2:
                arrived.set()
        return handler

    subs = [await peer.subscribe(topic, {Notification: on(topic)})
            for topic in (INFO_TOPIC, ERROR_TOPIC)]
    try:
        notifier = Notifier(bus, HostName("h1"))
        await notifier.create_end(CTX, INSTANCE)
        fault = Fault(code=500, message="boom")
        await notifier.instance_action(CTX, "create", Phase.ERROR,
                                       replace(INSTANCE, vm_state=VmState.ERROR), fault=fault)
        async with asyncio.timeout(10):
            await arrived.wait()
    finally:
        for sub in subs:
            await sub.stop()
    by_topic = {topic: (note, request_id) for topic, note, request_id in heard}
    info, info_request = by_topic[INFO_TOPIC]
    assert (info.event_type, info.priority, info.publisher_id) == (
        "instance.create.end", "INFO", "compute:h1")
    assert info.payload["nova_object.data"]["uuid"] == INSTANCE.id
    assert info_request == "req-notify"
    error, _ = by_topic[ERROR_TOPIC]
    assert (error.event_type, error.priority) == ("instance.create.error", "ERROR")
    assert error.payload["nova_object.data"]["state"] == "error"
    assert error.payload["nova_object.data"]["fault"]["message"] == "boom"


async def test_a_bus_that_cannot_publish_does_not_fail_the_sender() -> None:
    notifier = Notifier(RecordingBus(fail_with=Unavailable("broker down")), HostName("h1"))
    await notifier.create_end(CTX, INSTANCE)  # logged, not raised
