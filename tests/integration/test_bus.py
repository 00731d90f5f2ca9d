"""One suite for every bus transport: each test runs unchanged on ``LocalBus`` and on
``AmqpBus`` (against a throw-away RabbitMQ vhost), so both keep the same semantics."""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from strato.domain.context import RequestContext
from strato.domain.errors import (
    Invalid,
    InvalidState,
    NotFound,
    NoValidHost,
    StratoError,
    Unavailable,
    error_from_wire,
)
from strato.domain.ids import (
    FlavorId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    RequestId,
    ReservationId,
    UserId,
)
from strato.domain.images import Image, ImageStatus
from strato.domain.requests import (
    BootRequest,
    Destination,
    RetryInfo,
    SchedulerHints,
    Selection,
)
from strato.domain.resources import Flavor
from strato.log import current_context
from strato.rpc.amqp import AmqpBus
from strato.rpc.bus import Bus, HandlerTable, Target
from strato.rpc.local import LocalBus
from strato.rpc.transport import open_bus

# The fixtures (bus, peer, topic, rabbitmq_url) are registered as a plugin, not imported:
# imported fixture names would clash with the test parameters that request them.
pytest_plugins = ("tests.bus_fixtures",)

CTX = RequestContext(request_id=RequestId("req-bus-test"), user_id=UserId("alice"),
                     project_id=ProjectId("p1"), roles=("member", "reader"))
SHORT = 0.3  # seconds: a call timeout that expires quickly, but not spuriously


class Recorder:
    """What handlers saw, in arrival order; tests wait on it instead of sleeping."""

    def __init__(self) -> None:
        self.items: list[Any] = []
        self._changed = asyncio.Event()

    def add(self, item: Any) -> None:
        self.items.append(item)
        self._changed.set()

    async def wait_for(self, count: int, *, within: float = 5.0) -> list[Any]:
        """The items, once there are at least ``count`` of them."""
        async with asyncio.timeout(within):
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()
        return self.items


# -- messages ---------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class Echo:
    request: BootRequest


@dataclass(frozen=True, slots=True, kw_only=True)
class Select:
    requests: tuple[BootRequest, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail:
    error: str
    message: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Crash:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Note:
    n: int


@dataclass(frozen=True, slots=True, kw_only=True)
class WhoAmI:
    pass


@dataclass(frozen=True, slots=True, kw_only=True)
class Hold:
    n: int


class Server:
    """Handlers for one named server; what they handle lands in ``seen``.

    ``Hold`` handlers wait for ``gate``, so a test controls how long they stay in flight.
    """

    def __init__(self, name: str, seen: Recorder | None = None) -> None:
        self.name = name
        self.seen = seen or Recorder()
        self.gate = asyncio.Event()
        self.running = 0
        self.most_running = 0
        self.finished = 0

    def table(self) -> HandlerTable:
        return {Echo: self.echo, Select: self.select, Fail: self.fail, Crash: self.crash,
                Note: self.note, WhoAmI: self.who_am_i, Hold: self.hold}

    async def echo(self, ctx: RequestContext, message: Echo) -> BootRequest:
        return message.request

    async def select(self, ctx: RequestContext, message: Select) -> list[Selection]:
        return [_selection(req) for req in message.requests]

    async def fail(self, ctx: RequestContext, message: Fail) -> None:
        raise error_from_wire({"type": message.error, "message": message.message})

    async def crash(self, ctx: RequestContext, message: Crash) -> None:
        raise ValueError("a bug, not a domain error")

    async def note(self, ctx: RequestContext, message: Note) -> None:
        self.seen.add((self.name, message.n, ctx, current_context()))

    async def who_am_i(self, ctx: RequestContext, message: WhoAmI) -> str:
        return self.name

    async def hold(self, ctx: RequestContext, message: Hold) -> None:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        self.seen.add(message.n)
        try:
            # Bounded, so a failing test ends instead of hanging in the bus's close().
            async with asyncio.timeout(5.0):
                await self.gate.wait()
        finally:
            self.running -= 1
            self.finished += 1


def _boot_request(index: int = 0) -> BootRequest:
    created = datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
    return BootRequest(
        instance_id=InstanceId(f"inst-{index}"), project_id=ProjectId("p1"),
        user_id=UserId("alice"), name=f"vm-{index}", reservation_id=ReservationId("r-1"),
        flavor=Flavor(id=FlavorId("1"), name="m1.small", vcpus=1, memory_mb=2048, root_gb=20,
                      extra_specs={"hw:cpu_policy": "shared"}),
        image=Image(id=ImageId("img-1"), name="cirros", status=ImageStatus.ACTIVE,
                    created_at=created, properties={"os_distro": "cirros"}),
        launch_index=index, metadata={"role": "web"},
        hints=SchedulerHints(availability_zone="nova"),
        retry=RetryInfo(attempts=2, hosts=(HostName("h1"),), last_error="disk full"),
    )


def _selection(req: BootRequest) -> Selection:
    return Selection(instance_id=req.instance_id,
                     chosen=Destination(host=HostName("h2"), node=NodeName("h2")),
                     alternates=(Destination(host=HostName("h3"), node=NodeName("h3")),))


# -- call --------------------------------------------------------------------------------

async def test_call_returns_the_typed_result(bus: Bus, peer: Bus, topic: str) -> None:
    await peer.serve(Target(topic), Server("s").table())
    sent = _boot_request()

    got = await bus.call(Target(topic), Echo(request=sent), ctx=CTX, returns=BootRequest)

    assert got == sent
    assert type(got.image.status) is ImageStatus
    assert got.image.created_at == sent.image.created_at
    assert got.retry.hosts == ("h1",) and isinstance(got.retry.hosts, tuple)


async def test_call_returns_a_list_of_nested_dataclasses(bus: Bus, peer: Bus, topic: str) -> None:
    await peer.serve(Target(topic), Server("s").table())
    requests = (_boot_request(0), _boot_request(1))

    got = await bus.call(Target(topic), Select(requests=requests), ctx=CTX,
                         returns=list[Selection])

    assert got == [_selection(req) for req in requests]
    assert all(isinstance(sel.chosen, Destination) for sel in got)


@pytest.mark.parametrize("error", [NotFound, NoValidHost, InvalidState, Invalid])
async def test_call_raises_the_handlers_domain_error(
        bus: Bus, peer: Bus, topic: str, error: type[StratoError]) -> None:
    await peer.serve(Target(topic), Server("s").table())

    with pytest.raises(error) as caught:
        await bus.call(Target(topic), Fail(error=error.__name__, message="why it failed"),
                       ctx=CTX)

    assert type(caught.value) is error
    assert str(caught.value) == "why it failed"


async def test_unexpected_exception_arrives_as_plain_strato_error(
        bus: Bus, peer: Bus, topic: str) -> None:
    await peer.serve(Target(topic), Server("s").table())

    with pytest.raises(StratoError) as caught:
        await bus.call(Target(topic), Crash(), ctx=CTX)

    assert type(caught.value) is StratoError
    assert "ValueError" in str(caught.value)
    assert await bus.call(Target(topic), WhoAmI(), ctx=CTX, returns=str) == "s"


async def test_unknown_message_kind_is_a_strato_error(bus: Bus, peer: Bus, topic: str) -> None:
    await peer.serve(Target(topic), {WhoAmI: Server("s").who_am_i})

    with pytest.raises(StratoError, match="unknown message Note"):
        await bus.call(Target(topic), Note(n=1), ctx=CTX)


async def test_call_nobody_serves_times_out_as_unavailable(bus: Bus, topic: str) -> None:
    with pytest.raises(Unavailable, match=topic):
        await bus.call(Target(topic), WhoAmI(), ctx=CTX, timeout=SHORT)


async def test_call_to_a_slow_handler_times_out_as_unavailable(
        bus: Bus, peer: Bus, topic: str) -> None:
    server = Server("s")
    await peer.serve(Target(topic), server.table())

    with pytest.raises(Unavailable):
        await bus.call(Target(topic), Hold(n=1), ctx=CTX, timeout=SHORT)
    server.gate.set()  # the late reply is dropped; the next call still works

    assert await bus.call(Target(topic), WhoAmI(), ctx=CTX, returns=str) == "s"


async def test_an_expired_call_never_runs(bus: Bus, peer: Bus, topic: str) -> None:
    with pytest.raises(Unavailable):
        await bus.call(Target(topic), Hold(n=1), ctx=CTX, timeout=SHORT)
    # A broker's TTL clock starts when the message arrives, a moment after the caller's.
    await asyncio.sleep(0.05)
    server = Server("late")
    await peer.serve(Target(topic), server.table())

    await bus.cast(Target(topic), Note(n=2), ctx=CTX)

    [(_, n, _, _)] = await server.seen.wait_for(1)
    assert n == 2 and server.finished == 0


# -- cast and addressing -----------------------------------------------------------------

async def test_cast_is_delivered(bus: Bus, peer: Bus, topic: str) -> None:
    server = Server("s")
    await peer.serve(Target(topic), server.table())

    await bus.cast(Target(topic), Note(n=7), ctx=CTX)

    [(name, n, _, _)] = await server.seen.wait_for(1)
    assert (name, n) == ("s", 7)


async def test_cast_waits_for_a_server_that_starts_later(bus: Bus, peer: Bus, topic: str) -> None:
    await bus.cast(Target(topic, "h9"), Note(n=1), ctx=CTX)
    server = Server("h9")

    await peer.serve(Target(topic, "h9"), server.table())

    [(name, n, _, _)] = await server.seen.wait_for(1)
    assert (name, n) == ("h9", 1)


async def test_servers_of_one_topic_share_casts_round_robin(
        bus: Bus, peer: Bus, topic: str) -> None:
    seen = Recorder()
    await bus.serve(Target(topic), Server("a", seen).table())
    await peer.serve(Target(topic), Server("b", seen).table())

    for n in range(20):
        await bus.cast(Target(topic), Note(n=n), ctx=CTX)
    handled = await seen.wait_for(20)
    await asyncio.sleep(0.05)  # room for a wrong duplicate to show up

    assert sorted(n for _, n, _, _ in seen.items) == list(range(20))
    per_server = Counter(name for name, _, _, _ in handled)
    assert per_server["a"] > 0 and per_server["b"] > 0


async def test_a_server_target_reaches_only_that_server(bus: Bus, peer: Bus, topic: str) -> None:
    seen = Recorder()
    await peer.serve(Target(topic, "h1"), Server("h1", seen).table())
    await peer.serve(Target(topic, "h2"), Server("h2", seen).table())
    await peer.serve(Target(topic), Server("any", seen).table())

    answers = {await bus.call(Target(topic, "h2"), WhoAmI(), ctx=CTX, returns=str)
               for _ in range(5)}
    await bus.cast(Target(topic, "h1"), Note(n=1), ctx=CTX)
    await bus.cast(Target(topic), Note(n=2), ctx=CTX)

    assert answers == {"h2"}
    handled = await seen.wait_for(2)
    assert sorted((name, n) for name, n, _, _ in handled) == [("any", 2), ("h1", 1)]


async def test_the_context_arrives_intact_and_is_bound(bus: Bus, peer: Bus, topic: str) -> None:
    ctx = RequestContext(request_id=RequestId("req-42"), global_request_id=RequestId("req-g"),
                         user_id=UserId("bob"), project_id=ProjectId("p9"),
                         roles=("admin", "member"))
    server = Server("s")
    await peer.serve(Target(topic), server.table())

    await bus.cast(Target(topic), Note(n=1), ctx=ctx)

    [(_, _, received, bound)] = await server.seen.wait_for(1)
    assert received == ctx
    assert bound == ctx


# -- publish/subscribe -------------------------------------------------------------------

async def test_publish_reaches_every_subscriber(bus: Bus, peer: Bus, topic: str) -> None:
    first, second = Server("first"), Server("second")
    await bus.subscribe(topic, first.table())
    await peer.subscribe(topic, second.table())

    for n in range(3):
        await bus.publish(topic, Note(n=n), ctx=CTX)

    for server in (first, second):
        handled = await server.seen.wait_for(3)
        assert sorted(n for _, n, _, _ in handled) == [0, 1, 2]


async def test_a_stopped_subscriber_gets_nothing_more(bus: Bus, peer: Bus, topic: str) -> None:
    kept, dropped = Server("kept"), Server("dropped")
    await bus.subscribe(topic, kept.table())
    subscription = await peer.subscribe(topic, dropped.table())
    await subscription.stop()

    await bus.publish(topic, Note(n=1), ctx=CTX)

    await kept.seen.wait_for(1)
    assert dropped.seen.items == []


# -- concurrency and shutdown ------------------------------------------------------------

async def test_handlers_run_concurrently_up_to_the_limit(bus: Bus, topic: str) -> None:
    server = Server("s")
    await bus.serve(Target(topic), server.table(), concurrency=3)

    for n in range(5):
        await bus.cast(Target(topic), Hold(n=n), ctx=CTX)
    await server.seen.wait_for(3)
    await asyncio.sleep(0.1)  # a fourth handler would start now if the limit leaked
    assert server.running == 3
    server.gate.set()

    await server.seen.wait_for(5)
    assert server.most_running == 3


async def test_stop_waits_for_handlers_in_flight(bus: Bus, topic: str) -> None:
    server = Server("s")
    subscription = await bus.serve(Target(topic), server.table())
    await bus.cast(Target(topic), Hold(n=1), ctx=CTX)
    await server.seen.wait_for(1)

    async with asyncio.TaskGroup() as group:
        stopping = group.create_task(subscription.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        server.gate.set()

    assert server.finished == 1


async def test_a_stopped_server_leaves_messages_to_the_others(
        bus: Bus, peer: Bus, topic: str) -> None:
    gone, staying = Server("gone"), Server("staying")
    subscription = await bus.serve(Target(topic), gone.table())
    await subscription.stop()
    await peer.serve(Target(topic), staying.table())

    for n in range(3):
        await bus.cast(Target(topic), Note(n=n), ctx=CTX)

    assert len(await staying.seen.wait_for(3)) == 3
    assert gone.seen.items == []


# -- opening a bus -----------------------------------------------------------------------

async def test_open_bus_memory_is_a_local_bus() -> None:
    bus = await open_bus("memory://")
    assert isinstance(bus, LocalBus)
    await bus.close()


@pytest.mark.rabbitmq
async def test_open_bus_amqp_connects(rabbitmq_url: str) -> None:
    bus = await open_bus(rabbitmq_url)
    assert isinstance(bus, AmqpBus)
    await bus.close()


async def test_open_bus_rejects_other_schemes() -> None:
    with pytest.raises(Invalid, match="'redis'"):
        await open_bus("redis://secret@localhost/0")


async def test_an_unreachable_broker_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="connect"):
        await AmqpBus.connect("amqp://guest:guest@127.0.0.1:1/", timeout=2.0)


@pytest.mark.rabbitmq
async def test_amqp_cast_redeclares_a_queue_deleted_behind_its_back(
        rabbitmq_url: str, topic: str) -> None:
    bus = await AmqpBus.connect(rabbitmq_url)
    try:
        await bus.cast(Target(topic), Note(n=1), ctx=CTX)  # declares and remembers the queue
        await _delete_queue(rabbitmq_url, topic)
        await bus.cast(Target(topic), Note(n=2), ctx=CTX)
        server = Server("s")
        await bus.serve(Target(topic), server.table())

        [(_, n, _, _)] = await server.seen.wait_for(1)
        assert n == 2
    finally:
        await bus.close()


async def _delete_queue(url: str, name: str) -> None:
    import aio_pika  # only this AMQP-specific test reaches below the Bus port

    connection = await aio_pika.connect(url)
    async with connection, connection.channel() as channel:
        await channel.queue_delete(name)
