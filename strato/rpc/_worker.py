"""The consumer side shared by both transports: run each delivered message in its own
task, all owned by one TaskGroup, and turn a raw envelope into a reply.

Keeping this in one place is what makes the transports behave the same: the same
decoding, the same dispatch (``strato.rpc.dispatch``), the same shutdown order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from strato.rpc.dispatch import HandlerIndex, dispatch
from strato.rpc.messages import Envelope, Reply

__all__ = ["Outcome", "Worker", "WorkerStatistics", "run_envelope"]

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Outcome:
    """A handled envelope: where its reply goes (``None`` for a cast) and the reply."""

    reply_to: str | None
    reply: Reply


async def run_envelope(raw: bytes, handlers: HandlerIndex) -> Outcome | None:
    """Decode ``raw`` and run it against ``handlers``; ``None`` when it is not an
    envelope at all (a foreign or corrupt message is dropped, never crashes a worker)."""
    try:
        envelope = Envelope.from_bytes(raw)
    except (ValueError, KeyError, TypeError):
        logger.error("dropping a message that is not a strato envelope (%d bytes)", len(raw))
        return None
    reply = await dispatch(envelope, handlers)
    return Outcome(reply_to=envelope.reply_to, reply=reply)


@dataclass(frozen=True, slots=True)
class WorkerStatistics:
    """What a worker is doing now, for ``/healthz`` and the dashboard."""

    running: int
    waiting: int
    handled: int


class Worker(Generic[T]):
    """Runs ``handle(item)`` for every submitted item, each in its own task.

    The tasks belong to one TaskGroup held open by a runner task, and :meth:`drain`
    awaits that runner, so every handler this worker ever started has finished when
    ``drain`` returns. The transport bounds how many items it submits at once (credit in
    ``LocalBus``, prefetch on RabbitMQ), so the worker itself queues without limit.
    """

    def __init__(self, handle: Callable[[T], Awaitable[None]], *, name: str) -> None:
        self._handle = handle
        self._name = name
        # None is the "no more items" marker that ends the runner after what came before.
        self._inbox: asyncio.Queue[T | None] = asyncio.Queue()
        self._runner: asyncio.Task[None] | None = None
        self._running = 0
        self._handled = 0

    def start(self) -> None:
        """Start the runner. It is owned by this worker: :meth:`drain` awaits it."""
        self._runner = asyncio.create_task(self._run(), name=f"strato.rpc:{self._name}")

    def submit(self, item: T) -> None:
        """Queue ``item``; it starts as soon as the runner takes it (never blocks)."""
        self._inbox.put_nowait(item)

    async def drain(self) -> None:
        """Run what was submitted so far, wait for every handler, then stop the runner."""
        if self._runner is None:
            return
        self._inbox.put_nowait(None)
        await self._runner

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(running=self._running, waiting=self._inbox.qsize(),
                                handled=self._handled)

    async def _run(self) -> None:
        async with asyncio.TaskGroup() as group:
            while (item := await self._inbox.get()) is not None:
                group.create_task(self._guarded(item))

    async def _guarded(self, item: T) -> None:
        self._running += 1
        try:
            await self._handle(item)
        except Exception:  # a bug in one handler must not cancel its siblings in the group
            logger.exception("message handling crashed in %s", self._name)
        finally:
            self._running -= 1
            self._handled += 1
