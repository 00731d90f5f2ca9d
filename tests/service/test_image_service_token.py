"""Issue 15, images: the API as ``strato up`` builds it (``bootstrap.create_api``).

- An API that starts finds the uploads a killed API left ``saving``: each image goes back
  to ``queued`` (as Glance does on a failed upload) and its temporary file is removed;
  an upload another process still writes (its file locked) is left alone.
- The service token computes use reads and downloads images, and can do nothing else.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx

from strato.bootstrap import create_api, open_database, service_token
from strato.db.sql import SqlDatabase
from strato.domain.ids import ImageId, ProjectId, new_uuid
from strato.domain.images import Image, ImageStatus
from tests.cloud_fixtures import ADMIN_TOKEN
from tests.cloud_fixtures import test_settings as settings_for
from tests.fakes.bus import RecordingBus

IMAGES = "/image/v2/images"


@asynccontextmanager
async def _api(tmp_path: Path) -> AsyncIterator[tuple[SqlDatabase, httpx.AsyncClient]]:
    settings = settings_for(tmp_path)
    db = await open_database(settings, migrate=True)
    try:
        app = await create_api(settings, db, RecordingBus())
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://strato") as client:
            yield db, client
    finally:
        await db.close()


async def _saving_image(db: SqlDatabase) -> ImageId:
    image_id = ImageId(new_uuid())
    now = datetime.now(UTC)
    await db.images.create(Image(id=image_id, name="big", disk_format="raw",
                                 container_format="bare", owner=ProjectId("p1"),
                                 created_at=now, updated_at=now))
    await db.images.set_status(image_id, ImageStatus.SAVING)
    return image_id


async def test_uploads_a_killed_api_left_saving_are_swept_at_start(tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    db = await open_database(settings, migrate=True)
    store = tmp_path / "images"
    store.mkdir(mode=0o755)
    try:
        # What a SIGKILLed API leaves: rows in saving, their temporary files, and an
        # older store's readable image file.
        dead = await _saving_image(db)
        dead_part = store / f".{dead}.{'0f' * 16}.part"
        dead_part.write_bytes(b"x" * 1000)
        live = await _saving_image(db)
        live_part = store / f".{live}.{'1e' * 16}.part"
        live_part.write_bytes(b"y" * 1000)
        old = store / new_uuid()
        old.write_bytes(b"z")
        os.chmod(old, 0o644)
        # Another API process on this store is still writing the second upload.
        holder = os.open(live_part, os.O_RDONLY)
        fcntl.flock(holder, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            await create_api(settings, db, RecordingBus())
        finally:
            os.close(holder)
        assert (await db.images.get(dead)).status == ImageStatus.QUEUED
        assert (await db.images.get(live)).status == ImageStatus.SAVING
        assert sorted(p.name for p in store.iterdir()) == sorted([live_part.name, old.name])
        assert os.stat(store).st_mode & 0o777 == 0o700
        assert os.stat(old).st_mode & 0o777 == 0o600
    finally:
        await db.close()


async def test_service_token_downloads_images_and_does_nothing_else(tmp_path: Path) -> None:
    async with _api(tmp_path) as (_db, client):
        admin = {"X-Auth-Token": ADMIN_TOKEN}
        created = await client.post(IMAGES, headers=admin, json={
            "name": "private", "disk_format": "raw", "container_format": "bare",
            "visibility": "private"})
        image_id = created.json()["id"]
        put = await client.put(f"{IMAGES}/{image_id}/file", content=b"data" * 100,
                               headers={**admin, "Content-Type": "application/octet-stream"})
        assert put.status_code == 204
        service = {"X-Auth-Token": service_token(settings_for(tmp_path))}
        # What a compute needs: the image's record and data, whoever owns it.
        shown = await client.get(f"{IMAGES}/{image_id}", headers=service)
        assert shown.status_code == 200 and shown.json()["id"] == image_id
        data = await client.get(f"{IMAGES}/{image_id}/file", headers=service)
        assert (data.status_code, data.content) == (200, b"data" * 100)
        # Nothing else.
        refused = [
            await client.post("/v2.1/servers", headers=service, json={"server": {
                "name": "x", "imageRef": image_id, "flavorRef": "1"}}),
            await client.get("/v2.1/os-hypervisors", headers=service),
            await client.get("/v2.1/servers?all_tenants=1", headers=service),
            await client.delete(f"{IMAGES}/{image_id}", headers=service),
            await client.post(IMAGES, headers=service, json={"name": "x"}),
            await client.put(f"{IMAGES}/{image_id}/file", content=b"",
                             headers={**service, "Content-Type": "application/octet-stream"}),
            await client.get(IMAGES, headers=service),
            await client.get("/identity/v3/users", headers=service),
            await client.post("/identity/v3/users", headers=service,
                              json={"user": {"name": "mallory", "password": "p"}}),
            await client.post("/v2.1/flavors", headers=service, json={"flavor": {
                "name": "f", "ram": 1, "vcpus": 1, "disk": 1}}),
            await client.post("/networking/v2.0/networks", headers=service,
                              json={"network": {"name": "n"}}),
        ]
        assert [r.status_code for r in refused] == [403] * len(refused), \
            [(r.request.method, r.request.url.path, r.status_code) for r in refused]
        still = await client.get(f"{IMAGES}/{image_id}", headers=admin)
        assert still.status_code == 200
