"""Opening a bus from its URL; ``strato.bootstrap`` calls this with the configured URL."""

from __future__ import annotations

from urllib.parse import urlsplit

from strato.domain.errors import Invalid
from strato.rpc.amqp import AmqpBus
from strato.rpc.bus import Bus
from strato.rpc.local import LocalBus

__all__ = ["open_bus"]


async def open_bus(url: str) -> Bus:
    """The bus for ``url``: ``memory://`` gives an in-process :class:`LocalBus`,
    ``amqp://user:password@host:5672/vhost`` (or ``amqps://``) a connected
    :class:`AmqpBus`. Raises ``Invalid`` for any other scheme and ``Unavailable`` when
    the broker cannot be reached."""
    scheme = urlsplit(url).scheme
    if scheme == "memory":
        return LocalBus()
    if scheme in ("amqp", "amqps"):
        return await AmqpBus.connect(url)
    # Only the scheme goes into the message: the URL may carry a password.
    raise Invalid(f"unsupported bus URL scheme {scheme!r}: use memory:// or amqp://")
