"""Key pairs in the SQL adapter, on SQLite and PostgreSQL: create, get, list and
delete per user, duplicate names, Nova's messages, and the per-user ``key_pairs``
quota, which parallel creates on separate connections never pass.
"""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from strato.db.sql import SqlDatabase
from strato.domain.errors import Conflict, NotFound, OverQuota
from strato.domain.ids import UserId
from strato.domain.keypairs import KeyPair
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    T0,
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    open_db,
    pg_url,
)

ALICE = UserId("alice")
BOB = UserId("bob")


def make_key(user: UserId = ALICE, name: str = "k") -> KeyPair:
    return KeyPair(name=name, user_id=user, public_key=f"ssh-ed25519 AAAA {name}",
                   fingerprint="aa:bb")


async def test_create_get_list_delete_round_trip(db: SqlDatabase, clock: FakeClock) -> None:
    created = await db.key_pairs.create(make_key(name="one"), limit=10)
    assert created == replace(make_key(name="one"), id=created.id, created_at=T0)
    assert created.id is not None and created.type == "ssh"
    assert await db.key_pairs.get(ALICE, "one") == created
    clock.advance(1)
    second = await db.key_pairs.create(make_key(name="two"), limit=10)
    assert [k.name for k in await db.key_pairs.list(ALICE)] == ["one", "two"]
    await db.key_pairs.delete(ALICE, "one")
    assert await db.key_pairs.list(ALICE) == [second]


async def test_names_are_per_user(db: SqlDatabase) -> None:
    await db.key_pairs.create(make_key(ALICE), limit=-1)
    with pytest.raises(Conflict, match=r"^Key pair 'k' already exists\.$"):
        await db.key_pairs.create(make_key(ALICE), limit=-1)
    await db.key_pairs.create(make_key(BOB), limit=-1)
    assert len(await db.key_pairs.list(BOB)) == 1
    with pytest.raises(NotFound, match=r"^Keypair x not found for user alice$"):
        await db.key_pairs.get(ALICE, "x")
    with pytest.raises(NotFound, match=r"^Keypair k not found for user carol$"):
        await db.key_pairs.delete(UserId("carol"), "k")
    assert len(await db.key_pairs.list(ALICE)) == 1


async def test_create_stops_at_the_users_limit(db: SqlDatabase) -> None:
    for n in range(2):
        await db.key_pairs.create(make_key(name=f"k{n}"), limit=2)
    with pytest.raises(OverQuota, match=r"^Quota exceeded, too many key pairs\.$"):
        await db.key_pairs.create(make_key(name="k2"), limit=2)
    await db.key_pairs.create(make_key(BOB), limit=1)


async def test_parallel_creates_never_pass_the_limit(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    others = [await open_db(db_url, clock) for _ in range(3)]
    try:
        results = await asyncio.gather(
            *(others[n % 3].key_pairs.create(make_key(name=f"k{n}"), limit=2)
              for n in range(6)), return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    made = [r for r in results if isinstance(r, KeyPair)]
    assert len(made) == 2
    assert all(isinstance(r, OverQuota) for r in results if not isinstance(r, KeyPair))
    assert len(await db.key_pairs.list(ALICE)) == 2
