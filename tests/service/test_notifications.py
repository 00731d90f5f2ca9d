"""Versioned notifications, heard as an external consumer hears them: by subscribing to
``notifications.info`` and ``notifications.error`` on the bus with a handler for the
message kind ``Notification``, using nothing of strato but the bus."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strato.domain.context import RequestContext
from strato.rpc.bus import Bus
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """The consumer's own idea of the message: only the kind name and fields matter."""

    event_type: str
    publisher_id: str
    priority: str
    timestamp: str
    payload: dict[str, Any]
    message_id: str


@dataclass
class Heard:
    topic: str
    note: Notification
    request_id: str

    @property
    def data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.note.payload["nova_object.data"]
        return data


class Listener:
    def __init__(self) -> None:
        self.heard: list[Heard] = []

    def handler(self, topic: str) -> Any:
        async def on_notification(ctx: RequestContext, note: Notification) -> None:
            self.heard.append(Heard(topic, note, ctx.request_id))
        return on_notification

    def about(self, server_id: str) -> list[Heard]:
        return [h for h in self.heard if h.data["uuid"] == server_id]

    def events(self, server_id: str) -> list[str]:
        return [h.note.event_type for h in self.about(server_id)]

    async def wait_for(self, server_id: str, event_type: str) -> Heard:
        async def arrived() -> bool:
            return event_type in self.events(server_id)
        await wait_until(arrived, timeout=10)
        return next(h for h in self.about(server_id) if h.note.event_type == event_type)


@asynccontextmanager
async def listening(bus: Bus) -> AsyncIterator[Listener]:
    listener = Listener()
    subs = [await bus.subscribe(topic, {Notification: listener.handler(topic)})
            for topic in ("notifications.info", "notifications.error")]
    try:
        yield listener
    finally:
        for sub in subs:
            await sub.stop()


async def _create(h: Harness, name: str) -> tuple[str, str]:
    resp = await h.client.request("POST", "/v2.1/servers", json={"server": {
        "name": name, "imageRef": h.image_id, "flavorRef": h.flavors["m1.tiny"]}})
    return resp.json()["server"]["id"], resp.headers["x-openstack-request-id"]


def _check_envelope(heard: Heard, *, event_type: str, topic: str, priority: str,
                    host: str = "h1") -> None:
    note = heard.note
    assert (note.event_type, heard.topic, note.priority) == (event_type, topic, priority)
    assert note.publisher_id == f"compute:{host}"
    assert note.timestamp and note.message_id
    assert note.payload["nova_object.name"] == "InstanceActionPayload"
    assert note.payload["nova_object.version"] == "1.0"


async def test_successful_build_then_delete(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h, \
            listening(h.cloud.bus) as listener:
        server_id, request_id = await _create(h, "noisy")
        await h.client.wait_for_status(server_id, {"ACTIVE"})
        end = await listener.wait_for(server_id, "instance.create.end")
        assert listener.events(server_id) == ["instance.create.start", "instance.create.end"]
        start = listener.about(server_id)[0]
        _check_envelope(start, event_type="instance.create.start",
                        topic="notifications.info", priority="INFO")
        _check_envelope(end, event_type="instance.create.end",
                        topic="notifications.info", priority="INFO")
        assert (start.data["state"], start.data["task_state"],
                start.data["power_state"]) == ("building", "scheduling", "pending")
        data = end.data
        assert (data["uuid"], data["display_name"], data["host"], data["node"]) == (
            server_id, "noisy", "h1", "h1")
        assert (data["state"], data["task_state"], data["power_state"]) == (
            "active", None, "running")
        assert data["image_uuid"] == h.image_id and data["fault"] is None
        assert data["flavor"]["name"] == "m1.tiny" and data["flavor"]["memory_mb"] == 512
        assert data["request_id"] == request_id and end.request_id == request_id
        assert data["launched_at"] is not None

        resp = await h.client.request("DELETE", f"/v2.1/servers/{server_id}")
        delete_request = resp.headers["x-openstack-request-id"]
        deleted = await listener.wait_for(server_id, "instance.delete.end")
        assert listener.events(server_id)[2:] == ["instance.delete.start",
                                                  "instance.delete.end"]
        before = listener.about(server_id)[2]
        _check_envelope(before, event_type="instance.delete.start",
                        topic="notifications.info", priority="INFO")
        assert (before.data["state"], before.data["task_state"]) == ("active", "deleting")
        assert (deleted.data["state"], deleted.data["task_state"],
                deleted.data["power_state"]) == ("deleted", None, "pending")
        assert deleted.data["terminated_at"] is not None
        assert deleted.data["request_id"] == delete_request
        # Only INFO: nothing went wrong.
        assert {h.topic for h in listener.heard} == {"notifications.info"}


async def test_failed_build_sends_an_error_with_its_fault(tmp_path: Path) -> None:
    hosts = fake_hosts(1, fail_names=frozenset({"broken"}), fail_retryable=False)
    async with running_cloud(tmp_path, hosts) as h, listening(h.cloud.bus) as listener:
        server_id, request_id = await _create(h, "broken")
        await h.client.wait_for_status(server_id, {"ERROR"})
        error = await listener.wait_for(server_id, "instance.create.error")
        assert listener.events(server_id) == ["instance.create.start",
                                              "instance.create.error"]
        _check_envelope(error, event_type="instance.create.error",
                        topic="notifications.error", priority="ERROR")
        assert (error.data["state"], error.data["task_state"]) == ("error", None)
        fault = error.data["fault"]
        assert fault["code"] == 500 and "injected spawn failure" in fault["message"]
        assert error.data["request_id"] == request_id


async def test_rescheduled_build_sends_an_error_per_failed_host(tmp_path: Path) -> None:
    # Equal hosts tie on free RAM and ties go by name: bad1 is tried first, and fails.
    hosts = fake_hosts(1, prefix="bad", fail_names=frozenset({"flaky"})) + fake_hosts(1)
    async with running_cloud(tmp_path, hosts) as h, listening(h.cloud.bus) as listener:
        server_id, _ = await _create(h, "flaky")
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ACTIVE" and server.host == "h1"
        await listener.wait_for(server_id, "instance.create.end")
        assert [(x.note.event_type, x.note.publisher_id)
                for x in listener.about(server_id)] == [
            ("instance.create.start", "compute:bad1"),
            ("instance.create.error", "compute:bad1"),
            ("instance.create.start", "compute:h1"),
            ("instance.create.end", "compute:h1")]
        error = listener.about(server_id)[1]
        # Not the end of the build: it goes back to scheduling, elsewhere.
        assert (error.data["state"], error.data["task_state"]) == ("building", "scheduling")
        assert "injected spawn failure" in error.data["fault"]["message"]


async def test_a_dead_listener_does_not_hold_builds_up(tmp_path: Path) -> None:
    # Nobody listens: notifications are dropped by the bus and builds go on.
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        ids = await asyncio.gather(*(_create(h, f"quiet-{i}") for i in range(3)))
        for server_id, _ in ids:
            await h.client.wait_for_status(server_id, {"ACTIVE"})
