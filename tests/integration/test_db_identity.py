"""Identity in the SQL adapter, on SQLite and PostgreSQL: administration round trips with
Keystone's messages, what deletes take with them, the identity revision every write
moves on, and the token validation cache built on it: one query per cached validation,
and every change made through another process honoured at the next one.
"""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from strato.db.sql import SqlDatabase
from strato.domain.errors import Conflict, NotFound
from strato.domain.identity import (
    DEFAULT_DOMAIN_ID,
    AuthFailed,
    Domain,
    DomainId,
    NewPassword,
    Project,
    Role,
    RoleAssignment,
    RoleId,
    User,
)
from strato.domain.ids import ProjectId, UserId
from strato.identity.fernet import KeyRepository, TokenCodec
from strato.identity.passwords import Argon2Params, hash_password
from strato.identity.service import AuthRequest, NameRef, TokenService
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    open_db,
    pg_url,
)

FAST = Argon2Params(1024, 1, 1)
PASSWORD = "s3cret"
ACME = DomainId("acme")


async def _base(db: SqlDatabase) -> tuple[Project, User, Role]:
    """The default domain, project ``web`` and user ``wile`` (password ``PASSWORD``)
    holding role ``operator`` on it."""
    repo = db.identity
    await repo.ensure_domain(DEFAULT_DOMAIN_ID, "Default")
    project = await repo.create_project(Project(id=ProjectId("p-web"), name="web"))
    user = await repo.create_user(User(id=UserId("u-wile"), name="wile",
                                       default_project_id=project.id),
                                  NewPassword(hash_password(PASSWORD, FAST)))
    role = await repo.create_role(Role(id=RoleId("r-op"), name="operator"))
    await repo.assign_role(user.id, project.id, role.id)
    return project, user, role


# ---- administration ------------------------------------------------------------------------

async def test_round_trips_filters_and_keystone_messages(db: SqlDatabase) -> None:
    repo = db.identity
    project, user, role = await _base(db)
    acme = await repo.create_domain(Domain(id=ACME, name="ACME", description="d"))
    assert await repo.domain(ACME) == acme
    other = await repo.create_project(Project(id=ProjectId("p-2"), name="db", domain_id=ACME,
                                              enabled=False))
    assert [p.name for p in await repo.projects()] == ["db", "web"]
    assert await repo.projects(domain_id=ACME) == [other]
    assert await repo.projects(enabled=True) == [project]
    assert await repo.projects(name="web", domain_id=ACME) == []
    assert await repo.users(name="wile") == [user]
    assert await repo.roles(name="operator") == [role]
    assert await repo.domains(enabled=True, name="ACME") == [acme]
    assert await repo.role_assignments(user_id=user.id) == [
        RoleAssignment(user_id=user.id, project_id=project.id, role_id=role.id)]

    renamed = await repo.update_project(replace(other, name="warehouse", enabled=True))
    assert await repo.project(other.id) == renamed
    await repo.update_role(replace(role, name="op"))
    assert (await repo.role(role.id)).name == "op"
    await repo.update_domain(replace(acme, enabled=False))
    assert not (await repo.domain(ACME)).enabled
    await repo.update_user(replace(user, name="coyote", default_project_id=None))
    assert await repo.user(user.id) == replace(user, name="coyote", default_project_id=None)
    assert await repo.password_hash(user.id)  # untouched without a NewPassword

    with pytest.raises(Conflict, match=r"^Conflict occurred attempting to store project - "
                                       r"Duplicate entry found with name web at domain ID "
                                       r"default\.$"):
        await repo.create_project(Project(id=ProjectId("p-3"), name="web"))
    with pytest.raises(Conflict, match=r"store role - Duplicate entry found with name op\.$"):
        await repo.create_role(Role(id=RoleId("r-2"), name="op"))
    with pytest.raises(Conflict):
        await repo.update_project(replace(renamed, name="web"))
    for lookup, kind in ((repo.project(ProjectId("x")), "project"),
                         (repo.user(UserId("x")), "user"), (repo.role(RoleId("x")), "role"),
                         (repo.domain(DomainId("x")), "domain"),
                         (repo.delete_user(UserId("x")), "user"),
                         (repo.update_role(Role(id=RoleId("x"), name="y")), "role")):
        with pytest.raises(NotFound, match=rf"^Could not find {kind}: x\.$"):
            await lookup
    with pytest.raises(NotFound, match=r"^Could not find role assignment with role: r-op, "
                                       r"user or group: u-wile, project, domain, or system: "
                                       r"p-2\.$"):
        await repo.unassign_role(user.id, other.id, role.id)


async def test_deletes_take_what_belongs_to_them(db: SqlDatabase) -> None:
    repo = db.identity
    project, user, role = await _base(db)
    await repo.create_domain(Domain(id=ACME, name="ACME"))
    acme_project = await repo.create_project(Project(id=ProjectId("p-a"), name="rockets",
                                                     domain_id=ACME))
    acme_user = await repo.create_user(User(id=UserId("u-a"), name="roadrunner",
                                            domain_id=ACME), NewPassword(None))
    await repo.assign_role(acme_user.id, acme_project.id, role.id)
    await repo.assign_role(user.id, acme_project.id, role.id)
    await repo.update_user(replace(user, default_project_id=acme_project.id))

    await repo.delete_domain(ACME)
    assert await repo.projects() == [project]
    assert await repo.users() == [replace(user, default_project_id=None)]
    assert await repo.role_assignments() == [
        RoleAssignment(user_id=user.id, project_id=project.id, role_id=role.id)]

    await repo.delete_project(project.id)  # wile's default project
    assert (await repo.user(user.id)).default_project_id is None
    assert await repo.role_assignments() == []
    await repo.assign_role(user.id, (await repo.create_project(
        Project(id=ProjectId("p-n"), name="new"))).id, role.id)
    await repo.delete_role(role.id)
    assert await repo.role_assignments() == []
    await repo.delete_user(user.id)
    assert await repo.users() == []


async def test_every_write_moves_the_revision_on(db: SqlDatabase, clock: FakeClock) -> None:
    repo = db.identity
    seen = [await repo.revision()]

    async def moved() -> None:
        seen.append(await repo.revision())
        assert seen[-1] != seen[-2], seen

    project, user, role = await _base(db)
    await moved()
    for write in (repo.create_domain(Domain(id=ACME, name="ACME")),
                  repo.update_domain(Domain(id=ACME, name="ACME", enabled=False)),
                  repo.update_project(replace(project, description="x")),
                  repo.update_user(replace(user, name="w2")),
                  repo.update_role(replace(role, name="r2")),
                  repo.unassign_role(user.id, project.id, role.id),
                  repo.assign_role(user.id, project.id, role.id),
                  repo.set_password_hash(user.id, None),
                  repo.revoke_token("audit-1", clock.now + timedelta(hours=1)),
                  repo.delete_role(role.id), repo.delete_user(user.id),
                  repo.delete_project(project.id), repo.delete_domain(ACME)):
        await write
        await moved()
    # Reads, and ensure_* of what exists, leave it.
    await repo.ensure_domain(DEFAULT_DOMAIN_ID, "Default")
    await repo.projects()
    assert await repo.revision() == seen[-1]


async def test_parallel_writers_of_two_processes_each_move_it_once(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    await db.identity.ensure_domain(DEFAULT_DOMAIN_ID, "Default")
    other = await open_db(db_url, clock)
    try:
        start = await db.identity.revision()
        await asyncio.gather(*(
            (db if i % 2 else other).identity.create_project(
                Project(id=ProjectId(f"p-{i}"), name=f"parallel-{i}"))
            for i in range(12)))
        assert await other.identity.revision() == start + 12
        assert len(await db.identity.projects()) == 12
    finally:
        await other.close()


async def test_user_revocations_cut_at_a_time(db: SqlDatabase, clock: FakeClock) -> None:
    repo = db.identity
    _, user, _ = await _base(db)
    before = clock.now
    assert not await repo.token_revoked(["a"], user_id=user.id, issued_at=before)
    clock.advance(10)
    await repo.set_password_hash(user.id, hash_password("new", FAST))
    assert await repo.token_revoked(["a"], user_id=user.id, issued_at=before)
    assert not await repo.token_revoked(["a"], user_id=user.id, issued_at=clock.now)
    clock.advance(10)
    await repo.update_user(replace(user, enabled=False))
    assert await repo.token_revoked(["a"], user_id=user.id,
                                    issued_at=clock.now - timedelta(seconds=1))
    await repo.revoke_token("a", clock.now + timedelta(hours=1))
    assert await repo.token_revoked(["b", "a"], user_id=user.id,
                                    issued_at=clock.now + timedelta(seconds=1))


# ---- the token validation cache ------------------------------------------------------------

@contextmanager
def statements(db: SqlDatabase) -> Iterator[list[str]]:
    """The SQL statements ``db`` runs meanwhile (transaction control left out)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.lstrip().upper().startswith(("BEGIN", "COMMIT", "ROLLBACK")):
            seen.append(statement)

    engine = db._store.engine.sync_engine
    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)


@dataclass
class Tokens:
    """Two API processes on one database: each its own connections and cache, one key
    repository."""

    a: TokenService
    b: TokenService
    db_a: SqlDatabase
    db_b: SqlDatabase
    project: Project
    user: User
    role: Role
    keys: KeyRepository


def _service(db: SqlDatabase, keys: KeyRepository, clock: FakeClock,
             cache_size: int = 10_000) -> TokenService:
    return TokenService(db.identity, TokenCodec(keys), expiration=timedelta(hours=1),
                        clock=clock, cache_size=cache_size)


@pytest.fixture
async def tokens(db: SqlDatabase, db_url: str, clock: FakeClock,
                 tmp_path: Path) -> AsyncIterator[Tokens]:
    project, user, role = await _base(db)
    keys = KeyRepository(tmp_path / "keys", max_active_keys=3)
    keys.ensure()
    other = await open_db(db_url, clock)
    try:
        yield Tokens(a=_service(db, keys, clock), b=_service(other, keys, clock),
                     db_a=db, db_b=other, project=project, user=user, role=role, keys=keys)
    finally:
        await other.close()


async def _issue(service: TokenService, t: Tokens) -> str:
    token, _ = await service.issue(AuthRequest(
        methods=("password",), user=NameRef(id=t.user.id), password=PASSWORD,
        project=NameRef(id=t.project.id)))
    return token


async def test_a_cached_validation_costs_one_query(tokens: Tokens) -> None:
    token = await _issue(tokens.a, tokens)
    with statements(tokens.db_a) as first:
        info = await tokens.a.validate(token)
    assert len(first) >= 5, first  # revision, revocations, user, project, domain, roles
    for _ in range(3):
        with statements(tokens.db_a) as later:
            assert await tokens.a.validate(token) == info
        assert len(later) == 1, later
        assert "identity_revision" in later[0]
    stats = tokens.a.statistics()
    assert (stats.hits, stats.misses, stats.size) == (3, 1, 1)
    with statements(tokens.db_a) as forged, pytest.raises(AuthFailed, match="not be read"):
        await tokens.a.validate(token[:-8] + "AAAAAAAA")
    assert forged == []


async def _change(name: str, t: Tokens, token: str, clock: FakeClock) -> None:
    """Make the change ``name`` through the *other* process."""
    repo = t.db_b.identity
    clock.advance(1)
    if name == "revoke":
        await t.b.revoke(token)
    elif name == "unassign":
        await repo.unassign_role(t.user.id, t.project.id, t.role.id)
    elif name == "delete role":
        await repo.delete_role(t.role.id)
    elif name == "disable user":
        await repo.update_user(replace(t.user, enabled=False))
    elif name == "password":
        await repo.set_password_hash(t.user.id, hash_password("other", FAST))
    elif name == "disable project":
        await repo.update_project(replace(t.project, enabled=False))
    elif name == "delete project":
        await repo.delete_project(t.project.id)
    elif name == "disable domain":
        await repo.update_domain(Domain(id=DEFAULT_DOMAIN_ID, name="Default", enabled=False))
    else:
        raise AssertionError(name)


@pytest.mark.parametrize("change", ["revoke", "unassign", "delete role", "disable user",
                                    "password", "disable project", "delete project",
                                    "disable domain"])
async def test_a_change_through_another_process_is_honoured_at_once(
        tokens: Tokens, clock: FakeClock, change: str) -> None:
    token = await _issue(tokens.a, tokens)
    await tokens.a.validate(token)
    await tokens.a.validate(token)
    assert tokens.a.statistics().hits == 1
    await _change(change, tokens, token, clock)
    with pytest.raises(AuthFailed):
        await tokens.a.validate(token)


async def test_an_unrelated_change_keeps_the_token_valid(tokens: Tokens,
                                                         clock: FakeClock) -> None:
    token = await _issue(tokens.a, tokens)
    info = await tokens.a.validate(token)
    await tokens.db_b.identity.create_role(Role(id=RoleId("r-x"), name="auditor"))
    await tokens.db_b.identity.assign_role(tokens.user.id, tokens.project.id, RoleId("r-x"))
    again = await tokens.a.validate(token)  # validated afresh: the revision moved
    assert [r.name for r in again.roles] == ["auditor", "operator"]
    assert again.payload == info.payload
    assert tokens.a.statistics().misses == 2


async def test_expiry_is_checked_on_every_use(tokens: Tokens, clock: FakeClock) -> None:
    token = await _issue(tokens.a, tokens)
    await tokens.a.validate(token)
    clock.advance(3599)
    await tokens.a.validate(token)
    clock.advance(1)
    with statements(tokens.db_a) as seen, pytest.raises(AuthFailed, match="expired"):
        await tokens.a.validate(token)
    assert len(seen) == 1


async def test_a_key_rotation_is_honoured_for_cached_tokens(tokens: Tokens) -> None:
    token = await _issue(tokens.a, tokens)
    await tokens.a.validate(token)
    tokens.keys.rotate()  # the token's key becomes a secondary: still valid
    await tokens.a.validate(token)
    tokens.keys.rotate()  # ... and is dropped (3 active keys at most)
    with pytest.raises(AuthFailed, match="could not be read"):
        await tokens.a.validate(token)


async def test_the_cache_is_bounded(tokens: Tokens, clock: FakeClock) -> None:
    small = _service(tokens.db_a, tokens.keys, clock, cache_size=2)
    issued = [await _issue(small, tokens) for _ in range(3)]
    for token in issued:
        await small.validate(token)
    assert small.statistics().size == 2
    await small.validate(issued[2])  # the newest stayed
    await small.validate(issued[0])  # the oldest was dropped
    stats = small.statistics()
    assert (stats.size, stats.hits, stats.misses) == (2, 1, 4)
