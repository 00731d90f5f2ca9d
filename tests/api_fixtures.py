"""The API under test: the real app on a real SQLite database (in ``tmp_path``), a
recording bus, and three callers (an admin and members of two projects).

Test modules import the ``api`` fixture (``api_fixture``) from here. The app is driven
in-process through ``httpx.ASGITransport``: no sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from strato.api import ApiDeps, StaticTokenAuth, create_app
from strato.config import ApiSettings
from strato.db.migrate import upgrade
from strato.db.ports import InstanceQuery
from strato.db.sql import SqlDatabase
from strato.domain.ids import FlavorId, ImageId, ProjectId
from strato.domain.images import Image, ImageStatus
from strato.domain.instances import Instance
from strato.domain.resources import Flavor
from strato.image.store import ImageStore
from tests.fakes.bus import RecordingBus

__all__ = ["ADMIN", "ALICE", "BOB", "IMAGE_ID", "Api", "api_fixture", "open_api",
           "run_property"]

ADMIN = "admin-secret"
ALICE = "alice-token"  # member of project-a
BOB = "bob-token"      # member of project-b
IMAGE_ID = "8f1c2b52-3f6a-4b8e-9d53-0c6c4d0e2f11"
MAX_METADATA = 8


@dataclass
class Api:
    """The app and what it talks to."""

    app: FastAPI
    client: httpx.AsyncClient
    db: SqlDatabase
    bus: RecordingBus
    store: ImageStore

    async def request(self, method: str, path: str, *, token: str | None = ALICE,
                      **kwargs: Any) -> httpx.Response:
        """Send a request as ``token``'s owner (anonymous with ``None``)."""
        headers = dict(kwargs.pop("headers", {}))
        if token is not None:
            headers["X-Auth-Token"] = token
        return await self.client.request(method, path, headers=headers, **kwargs)

    async def create_server(self, token: str = ALICE, *, headers: dict[str, str] | None = None,
                            **fields: Any) -> httpx.Response:
        """``POST /v2.1/servers`` with a valid body, overridden by ``fields``."""
        server = {"name": "web", "imageRef": IMAGE_ID, "flavorRef": "1", **fields}
        return await self.request("POST", "/v2.1/servers", token=token,
                                  headers=headers or {}, json={"server": server})

    async def instances(self, *, include_deleted: bool = False) -> list[Instance]:
        """Every instance row, straight from the database."""
        return await self.db.instances.list(InstanceQuery(include_deleted=include_deleted))


async def seed(db: SqlDatabase) -> None:
    """Flavors 1 (small, public), 2 (private) and 3 (disabled); one active public image."""
    await db.flavors.create(Flavor(id=FlavorId("1"), name="m1.small", vcpus=1,
                                   memory_mb=512, root_gb=1))
    await db.flavors.create(Flavor(id=FlavorId("2"), name="m1.private", vcpus=2,
                                   memory_mb=2048, root_gb=20, is_public=False))
    await db.flavors.create(Flavor(id=FlavorId("3"), name="m1.disabled", vcpus=1,
                                   memory_mb=512, root_gb=1, disabled=True))
    now = datetime.now(UTC)
    await db.images.create(Image(id=ImageId(IMAGE_ID), name="cirros", disk_format="qcow2",
                                 container_format="bare", visibility="public",
                                 owner=ProjectId("admin"), created_at=now, updated_at=now))
    await db.images.set_status(ImageId(IMAGE_ID), ImageStatus.ACTIVE, size=1024,
                               checksum="0" * 32)


@asynccontextmanager
async def open_api(tmp_path: Path) -> AsyncIterator[Api]:
    """A fresh app over a fresh, seeded database under ``tmp_path``."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'strato.db'}"
    await upgrade(url)
    db = await SqlDatabase.open(url)
    try:
        await seed(db)
        bus = RecordingBus()
        store = ImageStore(tmp_path / "images")
        settings = ApiSettings(admin_token=ADMIN, max_metadata_items=MAX_METADATA)
        auth = StaticTokenAuth(ADMIN, tokens={ALICE: ("alice", "project-a", ("member",)),
                                              BOB: ("bob", "project-b", ("member",))})
        deps = ApiDeps(db=db, bus=bus, image_store=store, auth=auth, settings=settings)
        app = create_app(deps, settings)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://strato.test") as client:
            yield Api(app=app, client=client, db=db, bus=bus, store=store)
    finally:
        await db.close()


@pytest.fixture(name="api")
async def api_fixture(tmp_path: Path) -> AsyncIterator[Api]:
    """The API under test (see :func:`open_api`); test modules import this function,
    and pytest knows it as ``api``."""
    async with open_api(tmp_path) as opened:
        yield opened


def run_property(tmp_path: Path, check: Callable[[asyncio.Runner, Api, Any], None],
                  strategy: st.SearchStrategy[Any]) -> None:
    """Run ``check(runner, api, example)`` for 300 hypothesis examples of ``strategy``,
    all against one API (opening a fresh one per example would dominate the run)."""
    with asyncio.Runner() as runner:
        context = open_api(tmp_path)
        opened = runner.run(context.__aenter__())
        try:
            @settings(max_examples=300, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow])
            @given(body=strategy)
            def run(body: Any) -> None:
                check(runner, opened, body)

            run()
        finally:
            runner.run(context.__aexit__(None, None, None))
