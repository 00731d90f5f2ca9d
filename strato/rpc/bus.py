"""The bus port: what services use to talk to each other.

Two transports implement :class:`Bus`: ``strato.rpc.local`` (in-process asyncio, the
embedded default) and ``strato.rpc.amqp`` (RabbitMQ through aio-pika). Both move the same
JSON envelopes (``strato.rpc.messages``), so a service never knows which it is on.

Addressing, as oslo.messaging does it:

* ``Target("conductor")``: a topic served by any number of workers; each message goes to
  exactly one of them, round-robin.
* ``Target("compute", server="h2")``: the topic on one named server.
* ``publish``/``subscribe``: a fan-out topic; every subscriber gets every message.

A handler is ``async def handler(ctx, message) -> result``. The message is a dataclass
instance; the handler table maps message *types* to handlers. When a handler raises a
:class:`~strato.domain.errors.StratoError`, ``call`` raises the same type on the caller's
side; any other exception arrives as a plain ``StratoError`` (details stay in the
server's log). A ``call`` with no answer within its timeout raises ``Unavailable``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from strato.domain.context import RequestContext

__all__ = ["Bus", "Handler", "HandlerTable", "Subscription", "Target"]

T = TypeVar("T")

Handler = Callable[[RequestContext, Any], Awaitable[Any]]
HandlerTable = Mapping[type, Handler]


@dataclass(frozen=True, slots=True)
class Target:
    """Where a message goes: a topic, optionally on one server."""

    topic: str
    server: str | None = None

    @property
    def address(self) -> str:
        return f"{self.topic}.{self.server}" if self.server else self.topic


class Subscription(Protocol):
    """A running consumer; ``stop`` waits for handlers in flight to finish."""

    async def stop(self) -> None: ...


class Bus(Protocol):
    async def call(self, target: Target, message: object, *, ctx: RequestContext,
                   returns: type[T] | Any = None,
                   timeout: float = 60.0) -> Any:  # noqa: ASYNC109 (a per-call budget)
        """Send ``message`` to one server of ``target`` and wait for its answer, decoded
        as ``returns`` (a type pydantic can validate, e.g. ``list[Selection]``)."""
        ...

    async def cast(self, target: Target, message: object, *, ctx: RequestContext) -> None:
        """Send ``message`` to one server of ``target``; do not wait for it."""
        ...

    async def serve(self, target: Target, handlers: HandlerTable, *,
                    concurrency: int = 64) -> Subscription:
        """Start consuming ``target``'s messages with ``handlers``; up to
        ``concurrency`` handlers run at once."""
        ...

    async def publish(self, topic: str, message: object, *, ctx: RequestContext) -> None:
        """Send ``message`` to every subscriber of ``topic``."""
        ...

    async def subscribe(self, topic: str, handlers: HandlerTable) -> Subscription:
        """Receive every message published on ``topic`` from now on."""
        ...

    async def close(self) -> None:
        """Stop every subscription and release the transport."""
        ...
