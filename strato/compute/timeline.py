"""A build try's timeline: its steps timed on this host's clock (UTC), sent to the
conductor together when the try ends (the bars of a build's events)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Iterator
from datetime import UTC, datetime
from typing import Any, TypeVar

from strato.domain.actions import EventResult, TimedEvent
from strato.domain.errors import StratoError
from strato.domain.ids import HostName

__all__ = ["Step", "Timeline"]

T = TypeVar("T")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, StratoError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class Step:
    """One step being timed; it finishes once, by :meth:`done` or when its block ends."""

    __slots__ = ("_finished", "_name", "_seq", "_start", "_timeline")

    def __init__(self, timeline: Timeline, name: str, seq: int) -> None:
        self._timeline = timeline
        self._name = name
        self._seq = seq
        self._start = timeline.now()
        self._finished = False

    def done(self) -> None:
        """The step succeeded (what its block does next belongs to other steps)."""
        self.finish(None)

    def finish(self, exc: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._timeline.add(self._seq, self._timeline.event(
            self._name, self._start, None if exc is None else _error_text(exc)))


class Timeline:
    """The build try's steps, timed on this host's clock (UTC): a step that raised is an
    Error with the exception's message, a step never reached is not there."""

    def __init__(self, clock: Callable[[], datetime], host: HostName) -> None:
        self._clock = clock
        self.host = host
        self._began = 0
        self._events: list[tuple[int, TimedEvent]] = []

    def now(self) -> datetime:
        # As the database takes times: aware ones in UTC, naive ones as UTC already.
        now = self._clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def add(self, seq: int, event: TimedEvent) -> None:
        self._events.append((seq, event))

    def begin(self, name: str) -> Step:
        self._began += 1
        return Step(self, name, self._began)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[Step]:
        """Time the block as the step ``name`` (or up to its ``done()``)."""
        with self._closing(self.begin(name)) as step:
            yield step

    def timed(self, name: str, work: Awaitable[T]) -> Coroutine[Any, Any, T]:
        """``work`` timed as the step ``name`` from now, not from when a task first runs
        it (so steps started side by side keep their order)."""
        step = self.begin(name)

        async def run() -> T:
            with self._closing(step):
                return await work

        return run()

    @staticmethod
    @contextlib.contextmanager
    def _closing(step: Step) -> Iterator[Step]:
        try:
            yield step
        except BaseException as exc:
            step.finish(exc)
            raise
        step.finish(None)

    def event(self, name: str, start: datetime, error: str | None = None) -> TimedEvent:
        """The step ``name`` from ``start`` to now: a success, or an Error with
        ``error``."""
        return TimedEvent(event=name, start_time=start, finish_time=self.now(),
                          result=EventResult.SUCCESS if error is None else EventResult.ERROR,
                          traceback=error, host=self.host)

    def record(self, name: str, start: datetime) -> None:
        """A successful step timed elsewhere, from ``start`` to now."""
        self._began += 1
        self.add(self._began, self.event(name, start))

    def events(self) -> tuple[TimedEvent, ...]:
        """The finished steps in the order they began."""
        return tuple(event for _, event in sorted(self._events, key=lambda e: e[0]))
