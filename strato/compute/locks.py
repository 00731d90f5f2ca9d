"""Per-key asyncio locks (one per instance), created on demand and dropped when free."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

__all__ = ["KeyedLocks"]


@dataclass
class KeyedLocks:
    _locks: dict[str, asyncio.Lock] = field(default_factory=dict)
    _waiters: dict[str, int] = field(default_factory=dict)

    @contextlib.asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Run the block while holding ``key``'s lock (builds and deletes of one
        instance never interleave)."""
        lock = self._locks.setdefault(key, asyncio.Lock())
        self._waiters[key] = self._waiters.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._waiters[key] -= 1
            if not self._waiters[key]:
                del self._waiters[key]
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
