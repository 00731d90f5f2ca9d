"""The RabbitMQ bus, through aio-pika: ``await AmqpBus.connect("amqp://user:pw@host/vhost")``.

Topology (every name below lives in the vhost of the URL):

* ``strato``: a direct exchange. Each address (``conductor``, ``compute.h2``) has one
  queue of that name, bound with the address as routing key and shared by every worker
  serving it, so RabbitMQ round-robins between them.
* ``strato.reply.<uuid>``: one exclusive, auto-delete reply queue per bus; ``call`` waits
  for the reply with the message id as correlation id.
* ``strato.fanout.<topic>``: a fan-out exchange per ``publish`` topic; each ``subscribe``
  binds its own exclusive, auto-delete queue to it.

Choices, and why:

* **Durable exchange and address queues, persistent casts.** A cast the broker accepted
  survives a broker restart, matching "a cast waits until a server takes it". Calls are
  sent transient: after a restart their callers have timed out anyway. (RabbitMQ 4 also
  deprecates transient non-exclusive queues.) Reply and subscriber queues die with their
  connection, so they are exclusive and transient.
* **The sender declares the address queue too.** A direct exchange drops a message with
  no bound queue, so a cast sent before its server started would vanish; declaring the
  queue on first send keeps it until a consumer appears (``LocalBus`` does the same).
  Queues of servers that never come back stay until an operator deletes them.
* **Calls expire with their timeout** (per-message TTL, set to the time the caller has
  left): once the caller has given up, no server starts the work (give or take the
  network latency), so e.g. the scheduler does not claim resources nobody will use.
* **Ack after the handler finishes.** With prefetch = ``concurrency`` RabbitMQ then never
  gives a worker more than it runs at once: a busy worker's backlog stays in the shared
  queue where an idle worker of the same address takes it, and ``stop`` leaves unstarted
  messages to the others. The price is at-least-once delivery: if a worker dies mid
  handler, the message is redelivered (logged as such). Handler errors are replies, not
  rejections, so a failing message is never requeued in a loop.
* JSON bodies only (``application/json``), never pickle; anything else is dropped.
* aio-pika/aiormq errors become :class:`~strato.domain.errors.Unavailable` here, so
  nothing above this adapter knows aio-pika. The connection is robust: aio-pika
  reconnects and re-declares queues, bindings and consumers by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import aio_pika
from aio_pika.abc import (
    AbstractChannel,
    AbstractExchange,
    AbstractIncomingMessage,
    AbstractQueue,
    AbstractRobustConnection,
    ConsumerTag,
)
from aio_pika.exceptions import AMQPError, ChannelInvalidStateError, PublishError

from strato.domain.context import RequestContext
from strato.domain.errors import Unavailable
from strato.domain.ids import new_uuid
from strato.rpc._pending import PendingCalls
from strato.rpc._worker import Worker, WorkerStatistics, run_envelope
from strato.rpc.bus import HandlerTable, Subscription, Target
from strato.rpc.dispatch import index_handlers
from strato.rpc.messages import Envelope, Reply

__all__ = ["AmqpBus", "EXCHANGE"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

EXCHANGE = "strato"
FANOUT_PREFIX = "strato.fanout."
JSON = "application/json"
# ``subscribe`` has no concurrency argument; this is one subscriber's prefetch.
SUBSCRIBER_CONCURRENCY = 16

# Seconds one broker operation may take. While the robust connection is down, aio-pika
# waits for it to come back; without a bound a cast would hang for the whole outage.
BROKER_TIMEOUT = 15.0

# What aio-pika and aiormq raise when the broker or the connection fails (TimeoutError,
# from the bound above or aio-pika's own, is an OSError).
_BROKER_ERRORS = (AMQPError, ChannelInvalidStateError, OSError)


@contextlib.asynccontextmanager
async def _broker(action: str) -> AsyncIterator[None]:
    """Bound the block by ``BROKER_TIMEOUT`` and re-raise broker client errors as
    ``Unavailable``, naming what we were doing."""
    try:
        async with asyncio.timeout(BROKER_TIMEOUT):
            yield
    except _BROKER_ERRORS as exc:
        detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        raise Unavailable(f"RabbitMQ: cannot {action} ({detail})") from exc


def _message(envelope: Envelope, *, expires_at: float | None = None,
             persistent: bool = False) -> aio_pika.Message:
    """The AMQP message for ``envelope``; ``expires_at`` is on the event loop's clock."""
    expiration = None
    if expires_at is not None:
        # RabbitMQ starts the TTL when the message arrives: give it only what is left of
        # the caller's timeout, so it expires (give or take the network latency) just as
        # the caller gives up.
        expiration = max(expires_at - asyncio.get_running_loop().time(), 0.001)
    mode = aio_pika.DeliveryMode.PERSISTENT if persistent else aio_pika.DeliveryMode.NOT_PERSISTENT
    return aio_pika.Message(
        envelope.to_bytes(), content_type=JSON, message_id=envelope.msg_id,
        correlation_id=envelope.msg_id, reply_to=envelope.reply_to, expiration=expiration,
        delivery_mode=mode,
    )


async def _declare_exchange(channel: AbstractChannel) -> AbstractExchange:
    return await channel.declare_exchange(EXCHANGE, aio_pika.ExchangeType.DIRECT, durable=True)


async def _declare_address(channel: AbstractChannel, exchange: AbstractExchange,
                           address: str) -> AbstractQueue:
    # Senders and servers both declare through here: RabbitMQ refuses a second declaration
    # of a queue with different properties, so there must be exactly one definition.
    queue = await channel.declare_queue(address, durable=True)
    await queue.bind(exchange, routing_key=address)
    return queue


async def _declare_fanout(channel: AbstractChannel, topic: str) -> AbstractExchange:
    return await channel.declare_exchange(f"{FANOUT_PREFIX}{topic}",
                                          aio_pika.ExchangeType.FANOUT, durable=True)


async def _declare_subscriber(channel: AbstractChannel, topic: str) -> AbstractQueue:
    exchange = await _declare_fanout(channel, topic)
    queue = await channel.declare_queue(f"{FANOUT_PREFIX}{topic}.{new_uuid()}",
                                        exclusive=True, auto_delete=True)
    await queue.bind(exchange)
    return queue


class _AmqpSubscription:
    """One consumer on its own channel (prefetch is per channel); handlers run in a
    :class:`Worker` and each message is acked when its handler has finished."""

    def __init__(self, channel: AbstractChannel, queue: AbstractQueue,
                 handlers: HandlerTable, *, bus: AmqpBus) -> None:
        self._channel = channel
        self._queue = queue
        self._handlers = index_handlers(handlers)
        self._bus = bus
        self._worker: Worker[AbstractIncomingMessage] = Worker(self._handle, name=queue.name)
        self._tag: ConsumerTag | None = None
        self._stop_lock = asyncio.Lock()

    async def start(self) -> None:
        # Deliveries that arrive before the runner starts simply wait in its inbox.
        self._tag = await self._queue.consume(self._on_message)
        self._worker.start()

    def statistics(self) -> WorkerStatistics:
        return self._worker.statistics()

    async def stop(self) -> None:
        """Cancel the consumer, wait for the handlers in flight, close the channel."""
        async with self._stop_lock:
            if self._tag is None:
                return
            tag, self._tag = self._tag, None
            self._bus._forget(self)
            await self._quietly("cancel its consumer", self._queue.cancel(tag))
            await self._worker.drain()
            await self._quietly("close its channel", self._channel.close())

    async def _on_message(self, message: AbstractIncomingMessage) -> None:
        self._worker.submit(message)

    async def _handle(self, message: AbstractIncomingMessage) -> None:
        try:
            await self._run(message)
        finally:
            await self._quietly("ack a message; it will be redelivered", message.ack())

    async def _run(self, message: AbstractIncomingMessage) -> None:
        if message.content_type != JSON:
            logger.error("%s: dropping a %s message (JSON only)", self._queue.name,
                         message.content_type)
            return
        if message.redelivered:
            logger.warning("%s: message %s is redelivered; a worker stopped before finishing it",
                           self._queue.name, message.message_id)
        outcome = await run_envelope(message.body, self._handlers)
        if outcome is not None and outcome.reply_to is not None:
            await self._quietly("send a reply", self._bus._send_reply(outcome.reply_to,
                                                                      outcome.reply))

    async def _quietly(self, action: str, step: Awaitable[Any]) -> None:
        # The consumer must outlive a broken connection: log and carry on, the robust
        # connection reconnects and RabbitMQ redelivers what was not acked.
        try:
            async with _broker(action):
                await step
        except Unavailable as exc:
            logger.warning("%s: %s", self._queue.name, exc)


class AmqpBus:
    """A :class:`~strato.rpc.bus.Bus` over RabbitMQ. Open it with :meth:`connect`; see the
    module docstring for the topology and delivery rules."""

    def __init__(self, connection: AbstractRobustConnection, channel: AbstractChannel,
                 exchange: AbstractExchange) -> None:
        """Use :meth:`connect`. ``channel`` is the bus's own channel (publishing, replies)
        and ``exchange`` the ``strato`` exchange declared on it."""
        self._connection = connection
        self._channel = channel
        self._exchange = exchange
        self._reply_to = f"strato.reply.{new_uuid()}"
        self._pending = PendingCalls()
        self._declared: set[str] = set()
        self._fanout: dict[str, AbstractExchange] = {}
        self._subscriptions: set[_AmqpSubscription] = set()

    @classmethod
    async def connect(cls, url: str, *,
                      timeout: float = 10.0) -> AmqpBus:  # noqa: ASYNC109 (aio-pika's, per attempt)
        """Connect to the broker at ``url`` (``amqp://user:password@host:5672/vhost``);
        raise ``Unavailable`` when it cannot be reached within ``timeout`` seconds."""
        async with _broker("connect"):
            connection = await aio_pika.connect_robust(url, timeout=timeout)
        try:
            async with _broker("open the bus channel"):
                # on_return_raises: a cast RabbitMQ cannot route raises instead of vanishing.
                channel = await connection.channel(on_return_raises=True)
                bus = cls(connection, channel, await _declare_exchange(channel))
                await bus._listen_for_replies()
        except BaseException:
            await connection.close()
            raise
        return bus

    async def call(self, target: Target, message: object, *, ctx: RequestContext,
                   returns: type[T] | Any = None,
                   timeout: float = 60.0) -> Any:  # noqa: ASYNC109 (the Bus signature)
        """Send ``message`` to one server of ``target`` and return its decoded answer;
        raise the handler's domain error, or ``Unavailable`` after ``timeout`` seconds."""
        envelope = Envelope.wrap(message, ctx=ctx, reply_to=self._reply_to)
        expires_at = asyncio.get_running_loop().time() + timeout

        async def send() -> None:
            await self._send(target.address, envelope, expires_at=expires_at)

        reply = await self._pending.wait(envelope.msg_id, send, address=target.address,
                                         timeout=timeout)
        return reply.unwrap(returns)

    async def cast(self, target: Target, message: object, *, ctx: RequestContext) -> None:
        """Send ``message`` to one server of ``target``; returns once RabbitMQ has it."""
        await self._send(target.address, Envelope.wrap(message, ctx=ctx), persistent=True)

    async def serve(self, target: Target, handlers: HandlerTable, *,
                    concurrency: int = 64) -> Subscription:
        """Consume ``target``'s queue; other servers of the address share it round-robin."""
        async def declare(channel: AbstractChannel) -> AbstractQueue:
            return await _declare_address(channel, await _declare_exchange(channel),
                                          target.address)

        return await self._consume(declare, handlers, prefetch=concurrency)

    async def publish(self, topic: str, message: object, *, ctx: RequestContext) -> None:
        """Send ``message`` to every current subscriber of ``topic`` (none: dropped)."""
        outgoing = _message(Envelope.wrap(message, ctx=ctx))
        async with _broker(f"publish on {topic}"):
            exchange = await self._fanout_exchange(topic)
            await exchange.publish(outgoing, routing_key="", mandatory=False)

    async def subscribe(self, topic: str, handlers: HandlerTable) -> Subscription:
        """Receive every message published on ``topic`` from now on."""
        async def declare(channel: AbstractChannel) -> AbstractQueue:
            return await _declare_subscriber(channel, topic)

        return await self._consume(declare, handlers, prefetch=SUBSCRIBER_CONCURRENCY)

    async def close(self) -> None:
        """Stop every subscription (waiting for their handlers), fail waiting calls and
        close the connection."""
        for subscription in list(self._subscriptions):
            await subscription.stop()
        self._pending.fail_all("the bus was closed")
        try:
            async with _broker("close the connection"):
                await self._connection.close()
        except Unavailable as exc:
            logger.warning("%s", exc)

    async def _listen_for_replies(self) -> None:
        queue = await self._channel.declare_queue(self._reply_to, exclusive=True,
                                                  auto_delete=True)
        await queue.consume(self._on_reply, no_ack=True)

    async def _on_reply(self, message: AbstractIncomingMessage) -> None:
        self._pending.resolve(message.body)

    async def _send(self, address: str, envelope: Envelope, *,
                    expires_at: float | None = None, persistent: bool = False) -> None:
        async with _broker(f"send to {address}"):
            await self._declare_once(address)
            # Built after declaring, so a call's TTL counts the declaration's round trips.
            message = _message(envelope, expires_at=expires_at, persistent=persistent)
            try:
                await self._exchange.publish(message, routing_key=address)
            except PublishError:
                # Returned as unroutable: the queue was deleted since we declared it.
                self._declared.discard(address)
                await self._declare_once(address)
                await self._exchange.publish(message, routing_key=address)

    async def _declare_once(self, address: str) -> None:
        if address not in self._declared:
            await _declare_address(self._channel, self._exchange, address)
            self._declared.add(address)

    async def _fanout_exchange(self, topic: str) -> AbstractExchange:
        if topic not in self._fanout:
            self._fanout[topic] = await _declare_fanout(self._channel, topic)
        return self._fanout[topic]

    async def _consume(self, declare: Callable[[AbstractChannel], Awaitable[AbstractQueue]],
                       handlers: HandlerTable, *, prefetch: int) -> _AmqpSubscription:
        if prefetch < 1:
            raise ValueError("concurrency must be at least 1")
        async with _broker("start a consumer"):
            channel = await self._connection.channel()
            try:
                await channel.set_qos(prefetch_count=prefetch)
                queue = await declare(channel)
                subscription = _AmqpSubscription(channel, queue, handlers, bus=self)
                await subscription.start()
            except BaseException:
                await channel.close()
                raise
        self._subscriptions.add(subscription)
        logger.info("serving %s (prefetch %d)", queue.name, prefetch)
        return subscription

    def _forget(self, subscription: _AmqpSubscription) -> None:
        self._subscriptions.discard(subscription)

    async def _send_reply(self, reply_to: str, reply: Reply) -> None:
        message = aio_pika.Message(reply.to_bytes(), content_type=JSON,
                                   correlation_id=reply.msg_id)
        # Not mandatory: a caller that is gone took its reply queue along; dropping is right.
        await self._channel.default_exchange.publish(message, routing_key=reply_to,
                                                     mandatory=False)
