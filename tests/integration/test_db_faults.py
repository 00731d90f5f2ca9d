"""Database faults on real PostgreSQL reach the API as 400s and 503s, never 500s, and the
cloud recovers by itself once the database is back.

* a NUL character, which PostgreSQL cannot store in text (22021), is a 400;
* a name filter Python's ``re`` accepts but PostgreSQL's ``~`` does not (2201B) is a 400;
* a backend terminated by an administrator (57P01) mid-request is a 503 with
  ``Retry-After``, and the next request gets a fresh connection;
* a database that refuses connections is a 503 on every path that reads it, the token
  check of the auth middleware included; the first request after it is back succeeds.

The shared PostgreSQL server is never stopped: each test has its own database, backends
are terminated one by one, and "down" is a loopback TCP proxy in front of the server
that the test closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import httpx
import pytest

from strato.api import ApiDeps, StaticTokenAuth, create_app
from strato.bootstrap import create_api
from strato.config import ApiSettings, Settings
from strato.db.migrate import upgrade
from strato.db.ports import InstanceQuery
from strato.db.sql import SqlDatabase
from strato.domain.errors import Invalid, Unavailable
from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor
from strato.image.store import ImageStore
from strato.testing.infra import PG_ADMIN_DSN, temporary_database
from tests.api_fixtures import ADMIN, ALICE, seed
from tests.fakes.bus import RecordingBus

pytestmark = pytest.mark.postgres

# Python's re accepts a named group; PostgreSQL's regex engine refuses "(?P".
PG_BAD_REGEX = "(?P<n>web)"


def _dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://")


def _name(url: str) -> str:
    return url.rsplit("/", 1)[1]


@pytest.fixture
async def pg() -> AsyncIterator[str]:
    """A migrated PostgreSQL database of this test's own."""
    async with temporary_database("strato_fault") as url:
        await upgrade(url)
        yield url


@contextlib.asynccontextmanager
async def _api(url: str, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    db = await SqlDatabase.open(url)
    try:
        await seed(db)
        settings = ApiSettings(admin_token=ADMIN)
        auth = StaticTokenAuth(ADMIN, tokens={ALICE: ("alice", "project-a", ("member",))})
        app = create_app(ApiDeps(db=db, bus=RecordingBus(), auth=auth, settings=settings,
                                 image_store=ImageStore(tmp_path / "images")), settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://strato.test",
                                     headers={"X-Auth-Token": ALICE}) as client:
            yield client
    finally:
        await db.close()


async def _terminate_app_backends(url: str, *, waiting_on_lock: bool = False) -> int:
    """Terminate the app's backends on ``url``'s database (only those waiting for a lock
    when asked); how many."""
    admin = await asyncpg.connect(PG_ADMIN_DSN)
    try:
        query = ("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                 "WHERE datname = $1 AND pid <> pg_backend_pid()")
        if waiting_on_lock:
            query += " AND wait_event_type = 'Lock'"
        return len(await admin.fetch(query, _name(url)))
    finally:
        await admin.close()


# -- the adapter ------------------------------------------------------------------------

async def test_nul_and_a_regex_postgres_refuses_are_invalid(pg: str) -> None:
    db = await SqlDatabase.open(pg)
    try:
        with pytest.raises(Invalid):
            await db.flavors.create(Flavor(id=FlavorId("9"), name="nul\x00name", vcpus=1,
                                           memory_mb=64, root_gb=1))
        with pytest.raises(Invalid):
            await db.instances.list(InstanceQuery(name=PG_BAD_REGEX))
        assert await db.flavors.list() == []
    finally:
        await db.close()


async def test_a_terminated_backend_is_unavailable_then_the_next_call_works(pg: str) -> None:
    db = await SqlDatabase.open(pg)
    admin = await asyncpg.connect(_dsn(pg))
    try:
        lock = admin.transaction()
        await lock.start()
        await admin.execute("LOCK TABLE flavors IN ACCESS EXCLUSIVE MODE")
        listing = asyncio.create_task(db.flavors.list())
        while not await _terminate_app_backends(pg, waiting_on_lock=True):
            await asyncio.sleep(0.02)
        with pytest.raises(Unavailable):
            await listing
        await lock.rollback()
        assert await db.flavors.list() == []
    finally:
        await admin.close()
        await db.close()


# -- the API ----------------------------------------------------------------------------

async def test_nul_in_a_body_query_or_path_is_a_400(pg: str, tmp_path: Path) -> None:
    async with _api(pg, tmp_path) as client:
        created = await client.post("/v2.1/servers", json={"server": {
            "name": "web\x00", "imageRef": "8f1c2b52-3f6a-4b8e-9d53-0c6c4d0e2f11",
            "flavorRef": "1"}})
        assert created.status_code == 400, created.text
        assert "badRequest" in created.json()
        assert (await client.get("/v2.1/servers", params={"name": "w\x00"})).status_code == 400
        assert (await client.get("/v2.1/servers/abc%00")).status_code == 404
        assert (await client.get("/v2.1/servers")).json() == {"servers": []}


async def test_a_regex_postgres_refuses_is_a_400(pg: str, tmp_path: Path) -> None:
    async with _api(pg, tmp_path) as client:
        response = await client.get("/v2.1/servers", params={"name": PG_BAD_REGEX})
        assert response.status_code == 400, response.text
        assert "badRequest" in response.json()


async def test_a_backend_terminated_mid_request_is_a_503_then_requests_work(
        pg: str, tmp_path: Path) -> None:
    async with _api(pg, tmp_path) as client:
        assert (await client.get("/v2.1/flavors")).status_code == 200
        # Idle pooled connections killed: the pool notices (pre-ping) and reconnects.
        assert await _terminate_app_backends(pg) > 0
        assert (await client.get("/v2.1/flavors")).status_code == 200
        # A connection killed while the request is waiting on it: 503, then recovery.
        admin = await asyncpg.connect(_dsn(pg))
        try:
            lock = admin.transaction()
            await lock.start()
            await admin.execute("LOCK TABLE flavors IN ACCESS EXCLUSIVE MODE")
            pending = asyncio.create_task(client.get("/v2.1/flavors"))
            while not await _terminate_app_backends(pg, waiting_on_lock=True):
                await asyncio.sleep(0.02)
            response = await pending
            await lock.rollback()
        finally:
            await admin.close()
        assert response.status_code == 503, response.text
        assert response.json()["serviceUnavailable"]["code"] == 503
        assert int(response.headers["Retry-After"]) > 0
        assert (await client.get("/v2.1/flavors")).status_code == 200


@dataclass
class _Proxy:
    """A loopback TCP proxy to the PostgreSQL server that the test can take down (every
    connection cut, new ones refused) and bring back on the same port."""

    port: int = 0
    server: asyncio.Server | None = None
    writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def up(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", self.port,
                                                 reuse_address=True)
        self.port = self.server.sockets[0].getsockname()[1]

    async def down(self) -> None:
        assert self.server is not None
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()
        await self.server.wait_closed()
        self.server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", 5432)
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.transport.abort()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self.writers -= {writer, up_writer}


async def test_a_database_that_is_down_is_a_503_everywhere_then_recovers(
        pg: str, tmp_path: Path) -> None:
    proxy = _Proxy()
    await proxy.up()
    url = pg.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    settings = Settings(data_dir=tmp_path, db={"url": url},
                        api={"admin_token": ADMIN})
    db = await SqlDatabase.open(url)
    try:
        app = await create_api(settings, db, RecordingBus())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://strato.test") as client:
            login = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "domain": {"id": "default"},
                "password": settings.identity.admin_password}}},
                "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}
            issued = await client.post("/identity/v3/auth/tokens", json=login)
            assert issued.status_code == 201, issued.text
            token = {"X-Auth-Token": issued.headers["X-Subject-Token"]}
            assert (await client.get("/v2.1/servers", headers=token)).status_code == 200

            await proxy.down()
            # The token check in the auth middleware reads the database.
            listing = await client.get("/v2.1/servers", headers=token)
            assert listing.status_code == 503, listing.text
            assert listing.json()["serviceUnavailable"]["code"] == 503
            assert int(listing.headers["Retry-After"]) > 0
            login_down = await client.post("/identity/v3/auth/tokens", json=login)
            assert login_down.status_code == 503, login_down.text
            assert login_down.json()["error"]["code"] == 503
            admin_down = await client.get("/v2.1/flavors", headers={"X-Auth-Token": ADMIN})
            assert admin_down.status_code == 503, admin_down.text
            networks_down = await client.get("/networking/v2.0/networks", headers=token)
            assert networks_down.status_code == 503, networks_down.text
            assert networks_down.json()["NeutronError"]["type"] == "HTTPServiceUnavailable"
            assert int(networks_down.headers["Retry-After"]) > 0

            await proxy.up()
            assert (await client.get("/v2.1/servers", headers=token)).status_code == 200
    finally:
        await db.close()
        if proxy.server is not None:
            await proxy.down()
