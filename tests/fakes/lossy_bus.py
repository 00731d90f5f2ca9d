"""A bus that loses messages on purpose: wraps a real bus and drops what a test says.

Everything else is passed to the wrapped bus unchanged, so the services behave exactly as
on it. A dropped cast or publish vanishes without a trace, as one lost by a broker or by
a dying service would. A dropped call fails at once with ``Unavailable``, as it would
after its timeout (without the wait, which would only slow the tests down). A call whose
*reply* is lost (:meth:`LossyBus.lose_reply`) is delivered and handled, and then fails
the same way: what a broker restart between the two does.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from strato.bootstrap import ComputeSpec, embedded
from strato.client import ApiClient
from strato.domain.context import RequestContext
from strato.domain.errors import Unavailable
from strato.rpc.bus import Bus, HandlerTable, Subscription, Target
from strato.rpc.local import LocalBus
from strato.seed import seed_defaults
from tests.cloud_fixtures import ADMIN_TOKEN, Harness, test_settings
from tests.fakes.bus import Sent
from tests.invariants import assert_books_balance

__all__ = ["LossyBus", "Predicate", "lossy_cloud"]

# (target, message) -> whether to lose it; a publish has Target(topic) as its target.
Predicate = Callable[[Target, object], bool]


@dataclass
class _Rule:
    predicate: Predicate
    remaining: int | None  # None: drop every match


@dataclass
class LossyBus:
    """``inner`` with the messages matching any :meth:`drop` rule lost; ``dropped``
    records them, for the test to check that the loss it staged happened."""

    inner: Bus
    dropped: list[Sent] = field(default_factory=list)
    # Every call that came back (with a reply, an error or a lost reply), in order.
    finished: list[Sent] = field(default_factory=list)
    _rules: list[_Rule] = field(default_factory=list)
    _reply_rules: list[_Rule] = field(default_factory=list)

    def drop(self, predicate: Predicate, *, times: int | None = None) -> None:
        """Lose every message ``predicate`` matches from now on (only the next
        ``times`` ones, if given)."""
        self._rules.append(_Rule(predicate, times))

    def drop_type(self, message_type: type, *, times: int | None = None,
                  where: Callable[[Any], bool] = lambda _: True) -> None:
        """Lose messages of ``message_type`` (for which ``where`` holds)."""
        self.drop(lambda _t, m: isinstance(m, message_type) and where(m), times=times)

    def lose_reply(self, predicate: Predicate, *, times: int | None = None) -> None:
        """Deliver the calls ``predicate`` matches, but lose their replies."""
        self._reply_rules.append(_Rule(predicate, times))

    def heal(self) -> None:
        """Stop losing messages."""
        self._rules.clear()
        self._reply_rules.clear()

    def _lost(self, kind: str, target: Target, message: object, ctx: RequestContext,
              rules: list[_Rule] | None = None) -> bool:
        for rule in self._rules if rules is None else rules:
            if rule.remaining != 0 and rule.predicate(target, message):
                if rule.remaining is not None:
                    rule.remaining -= 1
                self.dropped.append(Sent(kind, target, message, ctx))
                return True
        return False

    async def call(self, target: Target, message: object, *, ctx: RequestContext,
                   returns: Any = None, timeout: float = 60.0) -> Any:  # noqa: ASYNC109
        if self._lost("call", target, message, ctx):
            raise Unavailable(f"{type(message).__name__} to {target.address} was lost")
        try:
            reply = await self.inner.call(target, message, ctx=ctx, returns=returns,
                                          timeout=timeout)
        finally:
            self.finished.append(Sent("call", target, message, ctx))
        if self._lost("reply", target, message, ctx, self._reply_rules):
            raise Unavailable(f"no reply to {type(message).__name__} from {target.address}")
        return reply

    async def cast(self, target: Target, message: object, *, ctx: RequestContext) -> None:
        if not self._lost("cast", target, message, ctx):
            await self.inner.cast(target, message, ctx=ctx)

    async def serve(self, target: Target, handlers: HandlerTable, *,
                    concurrency: int = 64) -> Subscription:
        return await self.inner.serve(target, handlers, concurrency=concurrency)

    async def publish(self, topic: str, message: object, *, ctx: RequestContext) -> None:
        if not self._lost("publish", Target(topic), message, ctx):
            await self.inner.publish(topic, message, ctx=ctx)

    async def subscribe(self, topic: str, handlers: HandlerTable) -> Subscription:
        return await self.inner.subscribe(topic, handlers)

    async def close(self) -> None:
        await self.inner.close()


@asynccontextmanager
async def lossy_cloud(data_dir: Path, computes: Sequence[ComputeSpec],
                      **overrides: Any) -> AsyncIterator[tuple[Harness, LossyBus]]:
    """:func:`tests.cloud_fixtures.running_cloud`, with every role on one
    :class:`LossyBus` (over an in-process bus) that the test tells what to lose."""
    bus = LossyBus(LocalBus())
    settings = test_settings(data_dir, **overrides)
    async with embedded(settings, computes, bus=bus) as cloud:
        await seed_defaults(cloud.db)
        transport = httpx.ASGITransport(app=cloud.app)
        async with ApiClient("http://strato", ADMIN_TOKEN, transport=transport) as client:
            image_id = await client.create_image("test-image", b"x" * 4096, disk_format="raw")
            flavors = {f["name"]: f["id"] for f in await client.flavors()}
            yield Harness(cloud=cloud, client=client, image_id=image_id,
                          flavors=flavors), bus
            await assert_books_balance(cloud.db, computes=cloud.computes)
