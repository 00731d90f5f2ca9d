"""SQLite connections that run their calls inline on the event loop thread.

aiosqlite gives every connection a thread and pays a thread hop (about 150 us on the
test machines) for each call. A transaction makes about eight calls (BEGIN, statements,
fetches, COMMIT, the pool's reset), while SQLite itself commits a small WAL
transaction in about 30 us. Under load the hops are what count: each one waits for a
turn of a busy event loop, and as writers are serialised, the whole cloud slowed to the
pace of those hops. Inline calls drop that to a fraction of a millisecond per
transaction.

This is safe because nothing here waits long. In WAL mode readers never wait for the
writer. Writers of this process queue on an asyncio lock before they touch SQLite (see
``Store``), so only another *process* writing the same file could make a call wait,
and then only up to the short busy timeout below. The SQLite backend is for the embedded
mode (one process); the distributed mode uses PostgreSQL.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from functools import partial
from typing import Any

import aiosqlite

__all__ = ["INLINE_BUSY_TIMEOUT", "InlineConnection", "connect_inline"]

# Seconds an inline call may block the loop waiting for another process's write lock.
INLINE_BUSY_TIMEOUT = 5.0


class _InlineQueue:
    """Stands in for aiosqlite's queue to its worker thread: runs each job at once.
    (SQLAlchemy's adapter posts some jobs to that queue directly.)"""

    def put_nowait(self, item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as exc:  # handed to the waiter, as the worker thread does
            if future is not None and not future.done():
                future.set_exception(exc)
        else:
            if future is not None and not future.done():
                future.set_result(result)


class InlineConnection(aiosqlite.Connection):
    """aiosqlite's connection interface without its thread."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _InlineQueue()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()

    async def _execute(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        return fn(*args, **kwargs)


def connect_inline(path: str) -> InlineConnection:
    """An unopened inline connection to the SQLite file at ``path`` (await it to open)."""
    connector = partial(sqlite3.connect, path, timeout=INLINE_BUSY_TIMEOUT,
                        check_same_thread=False, isolation_level=None)
    return InlineConnection(connector)
