"""Password logins as Keystone guards them: one hash check whatever the name (no user
enumeration by timing), the account lockout, and the per-address throttle; plus the
bootstrap admin's password surviving a restart, and private credential files."""

from __future__ import annotations

import os
import stat
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from strato.bootstrap import create_api
from strato.cli import app as cli_app
from strato.db.migrate import upgrade
from strato.db.sql import SqlDatabase
from strato.domain.identity import DEFAULT_DOMAIN_ID, AuthFailed, NewPassword, User
from strato.domain.ids import UserId, new_uuid
from strato.identity.fernet import KeyRepository, TokenCodec
from strato.identity.lockout import LockoutPolicy, LoginGuard, LoginThrottled
from strato.identity.service import AuthRequest, NameRef, TokenService
from tests.cloud_fixtures import ADMIN_TOKEN, Harness, fake_hosts, running_cloud
from tests.db_fixtures import FakeClock, open_db

TOKENS = "/identity/v3/auth/tokens"
RIGHT = "right-password"


@dataclass
class CountingHasher:
    """A :class:`~strato.identity.passwords.PasswordHasher` that is fast and counts the
    checks it was asked for."""

    verified: list[str | None] = field(default_factory=list)

    def hash(self, password: str) -> str:
        return f"plain${password}"

    def verify(self, password: str, encoded: str | None) -> bool:
        self.verified.append(encoded)
        return encoded == f"plain${password}"


class Seconds:
    """An injectable monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Ids:
    db: SqlDatabase
    codec: TokenCodec
    hasher: CountingHasher
    seconds: Seconds
    alice: User
    carol: User  # disabled
    dave: User  # no password

    def service(self, policy: LockoutPolicy | None = None) -> TokenService:
        guard = LoginGuard(policy or LockoutPolicy(), clock=self.seconds)
        return TokenService(self.db.identity, self.codec, expiration=timedelta(hours=1),
                            clock=self.db.now, hasher=self.hasher, guard=guard)


@pytest.fixture
async def ids(tmp_path: Path) -> AsyncIterator[Ids]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'identity.db'}"
    await upgrade(url)
    db = await open_db(url, FakeClock())
    keys = KeyRepository(tmp_path / "keys")
    keys.ensure()
    hasher = CountingHasher()
    await db.identity.ensure_domain(DEFAULT_DOMAIN_ID, "Default")

    async def user(name: str, password: str | None, enabled: bool = True) -> User:
        return await db.identity.create_user(
            User(id=UserId(new_uuid()), name=name, enabled=enabled),
            NewPassword(hasher.hash(password) if password is not None else None))

    try:
        alice, carol = await user("alice", RIGHT), await user("carol", RIGHT, False)
        dave = await user("dave", None)
        yield Ids(db=db, codec=TokenCodec(keys), hasher=hasher, seconds=Seconds(),
                  alice=alice, carol=carol, dave=dave)
    finally:
        await db.close()


def _login(name: str, password: str = "wrong", *, domain: str = "default",
           source: str | None = "192.0.2.7") -> AuthRequest:
    return AuthRequest(methods=("password",), password=password, source=source,
                       user=NameRef(name=name, domain=NameRef(id=domain)))


async def _refused(tokens: TokenService, request: AuthRequest) -> None:
    with pytest.raises(AuthFailed) as refused:
        await tokens.issue(request)
    assert not isinstance(refused.value, LoginThrottled)
    assert str(refused.value) == "The request you have made requires authentication."


# ---- no user enumeration by timing


@pytest.mark.parametrize("request_", [
    _login("alice"),                       # known user, wrong password
    _login("nobody"),                      # unknown name
    _login("alice", domain="nowhere"),     # unknown domain
    _login("carol", RIGHT),                # disabled user, even with its password
    _login("dave", ""),                    # a user without a password
], ids=["wrong-password", "unknown-user", "unknown-domain", "disabled", "no-password"])
async def test_every_refused_login_checks_one_hash(ids: Ids, request_: AuthRequest) -> None:
    await _refused(ids.service(), request_)
    assert len(ids.hasher.verified) == 1
    # An unknown or disabled user is checked against a dummy hash, not against nothing.
    assert ids.hasher.verified[0] is not None


async def test_a_right_password_checks_one_hash_too(ids: Ids) -> None:
    _, info = await ids.service().issue(_login("alice", RIGHT))
    assert info.user.id == ids.alice.id
    assert ids.hasher.verified == [f"plain${RIGHT}"]


# ---- lockout (Keystone's lockout_failure_attempts / lockout_duration)


async def test_lockout_refuses_the_right_password_until_its_duration_ends(ids: Ids) -> None:
    tokens = ids.service(LockoutPolicy(failure_attempts=3, duration=600, source_failures=0))
    for _ in range(3):
        await _refused(tokens, _login("alice"))
    await _refused(tokens, _login("alice", RIGHT))  # locked: even the right one
    ids.seconds.now += 599
    await _refused(tokens, _login("alice", RIGHT))
    ids.seconds.now += 1
    _, info = await tokens.issue(_login("alice", RIGHT))
    assert info.user.id == ids.alice.id


async def test_a_success_starts_the_count_again(ids: Ids) -> None:
    tokens = ids.service(LockoutPolicy(failure_attempts=3, duration=600, source_failures=0))
    for _ in range(2):
        await _refused(tokens, _login("alice"))
    await tokens.issue(_login("alice", RIGHT))
    for _ in range(2):
        await _refused(tokens, _login("alice"))
    await tokens.issue(_login("alice", RIGHT))  # 2 + 2 failures, never 3 in a row


async def test_failures_further_apart_than_the_duration_do_not_add_up(ids: Ids) -> None:
    tokens = ids.service(LockoutPolicy(failure_attempts=3, duration=600, source_failures=0))
    for _ in range(5):
        await _refused(tokens, _login("alice"))
        ids.seconds.now += 600
    await tokens.issue(_login("alice", RIGHT))


async def test_lockout_is_per_user(ids: Ids) -> None:
    tokens = ids.service(LockoutPolicy(failure_attempts=2, duration=600, source_failures=0))
    bob = await ids.db.identity.create_user(User(id=UserId(new_uuid()), name="bob"),
                                            NewPassword(ids.hasher.hash(RIGHT)))
    for _ in range(2):
        await _refused(tokens, _login("alice"))
    _, info = await tokens.issue(_login("bob", RIGHT))
    assert info.user.id == bob.id


# ---- the per-address throttle


async def test_failed_logins_from_one_address_are_throttled_with_429(ids: Ids) -> None:
    tokens = ids.service(LockoutPolicy(failure_attempts=0, source_failures=3,
                                       source_window=60))
    for name in ("nobody", "alice", "someone"):  # known or not, each failure counts
        await _refused(tokens, _login(name))
    with pytest.raises(LoginThrottled) as throttled:
        await tokens.issue(_login("alice", RIGHT))
    assert throttled.value.retry_after == 60
    assert len(ids.hasher.verified) == 3  # a throttled login costs no hash
    # Another address is not throttled; this one is again when the window ends.
    await tokens.issue(_login("alice", RIGHT, source="198.51.100.9"))
    ids.seconds.now += 45
    with pytest.raises(LoginThrottled) as throttled:
        await tokens.issue(_login("alice", RIGHT))
    assert throttled.value.retry_after == 15
    ids.seconds.now += 15
    await tokens.issue(_login("alice", RIGHT))


# ---- through the API, with the settings


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_cloud(tmp_path, fake_hosts(1), identity={
            "lockout_failure_attempts": 3, "failed_login_source_limit": 5}) as harness:
        yield harness


def _body(name: str, password: str) -> dict[str, Any]:
    return {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": name, "domain": {"id": "default"}, "password": password}}}}}


async def _post(app: Any, body: dict[str, Any]) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(base_url="http://strato", transport=transport) as http:
        return await http.post(TOKENS, json=body)


async def test_api_locks_the_account_then_throttles_the_address(cloud: Harness) -> None:
    app = cloud.cloud.app
    password = cloud.cloud.settings.identity.admin_password or ""
    for _ in range(3):
        assert (await _post(app, _body("admin", "wrong"))).status_code == 401
    locked = await _post(app, _body("admin", password))
    assert locked.status_code == 401, locked.text
    assert locked.json()["error"]["code"] == 401
    for _ in range(2):
        assert (await _post(app, _body("nobody", "wrong"))).status_code == 401
    throttled = await _post(app, _body("nobody", "wrong"))
    assert throttled.status_code == 429, throttled.text
    assert int(throttled.headers["retry-after"]) > 0
    assert throttled.json()["error"]["code"] == 429


# ---- the bootstrap admin's password (set when the admin is created, not at each start)


async def test_admin_password_changed_through_the_api_survives_a_restart(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1),
                             api={"admin_token": ADMIN_TOKEN}) as h:
        old = h.cloud.settings.identity.admin_password or ""
        admin = await h.cloud.db.identity.user_by_name("admin")
        resp = await h.client.request(
            "POST", f"/identity/v3/users/{admin.id}/password",
            json={"user": {"original_password": old, "password": "changed-by-api"}})
        assert resp.status_code == 204, resp.text
        # A restart: the API is built again on the same database, as `strato up` does.
        app = await create_api(h.cloud.settings, h.cloud.db, h.cloud.bus)
        assert (await _post(app, _body("admin", "changed-by-api"))).status_code == 201
        assert (await _post(app, _body("admin", old))).status_code == 401


# ---- files holding secrets


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def loose_umask() -> Iterator[None]:
    old = os.umask(0o002)
    try:
        yield
    finally:
        os.umask(old)


def _secret_files(data: Path) -> list[Path]:
    names = ["strato.db", "strato.db-wal", "strato.db-shm", "clouds.yaml", "service-token"]
    keys = sorted((data / "fernet-keys").iterdir()) if (data / "fernet-keys").exists() else []
    return [p for p in (data / n for n in names) if p.exists()] + keys


def _assert_private(data: Path, *expected: str) -> None:
    files = _secret_files(data)
    assert {p.name for p in files} >= set(expected)
    assert {p.name: _mode(p) for p in files} == {p.name: 0o600 for p in files}
    # The data dir lists nothing to others; it stays traversable (QEMU reaches the
    # instances directory inside it as its own user).
    assert _mode(data) == 0o711
    if (data / "fernet-keys").exists():
        assert _mode(data / "fernet-keys") == 0o700


@pytest.mark.usefixtures("loose_umask")
def test_strato_bootstrap_makes_private_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    result = CliRunner().invoke(cli_app, ["bootstrap"],
                                env={"STRATO_DATA_DIR": str(data)})
    assert result.exit_code == 0, result.output
    _assert_private(data, "strato.db", "clouds.yaml")


@pytest.mark.usefixtures("loose_umask")
async def test_start_tightens_existing_files(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    for name in ("strato.db", "clouds.yaml", "service-token"):
        (data / name).write_text("" if name == "strato.db" else "old\n")
        (data / name).chmod(0o644)
    (data / "fernet-keys").mkdir()
    (data / "fernet-keys").chmod(0o755)
    async with running_cloud(data, fake_hosts(1)) as h:
        del h
        _assert_private(data, "strato.db", "service-token", "0", "1")
        assert _mode(data / "clouds.yaml") == 0o600

