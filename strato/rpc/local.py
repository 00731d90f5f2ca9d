"""The in-process bus (``memory://``): the embedded default and the service tests' bus.

It is a tiny broker that copies RabbitMQ's semantics so that code tested on it behaves the
same on ``strato.rpc.amqp``:

* Every message is encoded to JSON bytes (``Envelope.to_bytes``) and decoded on the other
  side, so nothing can pass by reference that would not survive the real wire.
* One queue per address (``conductor``, ``compute.h2``), shared by every ``serve`` of that
  address; the queue hands messages to its consumers in turn (round-robin), skipping a
  consumer that already runs ``concurrency`` handlers (RabbitMQ's prefetch credit). A
  finished handler returns its credit, as an ack does.
* A cast or call to an address nobody serves yet waits in that address's queue until a
  consumer appears, as in a declared RabbitMQ queue. The cost: casts to an address that is
  never served stay in memory for the life of the bus.
* A call's message expires with its timeout; once the caller has given up, no server
  starts it (RabbitMQ per-message TTL). A reply that comes too late is dropped.
* ``publish`` copies the message into one private queue per current subscriber and is
  dropped when there is none (a fan-out exchange with exclusive queues).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from dataclasses import dataclass
from typing import Any, TypeVar

from strato.domain.context import RequestContext
from strato.domain.ids import new_uuid
from strato.rpc._pending import PendingCalls
from strato.rpc._worker import Worker, WorkerStatistics, run_envelope
from strato.rpc.bus import HandlerTable, Subscription, Target
from strato.rpc.dispatch import index_handlers
from strato.rpc.messages import Envelope

__all__ = ["LocalBus"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# ``subscribe`` has no concurrency argument; this bounds one subscriber's handlers.
SUBSCRIBER_CONCURRENCY = 16


@dataclass(frozen=True, slots=True)
class _Parcel:
    """A message waiting in a queue; ``expires_at`` is on the loop clock."""

    raw: bytes
    expires_at: float | None = None


class _Queue:
    """One address's queue: holds messages until a consumer with spare credit takes one."""

    def __init__(self, name: str, *, auto_delete: bool = False) -> None:
        self.name = name
        # An auto-delete queue (a subscriber's private one) dies with its last consumer.
        self.auto_delete = auto_delete
        self.deleted = False
        self._ready: deque[_Parcel] = deque()
        self._consumers: list[_LocalSubscription] = []
        self._turn = 0

    def put(self, raw: bytes, *, ttl: float | None = None) -> None:
        expires_at = None if ttl is None else asyncio.get_running_loop().time() + ttl
        self._ready.append(_Parcel(raw, expires_at))
        self.pump()

    def attach(self, consumer: _LocalSubscription) -> None:
        self._consumers.append(consumer)
        self.pump()

    def detach(self, consumer: _LocalSubscription) -> None:
        if consumer in self._consumers:
            self._consumers.remove(consumer)
        self.deleted = self.auto_delete and not self._consumers

    def pump(self) -> None:
        """Deliver ready messages while some consumer has room; never blocks."""
        while self._drop_expired() and (consumer := self._next_consumer()) is not None:
            consumer.deliver(self._ready.popleft().raw)

    def _drop_expired(self) -> bool:
        # Like RabbitMQ, expiry is checked at the head of the queue, just before delivery.
        now = asyncio.get_running_loop().time()
        while self._ready and (expires := self._ready[0].expires_at) is not None and expires <= now:
            self._ready.popleft()
            logger.debug("call to %s expired before any server took it", self.name)
        return bool(self._ready)

    def _next_consumer(self) -> _LocalSubscription | None:
        count = len(self._consumers)
        for step in range(count):
            consumer = self._consumers[(self._turn + step) % count]
            if consumer.has_room():
                self._turn = (self._turn + step + 1) % count
                return consumer
        return None


class _LocalSubscription:
    """A consumer of one :class:`_Queue`; its handlers run in a :class:`Worker`."""

    def __init__(self, queue: _Queue, handlers: HandlerTable, *, bus: LocalBus,
                 concurrency: int) -> None:
        self._queue = queue
        self._handlers = index_handlers(handlers)
        self._bus = bus
        self._concurrency = concurrency
        self._in_flight = 0
        self._worker: Worker[bytes] = Worker(self._handle, name=queue.name)

    def start(self) -> None:
        self._worker.start()
        self._queue.attach(self)

    def has_room(self) -> bool:
        return self._in_flight < self._concurrency

    def deliver(self, raw: bytes) -> None:
        self._in_flight += 1
        self._worker.submit(raw)

    def statistics(self) -> WorkerStatistics:
        return self._worker.statistics()

    async def stop(self) -> None:
        """Stop taking messages, then wait for the handlers already running."""
        self._queue.detach(self)
        self._bus._forget(self)
        await self._worker.drain()

    async def _handle(self, raw: bytes) -> None:
        try:
            outcome = await run_envelope(raw, self._handlers)
            if outcome is not None and outcome.reply_to is not None:
                self._bus._deliver_reply(outcome.reply_to, outcome.reply.to_bytes())
        finally:
            # The equivalent of an ack: the credit comes back and the queue may deliver more.
            self._in_flight -= 1
            self._queue.pump()


class LocalBus:
    """An in-process :class:`~strato.rpc.bus.Bus`. All services of one process share one
    instance; see the module docstring for the delivery rules it copies from RabbitMQ."""

    def __init__(self) -> None:
        self._queues: dict[str, _Queue] = {}
        self._fanout: dict[str, list[_Queue]] = {}
        self._subscriptions: set[_LocalSubscription] = set()
        self._pending = PendingCalls()
        # Replies are addressed like any other message; only this bus's address exists.
        self._reply_address = f"reply.{new_uuid()}"

    async def call(self, target: Target, message: object, *, ctx: RequestContext,
                   returns: type[T] | Any = None,
                   timeout: float = 60.0) -> Any:  # noqa: ASYNC109 (the Bus signature)
        """Send ``message`` to one server of ``target`` and return its decoded answer;
        raise the handler's domain error, or ``Unavailable`` after ``timeout`` seconds."""
        envelope = Envelope.wrap(message, ctx=ctx, reply_to=self._reply_address)
        queue = self._queue(target.address)

        async def send() -> None:
            queue.put(envelope.to_bytes(), ttl=timeout)

        reply = await self._pending.wait(envelope.msg_id, send, address=target.address,
                                         timeout=timeout)
        return reply.unwrap(returns)

    async def cast(self, target: Target, message: object, *, ctx: RequestContext) -> None:
        """Queue ``message`` for one server of ``target``; it waits there if none runs yet."""
        self._queue(target.address).put(Envelope.wrap(message, ctx=ctx).to_bytes())

    async def serve(self, target: Target, handlers: HandlerTable, *,
                    concurrency: int = 64) -> Subscription:
        """Consume ``target``'s queue, sharing it round-robin with other servers of it."""
        return self._start(self._queue(target.address), handlers, concurrency)

    async def publish(self, topic: str, message: object, *, ctx: RequestContext) -> None:
        """Copy ``message`` to every current subscriber of ``topic`` (none: dropped)."""
        raw = Envelope.wrap(message, ctx=ctx).to_bytes()
        live = [queue for queue in self._fanout.get(topic, []) if not queue.deleted]
        self._fanout[topic] = live
        for queue in live:
            queue.put(raw)

    async def subscribe(self, topic: str, handlers: HandlerTable) -> Subscription:
        """Receive every message published on ``topic`` from now on."""
        queue = _Queue(f"fanout.{topic}.{new_uuid()}", auto_delete=True)
        self._fanout.setdefault(topic, []).append(queue)
        return self._start(queue, handlers, SUBSCRIBER_CONCURRENCY)

    async def close(self) -> None:
        """Stop every subscription (waiting for their handlers) and fail waiting calls."""
        for subscription in list(self._subscriptions):
            await subscription.stop()
        self._pending.fail_all("the bus was closed")

    def _queue(self, address: str) -> _Queue:
        if address not in self._queues:
            self._queues[address] = _Queue(address)
        return self._queues[address]

    def _start(self, queue: _Queue, handlers: HandlerTable,
               concurrency: int) -> _LocalSubscription:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        subscription = _LocalSubscription(queue, handlers, bus=self, concurrency=concurrency)
        self._subscriptions.add(subscription)
        subscription.start()
        logger.info("serving %s (concurrency %d)", queue.name, concurrency)
        return subscription

    def _forget(self, subscription: _LocalSubscription) -> None:
        self._subscriptions.discard(subscription)

    def _deliver_reply(self, address: str, raw: bytes) -> None:
        if address != self._reply_address:
            # As with RabbitMQ's default exchange, a reply to no known queue is dropped.
            logger.debug("dropping reply to unknown address %s", address)
            return
        self._pending.resolve(raw)
