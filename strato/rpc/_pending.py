"""The caller's side of ``call``, shared by both transports: a future per message id,
resolved by the reply, and one timeout that covers sending as well as waiting."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from strato.domain.errors import Unavailable
from strato.rpc.messages import Reply

__all__ = ["PendingCalls"]

logger = logging.getLogger(__name__)


class PendingCalls:
    """Calls waiting for their reply, by message id (the AMQP correlation id)."""

    def __init__(self) -> None:
        self._futures: dict[str, asyncio.Future[Reply]] = {}

    def __len__(self) -> int:
        return len(self._futures)

    async def wait(self, msg_id: str, send: Callable[[], Awaitable[None]], *,
                   address: str, timeout: float) -> Reply:  # noqa: ASYNC109 (Bus.call's)
        """Run ``send()`` and wait for the reply to ``msg_id``.

        Raises :class:`Unavailable` when no reply arrives within ``timeout`` seconds.
        The future is registered before sending, so even an instant reply is caught.
        """
        future: asyncio.Future[Reply] = asyncio.get_running_loop().create_future()
        self._futures[msg_id] = future
        try:
            async with asyncio.timeout(timeout):
                await send()
                return await future
        except TimeoutError as exc:
            raise Unavailable(f"no reply from {address} within {timeout:g} s") from exc
        finally:
            del self._futures[msg_id]

    def resolve(self, raw: bytes) -> None:
        """Hand a reply to its waiting call; replies nobody waits for (the call timed
        out, or was never ours) are dropped."""
        try:
            reply = Reply.from_bytes(raw)
        except (ValueError, KeyError, TypeError):
            logger.error("dropping a reply that is not a strato reply (%d bytes)", len(raw))
            return
        future = self._futures.get(reply.msg_id)
        if future is None or future.done():
            logger.debug("dropping late reply to %s", reply.msg_id)
            return
        future.set_result(reply)

    def fail_all(self, reason: str) -> None:
        """Make every waiting call raise :class:`Unavailable` (the bus is closing)."""
        for future in self._futures.values():
            if not future.done():
                future.set_exception(Unavailable(reason))

