"""The key pair repository (its adapter: :mod:`strato.db._keypairs`)."""

from __future__ import annotations

import builtins
from typing import Protocol

from strato.domain.ids import UserId
from strato.domain.keypairs import KeyPair

__all__ = ["KeyPairRepo"]


class KeyPairRepo(Protocol):
    """A user's key pairs (Nova's os-keypairs), named uniquely per user; the errors are
    those of :mod:`strato.domain.keypairs`."""

    async def create(self, key_pair: KeyPair, *, limit: int) -> KeyPair:
        """Insert ``key_pair`` unless its user already has ``limit`` key pairs
        (``OverQuota``; negative: no limit), in one transaction; ``Conflict`` for a name
        the user already has. Returns it with its ``id`` and ``created_at``."""
        ...

    async def get(self, user_id: UserId, name: str) -> KeyPair:
        """``NotFound`` if the user has no key pair ``name``."""
        ...

    async def list(self, user_id: UserId) -> builtins.list[KeyPair]:
        """The user's key pairs, oldest first."""
        ...

    async def delete(self, user_id: UserId, name: str) -> None:
        """``NotFound`` as :meth:`get`."""
        ...
