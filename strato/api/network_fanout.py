"""Every successful change through the Network API is published on the network fanout,
so DHCP agents rewrite their hosts files and computes rebuild their firewalls at once
(a removed security-group rule stops traffic within a moment, not a resync interval).

One ASGI middleware instead of a call in each route: a route cannot forget it."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from strato.domain.context import admin_context
from strato.domain.errors import StratoError
from strato.rpc.bus import Bus
from strato.rpc.contracts.network import FANOUT_TOPIC, NetworksChanged

__all__ = ["NetworkChangesMiddleware"]

logger = logging.getLogger(__name__)

_PREFIX = "/networking/"
_WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class NetworkChangesMiddleware:
    def __init__(self, app: ASGIApp, bus: Bus) -> None:
        self.app = app
        self.bus = bus

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in _WRITES
                or not scope["path"].startswith(_PREFIX)):
            await self.app(scope, receive, send)
            return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        if 200 <= status < 300:
            reason = f"{scope['method']} {scope['path']}"
            try:
                await self.bus.publish(FANOUT_TOPIC, NetworksChanged(reason=reason),
                                       ctx=admin_context())
            except StratoError as exc:  # best effort: receivers resync on an interval
                logger.warning("could not publish %s: %s", reason, exc)
