"""``KeyPairRepo`` on SQL: a user's key pairs, in ``key_pairs``.

Creating one is quota-checked like a server group: the count of the user's key pairs and
the insert run in one write transaction under a lock named after the user
(:func:`strato.db._quotas.lock_project` on a key of its own), so parallel creates never
pass the limit. The unique ``(user_id, name)`` constraint makes a duplicate name a
``Conflict`` even between two concurrent creates. Deletes are hard deletes: a key pair
has no history worth keeping.
"""

from __future__ import annotations

import builtins
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._quotas import lock_project
from strato.domain.errors import OverQuota
from strato.domain.ids import ProjectId, UserId
from strato.domain.keypairs import KeyPair, key_pair_exists, key_pair_not_found

__all__ = ["SqlKeyPairRepo"]

_K = t.key_pairs.c


def _from_row(row: Any) -> KeyPair:
    return KeyPair(id=row.id, name=row.name, user_id=UserId(row.user_id),
                   public_key=row.public_key, fingerprint=row.fingerprint, type=row.type,
                   created_at=row.created_at, updated_at=row.updated_at)


async def _count(conn: AsyncConnection, user_id: UserId) -> int:
    return int((await conn.execute(sa.select(sa.func.count()).select_from(t.key_pairs)
                                   .where(_K.user_id == user_id))).scalar_one())


def _named(query: sa.Select[Any], user_id: UserId, name: str) -> sa.Select[Any]:
    return query.where(_K.user_id == user_id, _K.name == name)


class SqlKeyPairRepo:
    """Key pairs in ``key_pairs`` (see :class:`strato.db.ports.keypairs.KeyPairRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def create(self, key_pair: KeyPair, *, limit: int) -> KeyPair:
        """Insert ``key_pair`` unless its user already has ``limit`` key pairs
        (``OverQuota``; negative: no limit); ``Conflict`` if the user has one of that
        name. Returns it with its id and ``created_at``."""
        now = self._store.now()
        values = {"user_id": key_pair.user_id, "name": key_pair.name,
                  "fingerprint": key_pair.fingerprint, "public_key": key_pair.public_key,
                  "type": key_pair.type, "created_at": now, "updated_at": None}
        message = str(key_pair_exists(key_pair.name))
        async with self._store.write(conflict=message) as conn:
            await lock_project(conn, ProjectId(f"key_pairs/{key_pair.user_id}"))
            if limit >= 0 and await _count(conn, key_pair.user_id) + 1 > limit:
                raise OverQuota("Quota exceeded, too many key pairs.")
            result = await conn.execute(t.key_pairs.insert().values(values)
                                        .returning(_K.id))
            pk = int(result.scalar_one())
        return replace(key_pair, id=pk, created_at=now, updated_at=None)

    async def get(self, user_id: UserId, name: str) -> KeyPair:
        """The user's key pair ``name``; ``NotFound`` (Nova's message) if it has none."""
        async with self._store.read() as conn:
            row = (await conn.execute(
                _named(sa.select(t.key_pairs), user_id, name))).first()
        if row is None:
            raise key_pair_not_found(name, user_id)
        return _from_row(row)

    async def list(self, user_id: UserId) -> builtins.list[KeyPair]:
        """The user's key pairs, oldest first."""
        query = (sa.select(t.key_pairs).where(_K.user_id == user_id)
                 .order_by(_K.created_at, _K.id))
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
        return [_from_row(row) for row in rows]

    async def delete(self, user_id: UserId, name: str) -> None:
        """Delete the user's key pair ``name``; ``NotFound`` as :meth:`get`."""
        async with self._store.write() as conn:
            result = await conn.execute(
                sa.delete(t.key_pairs).where(_K.user_id == user_id, _K.name == name))
        if result.rowcount == 0:
            raise key_pair_not_found(name, user_id)
