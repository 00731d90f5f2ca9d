"""No field may hold a NUL character (``\\u0000``), on any backend: PostgreSQL cannot
store one in text, and SQLite would keep a value other tools cut short. Every API
refuses one with a 400 in its own fault format before anything is written, whether it
comes in a JSON body (any depth, keys too), a JSON-patch body or a query parameter; in
the path it is a 404 (nothing lives there). The backend here is SQLite;
tests/integration/test_db_faults.py repeats the compute checks on PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strato.api.bodies import refuse_nul
from strato.domain.errors import Invalid
from tests.cloud_fixtures import ADMIN_TOKEN, Harness, fake_hosts, running_cloud

PATCH = {"Content-Type": "application/openstack-images-v2.1-json-patch"}


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_cloud(tmp_path, fake_hosts(1)) as harness:
        yield harness


@pytest.fixture
async def http(cloud: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cloud.cloud.app)
    async with httpx.AsyncClient(base_url="http://strato", transport=transport,
                                 headers={"X-Auth-Token": ADMIN_TOKEN}) as client:
        yield client


def _refused(response: httpx.Response) -> str:
    """The fault message of a 400 (in whichever API's format)."""
    assert response.status_code == 400, response.text
    body: Any = response.json()
    fault = body.get("badRequest") or body.get("NeutronError") or body.get("error") or body
    message: str = fault["message"]
    assert "NUL" in message, message
    return message


def test_the_walk_names_the_first_field_holding_a_nul() -> None:
    assert refuse_nul({"a": [1, "ok", {"b": None}]}) == {"a": [1, "ok", {"b": None}]}
    for body, field in (({"server": {"name": "x\x00"}}, "server.name"),
                        ({"server": {"metadata": {"k\x00": "v"}}}, "server.metadata.k\\u0000"),
                        ([{"op": "add", "value": ["a", "b\x00"]}], "0.value.1"),
                        ("\x00", "body")):
        with pytest.raises(Invalid) as refused:
            refuse_nul(body)
        assert f"field/attribute {field}." in str(refused.value)
    deep: Any = "\x00"
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(Invalid):
        refuse_nul(deep)


async def test_compute_bodies_queries_and_paths_refuse_nul(
        cloud: Harness, http: httpx.AsyncClient) -> None:
    server = {"name": "web", "imageRef": cloud.image_id, "flavorRef": "1"}
    message = _refused(await http.post("/v2.1/servers",
                                       json={"server": {**server, "name": "web\x00"}}))
    assert message.startswith("Invalid input for field/attribute server.name.")
    _refused(await http.post("/v2.1/servers", json={"server": {
        **server, "metadata": {"key\x00": "v"}}}))
    _refused(await http.post("/v2.1/os-keypairs", json={"keypair": {"name": "k\x00"}}))
    _refused(await http.post("/v2.1/flavors", json={"flavor": {
        "name": "f\x00", "ram": 64, "vcpus": 1, "disk": 1}}))
    _refused(await http.get("/v2.1/servers", params={"name": "w\x00"}))
    _refused(await http.get("/v2.1/servers/detail?status=%00"))
    missing = await http.get("/v2.1/servers/abc%00")
    assert missing.status_code == 404, missing.text
    assert missing.json()["itemNotFound"]["code"] == 404
    assert (await http.get("/v2.1/servers")).json() == {"servers": []}
    assert (await http.get("/v2.1/os-keypairs")).json() == {"keypairs": []}
    flavors = (await http.get("/v2.1/flavors")).json()["flavors"]
    assert all("\x00" not in f["name"] for f in flavors)


async def test_image_bodies_and_json_patches_refuse_nul(http: httpx.AsyncClient) -> None:
    before = (await http.get("/image/v2/images")).json()["images"]
    created = await http.post("/image/v2/images", json={"name": "i\x00",
                                                        "disk_format": "raw"})
    assert created.json()["code"] == "400 Bad Request"
    _refused(created)
    image = await http.post("/image/v2/images", json={"name": "clean", "disk_format": "raw",
                                                      "container_format": "bare"})
    assert image.status_code == 201, image.text
    url = f"/image/v2/images/{image.json()['id']}"
    patch = [{"op": "replace", "path": "/name", "value": "n\x00"}]
    _refused(await http.patch(url, content=json.dumps(patch), headers=PATCH))
    tag = [{"op": "add", "path": "/tags/-", "value": "t\x00"}]
    _refused(await http.patch(url, content=json.dumps(tag), headers=PATCH))
    assert (await http.get(url)).json()["name"] == "clean"
    assert (await http.get(url)).json()["tags"] == []
    after = (await http.get("/image/v2/images")).json()["images"]
    assert len(after) == len(before) + 1


async def test_network_bodies_refuse_nul(http: httpx.AsyncClient) -> None:
    refused = await http.post("/networking/v2.0/networks", json={"network": {"name": "n\x00"}})
    assert refused.json()["NeutronError"]["type"] == "InvalidInput"
    _refused(refused)
    _refused(await http.post("/networking/v2.0/security-groups",
                             json={"security_group": {"name": "sg", "description": "\x00"}}))
    assert (await http.get("/networking/v2.0/networks")).json()["networks"] == []


async def test_identity_bodies_refuse_nul(http: httpx.AsyncClient) -> None:
    projects = (await http.get("/identity/v3/projects")).json()["projects"]
    refused = await http.post("/identity/v3/projects", json={"project": {"name": "p\x00"}})
    assert refused.json()["error"]["code"] == 400
    _refused(refused)
    login = {"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": "admin\x00", "domain": {"id": "default"}, "password": "x"}}}}}
    _refused(await http.post("/identity/v3/auth/tokens", json=login, headers={}))
    assert (await http.get("/identity/v3/projects")).json()["projects"] == projects
