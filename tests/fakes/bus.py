"""A recording bus: implements the :class:`strato.rpc.bus.Bus` Protocol, delivers
nothing, and keeps every cast, call and publish for the test to inspect.

A fake, not a mock: it has the real interface and real (if trivial) behaviour. Set
``fail_with`` to make sends raise (e.g. ``Unavailable``), as a dead broker would.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from strato.domain.context import RequestContext
from strato.rpc.bus import HandlerTable, Target

__all__ = ["RecordingBus", "Sent"]


@dataclass(frozen=True, slots=True)
class Sent:
    """One message the code under test sent."""

    kind: str  # "cast", "call", "publish", or "reply" (of a call that was handled)
    target: Target
    message: object
    ctx: RequestContext


class _Stopped:
    async def stop(self) -> None:
        return None


@dataclass
class RecordingBus:
    """Records messages; ``call`` answers with ``replies[type(message)]`` (or None)."""

    sent: list[Sent] = field(default_factory=list)
    replies: dict[type, Any] = field(default_factory=dict)
    fail_with: Exception | None = None

    @property
    def casts(self) -> list[Sent]:
        return [s for s in self.sent if s.kind == "cast"]

    def _record(self, kind: str, target: Target, message: object,
                ctx: RequestContext) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.append(Sent(kind, target, message, ctx))

    async def call(self, target: Target, message: object, *, ctx: RequestContext,
                   returns: Any = None, timeout: float = 60.0) -> Any:  # noqa: ASYNC109
        self._record("call", target, message, ctx)
        return self.replies.get(type(message))

    async def cast(self, target: Target, message: object, *, ctx: RequestContext) -> None:
        self._record("cast", target, message, ctx)

    async def serve(self, target: Target, handlers: HandlerTable, *,
                    concurrency: int = 64) -> _Stopped:
        return _Stopped()

    async def publish(self, topic: str, message: object, *, ctx: RequestContext) -> None:
        self._record("publish", Target(topic), message, ctx)

    async def subscribe(self, topic: str, handlers: HandlerTable) -> _Stopped:
        return _Stopped()

    async def close(self) -> None:
        return None
