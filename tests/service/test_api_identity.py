"""The Identity API (Keystone v3 tokens) through an in-process cloud."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from strato.domain.ids import ProjectId
from strato.identity.passwords import Argon2Params, hash_password
from tests.cloud_fixtures import ADMIN_TOKEN, Harness, fake_hosts, running_cloud

PASSWORD = "strato-admin"
PUBLIC = "http://cloud.example:8774"
TOKENS = "/identity/v3/auth/tokens"


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_cloud(tmp_path, fake_hosts(1),
                             api={"admin_token": ADMIN_TOKEN, "public_url": PUBLIC}) as harness:
        yield harness


@pytest.fixture
async def http(cloud: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cloud.cloud.app)
    async with httpx.AsyncClient(base_url="http://strato", transport=transport) as client:
        yield client


def _password_body(user: dict[str, Any], password: str = PASSWORD,
                   scope: dict[str, Any] | None = None) -> dict[str, Any]:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {
        "user": {**user, "password": password}}}}
    if scope is not None:
        auth["scope"] = scope
    return {"auth": auth}


BY_NAME = {"name": "admin", "domain": {"id": "default"}}
ADMIN_PROJECT = {"project": {"name": "admin", "domain": {"name": "Default"}}}


async def _token(http: httpx.AsyncClient, body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    resp = await http.post(TOKENS, json=body)
    assert resp.status_code == 201, resp.text
    return resp.headers["x-subject-token"], resp.json()["token"]


async def test_version_documents_need_no_token(http: httpx.AsyncClient) -> None:
    resp = await http.get("/identity")
    assert resp.status_code == 300
    [v3] = resp.json()["versions"]["values"]
    assert v3["id"].startswith("v3.") and v3["status"] == "stable"
    assert v3["links"] == [{"rel": "self", "href": f"{PUBLIC}/identity/v3/"}]
    for path in ("/identity/v3", "/identity/v3/"):
        resp = await http.get(path)
        assert resp.status_code == 200
        assert resp.json()["version"]["media-types"][0]["type"] == \
            "application/vnd.openstack.identity-v3+json"


async def test_password_by_name_scoped_by_name(http: httpx.AsyncClient,
                                               cloud: Harness) -> None:
    token, body = await _token(http, _password_body(BY_NAME, scope=ADMIN_PROJECT))
    assert token.startswith("gAAAAA")
    admin = await cloud.cloud.db.identity.user_by_name("admin")
    assert body["methods"] == ["password"]
    assert body["user"] == {"id": admin.id, "name": "admin", "password_expires_at": None,
                            "domain": {"id": "default", "name": "Default"}}
    assert body["project"]["name"] == "admin"
    assert body["project"]["domain"] == {"id": "default", "name": "Default"}
    assert sorted(r["name"] for r in body["roles"]) == ["admin", "member", "reader"]
    assert len(body["audit_ids"]) == 1
    assert body["expires_at"] > body["issued_at"]
    assert body["expires_at"].endswith("Z")
    services = {s["type"]: s for s in body["catalog"]}
    assert set(services) == {"identity", "compute", "image", "network"}
    urls = {(s, e["interface"]): e["url"] for s, v in services.items() for e in v["endpoints"]}
    assert urls[("compute", "public")] == f"{PUBLIC}/v2.1"
    assert urls[("identity", "admin")] == f"{PUBLIC}/identity"
    assert urls[("image", "internal")] == f"{PUBLIC}/image"
    assert urls[("network", "public")] == f"{PUBLIC}/networking"
    assert {e["region_id"] for v in services.values() for e in v["endpoints"]} == {"RegionOne"}


async def test_password_by_id_scoped_by_id_and_unscoped(http: httpx.AsyncClient,
                                                        cloud: Harness) -> None:
    admin = await cloud.cloud.db.identity.user_by_name("admin")
    project = await cloud.cloud.db.identity.project_by_name("admin")
    _, body = await _token(http, _password_body({"id": admin.id},
                                                scope={"project": {"id": project.id}}))
    assert body["project"]["id"] == project.id
    _, unscoped = await _token(http, _password_body({"id": admin.id}))
    assert "project" not in unscoped and "catalog" not in unscoped
    assert unscoped["user"]["id"] == admin.id


@pytest.mark.parametrize("body", [
    _password_body(BY_NAME, password="wrong"),
    _password_body({"name": "nobody", "domain": {"id": "default"}}),
    _password_body({"name": "admin", "domain": {"id": "nowhere"}}),
    _password_body(BY_NAME, scope={"project": {"id": "missing"}}),
    {"auth": {"identity": {"methods": ["token"], "token": {"id": "gAAAAAbogus"}}}},
])
async def test_refused_credentials_are_401(http: httpx.AsyncClient, body: Any) -> None:
    resp = await http.post(TOKENS, json=body)
    assert resp.status_code == 401, resp.text
    error = resp.json()["error"]
    assert (error["code"], error["title"]) == (401, "Unauthorized")
    assert resp.headers["www-authenticate"] == f'Keystone uri="{PUBLIC}/identity"'
    assert "x-subject-token" not in resp.headers


@pytest.mark.parametrize("body", [{}, {"auth": {}}, [],
                                  {"auth": {"identity": {"methods": ["totp"]}}},
                                  _password_body({"name": "admin"})])
async def test_malformed_requests_are_400(http: httpx.AsyncClient, body: Any) -> None:
    resp = await http.post(TOKENS, json=body)
    assert resp.status_code == 400, resp.text
    assert resp.json()["error"]["code"] == 400


async def test_validate_head_delete_then_refused(http: httpx.AsyncClient) -> None:
    token, body = await _token(http, _password_body(BY_NAME, scope=ADMIN_PROJECT))
    other, _ = await _token(http, _password_body(BY_NAME, scope=ADMIN_PROJECT))
    both = {"X-Auth-Token": other, "X-Subject-Token": token}
    resp = await http.get(TOKENS, headers=both)
    assert resp.status_code == 200
    assert resp.headers["x-subject-token"] == token
    assert resp.json()["token"]["audit_ids"] == body["audit_ids"]
    assert (await http.head(TOKENS, headers=both)).status_code == 200
    assert (await http.get("/v2.1/servers", headers={"X-Auth-Token": token})).status_code == 200

    assert (await http.delete(TOKENS, headers=both)).status_code == 204

    assert (await http.get(TOKENS, headers=both)).status_code == 404
    assert (await http.head(TOKENS, headers=both)).status_code == 404
    resp = await http.get("/v2.1/servers", headers={"X-Auth-Token": token})
    assert resp.status_code == 401
    resp = await http.get(TOKENS, headers={"X-Auth-Token": token, "X-Subject-Token": other})
    assert resp.status_code == 401
    # The other token is untouched.
    assert (await http.get("/v2.1/servers", headers={"X-Auth-Token": other})).status_code == 200


async def test_rescoping_with_a_token_keeps_the_chain(http: httpx.AsyncClient) -> None:
    unscoped, first = await _token(http, _password_body(BY_NAME))
    _, body = await _token(http, {"auth": {
        "identity": {"methods": ["token"], "token": {"id": unscoped}},
        "scope": ADMIN_PROJECT}})
    assert body["methods"] == ["token", "password"]
    assert body["audit_ids"][1] == first["audit_ids"][0]
    assert body["expires_at"] == first["expires_at"]
    assert body["project"]["name"] == "admin"


async def test_catalog_and_projects_need_a_token(http: httpx.AsyncClient) -> None:
    token, _ = await _token(http, _password_body(BY_NAME))
    for path in ("/identity/v3/auth/catalog", "/identity/v3/auth/projects", TOKENS):
        resp = await http.get(path)
        assert resp.status_code == 401, path
        assert resp.json()["error"]["code"] == 401
    resp = await http.get("/identity/v3/auth/catalog", headers={"X-Auth-Token": token})
    assert resp.status_code == 200
    assert {s["type"] for s in resp.json()["catalog"]} == {"identity", "compute", "image",
                                                           "network"}
    resp = await http.get("/identity/v3/auth/projects", headers={"X-Auth-Token": token})
    assert [p["name"] for p in resp.json()["projects"]] == ["admin"]
    assert resp.json()["projects"][0]["domain_id"] == "default"


async def test_a_member_token_acts_as_that_user_and_project(http: httpx.AsyncClient,
                                                            cloud: Harness) -> None:
    identity = cloud.cloud.db.identity
    project = await identity.ensure_project("demo")
    alice = await identity.ensure_user("alice", ProjectId(project.id))
    await identity.set_password_hash(alice.id, hash_password("pw", Argon2Params(1024, 1, 1)))
    member = await identity.ensure_role("member")
    await identity.assign_role(alice.id, project.id, member.id)

    # No role on the admin project: refused.
    resp = await http.post(TOKENS, json=_password_body(
        {"name": "alice", "domain": {"id": "default"}}, password="pw", scope=ADMIN_PROJECT))
    assert resp.status_code == 401
    token, body = await _token(http, _password_body(
        {"name": "alice", "domain": {"id": "default"}}, password="pw",
        scope={"project": {"name": "demo", "domain": {"id": "default"}}}))
    assert [r["name"] for r in body["roles"]] == ["member"]

    await cloud.client.request(
        "PATCH", f"/image/v2/images/{cloud.image_id}",
        headers={"Content-Type": "application/openstack-images-v2.1-json-patch"},
        json=[{"op": "replace", "path": "/visibility", "value": "public"}])
    resp = await http.post("/v2.1/servers", headers={"X-Auth-Token": token}, json={
        "server": {"name": "mine", "imageRef": cloud.image_id,
                   "flavorRef": cloud.flavors["m1.tiny"]}})
    assert resp.status_code == 202, resp.text
    server_id = resp.json()["server"]["id"]
    resp = await http.get(f"/v2.1/servers/{server_id}", headers={"X-Auth-Token": token})
    assert (resp.json()["server"]["tenant_id"], resp.json()["server"]["user_id"]) == \
        (project.id, alice.id)
    # A member may not use admin-only APIs; the admin's project does not see the server.
    resp = await http.get("/v2.1/os-hypervisors", headers={"X-Auth-Token": token})
    assert resp.status_code == 403
    resp = await http.get("/v2.1/servers", headers={"X-Auth-Token": ADMIN_TOKEN})
    assert server_id not in {s["id"] for s in resp.json()["servers"]}
    await cloud.client.request("DELETE", f"/v2.1/servers/{server_id}")
    await cloud.client.wait_for_status(server_id, {"DELETED"})


async def test_users_may_not_validate_each_others_tokens(http: httpx.AsyncClient,
                                                         cloud: Harness) -> None:
    identity = cloud.cloud.db.identity
    bob = await identity.ensure_user("bob", None)
    await identity.set_password_hash(bob.id, hash_password("pw", Argon2Params(1024, 1, 1)))
    bobs, _ = await _token(http, _password_body({"id": bob.id}, password="pw"))
    admins, _ = await _token(http, _password_body(BY_NAME))
    resp = await http.get(TOKENS, headers={"X-Auth-Token": bobs, "X-Subject-Token": admins})
    assert resp.status_code == 403
    resp = await http.get(TOKENS, headers={"X-Auth-Token": bobs, "X-Subject-Token": bobs})
    assert resp.status_code == 200


async def test_an_unscoped_token_serves_only_the_identity_api(http: httpx.AsyncClient) -> None:
    token, _ = await _token(http, _password_body(BY_NAME))
    headers = {"X-Auth-Token": token}
    assert (await http.get("/identity/v3/auth/projects", headers=headers)).status_code == 200
    for path in ("/v2.1/servers", "/v2.1/flavors", "/image/v2/images", "/networking/v2.0/networks"):
        resp = await http.get(path, headers=headers)
        assert resp.status_code == 401, (path, resp.status_code, resp.text)
