"""Identity administration (Keystone v3) through an in-process cloud: domains, projects,
users, roles and role assignments, their errors, their policy, and what each change does
to the tokens that depended on what changed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cloud_fixtures import ADMIN_TOKEN, Harness, fake_hosts, running_cloud

PUBLIC = "http://cloud.example:8774"
V3 = "/identity/v3"
ADMIN = {"X-Auth-Token": ADMIN_TOKEN}


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_cloud(tmp_path, fake_hosts(1),
                             api={"admin_token": ADMIN_TOKEN, "public_url": PUBLIC}) as harness:
        yield harness


@pytest.fixture
async def http(cloud: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cloud.cloud.app)
    async with httpx.AsyncClient(base_url="http://strato", transport=transport,
                                 headers=ADMIN) as client:
        yield client


async def _created(http: httpx.AsyncClient, kind: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await http.post(f"{V3}/{kind}s", json={kind: body})
    assert resp.status_code == 201, resp.text
    created: dict[str, Any] = resp.json()[kind]
    return created


async def _login(http: httpx.AsyncClient, user: str, password: str,
                 project: str | None = None) -> httpx.Response:
    auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {
        "user": {"id": user, "password": password}}}}
    if project is not None:
        auth["scope"] = {"project": {"id": project}}
    return await http.post(f"{V3}/auth/tokens", json={"auth": auth}, headers={})


async def _token(http: httpx.AsyncClient, user: str, password: str, project: str) -> str:
    resp = await _login(http, user, password, project)
    assert resp.status_code == 201, resp.text
    return resp.headers["x-subject-token"]


async def _works(http: httpx.AsyncClient, token: str) -> bool:
    resp = await http.get("/v2.1/flavors", headers={"X-Auth-Token": token})
    assert resp.status_code in (200, 401), resp.text
    return resp.status_code == 200


def _error(resp: httpx.Response, status: int) -> str:
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["code"] == status
    assert error["title"] == {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
                              404: "Not Found", 409: "Conflict"}[status]
    return str(error["message"])


@dataclass(frozen=True)
class Member:
    user: dict[str, Any]
    project: dict[str, Any]
    role: dict[str, Any]
    password: str


async def _member(http: httpx.AsyncClient, name: str = "alice") -> Member:
    """A project of its own with a user holding ``member`` on it, all made through the
    API."""
    project = await _created(http, "project", {"name": f"{name}-project"})
    user = await _created(http, "user", {"name": name, "password": f"{name}'s secret",
                                         "default_project_id": project["id"]})
    [role] = (await http.get(f"{V3}/roles", params={"name": "member"})).json()["roles"]
    resp = await http.put(f"{V3}/projects/{project['id']}/users/{user['id']}/roles/"
                          f"{role['id']}")
    assert resp.status_code == 204, resp.text
    return Member(user=user, project=project, role=role, password=f"{name}'s secret")


# ---- shapes and round trips ---------------------------------------------------------------

async def test_project_round_trip(http: httpx.AsyncClient) -> None:
    created = await _created(http, "project", {"name": "demo", "description": "d",
                                               "domain_id": "default", "enabled": True,
                                               "options": {}})
    pid = created["id"]
    assert created == {"id": pid, "name": "demo", "description": "d", "enabled": True,
                       "domain_id": "default", "parent_id": "default", "is_domain": False,
                       "tags": [], "options": {},
                       "links": {"self": f"{PUBLIC}/identity/v3/projects/{pid}"}}
    assert (await http.get(f"{V3}/projects/{pid}")).json() == {"project": created}

    listed = (await http.get(f"{V3}/projects", params={"name": "demo"})).json()
    assert listed["projects"] == [created]
    assert listed["links"] == {"self": f"{PUBLIC}/identity/v3/projects?name=demo",
                               "previous": None, "next": None}
    names = {p["name"] for p in (await http.get(f"{V3}/projects")).json()["projects"]}
    assert names == {"admin", "demo"}
    assert (await http.get(f"{V3}/projects", params={"domain_id": "other"})).json()[
        "projects"] == []

    resp = await http.patch(f"{V3}/projects/{pid}", json={"project": {
        "name": "renamed", "description": None, "enabled": False}})
    assert resp.status_code == 200, resp.text
    assert resp.json()["project"] | {"links": None} == created | {
        "name": "renamed", "description": "", "enabled": False, "links": None}
    disabled = (await http.get(f"{V3}/projects", params={"enabled": "false"})).json()
    assert [p["name"] for p in disabled["projects"]] == ["renamed"]

    assert (await http.delete(f"{V3}/projects/{pid}")).status_code == 204
    assert _error(await http.get(f"{V3}/projects/{pid}"), 404) == \
        f"Could not find project: {pid}."


async def test_domain_round_trip_and_delete_rules(http: httpx.AsyncClient) -> None:
    created = await _created(http, "domain", {"name": "acme", "description": "ACME"})
    did = created["id"]
    assert created == {"id": did, "name": "acme", "description": "ACME", "enabled": True,
                       "tags": [], "options": {},
                       "links": {"self": f"{PUBLIC}/identity/v3/domains/{did}"}}
    listed = (await http.get(f"{V3}/domains")).json()["domains"]
    assert {d["id"] for d in listed} == {"default", did}
    project = await _created(http, "project", {"name": "acme-web", "domain_id": did})
    user = await _created(http, "user", {"name": "wile", "domain_id": did,
                                         "default_project_id": project["id"]})
    assert user["domain_id"] == did

    assert _error(await http.delete(f"{V3}/domains/{did}"), 403) == \
        "Cannot delete a domain that is enabled, please disable it first."
    resp = await http.patch(f"{V3}/domains/{did}", json={"domain": {"enabled": False}})
    assert resp.json()["domain"]["enabled"] is False
    assert (await http.delete(f"{V3}/domains/{did}")).status_code == 204
    # Its projects and users went with it.
    for path in (f"domains/{did}", f"projects/{project['id']}", f"users/{user['id']}"):
        _error(await http.get(f"{V3}/{path}"), 404)

    await http.patch(f"{V3}/domains/default", json={"domain": {"description": "still"}})
    assert "default domain" in _error(await http.delete(f"{V3}/domains/default"), 403)
    assert (await http.get(f"{V3}/domains/default")).json()["domain"]["enabled"] is True


async def test_users_never_show_passwords(http: httpx.AsyncClient) -> None:
    member = await _member(http)
    uid = member.user["id"]
    assert member.user == {"id": uid, "name": "alice", "domain_id": "default",
                           "enabled": True, "password_expires_at": None, "options": {},
                           "default_project_id": member.project["id"],
                           "links": {"self": f"{PUBLIC}/identity/v3/users/{uid}"}}
    for resp in (await http.get(f"{V3}/users/{uid}"), await http.get(f"{V3}/users"),
                 await http.patch(f"{V3}/users/{uid}", json={"user": {"password": "new"}})):
        assert resp.status_code == 200, resp.text
        assert "password\"" not in resp.text and "argon2" not in resp.text
    listed = (await http.get(f"{V3}/users", params={"name": "alice"})).json()["users"]
    assert [u["id"] for u in listed] == [uid]
    assert (await _login(http, uid, "new", member.project["id"])).status_code == 201

    resp = await http.patch(f"{V3}/users/{uid}", json={"user": {
        "name": "alicia", "default_project_id": None, "enabled": True}})
    assert resp.json()["user"]["name"] == "alicia"
    assert "default_project_id" not in resp.json()["user"]
    projects = (await http.get(f"{V3}/users/{uid}/projects")).json()
    assert [p["id"] for p in projects["projects"]] == [member.project["id"]]
    assert (await http.delete(f"{V3}/users/{uid}")).status_code == 204
    assert _error(await http.get(f"{V3}/users/{uid}"), 404) == f"Could not find user: {uid}."


async def test_roles_and_role_assignments(http: httpx.AsyncClient) -> None:
    member = await _member(http)
    role = await _created(http, "role", {"name": "observer", "options": {}})
    rid = role["id"]
    assert role == {"id": rid, "name": "observer", "domain_id": None, "description": None,
                    "options": {}, "links": {"self": f"{PUBLIC}/identity/v3/roles/{rid}"}}
    names = [r["name"] for r in (await http.get(f"{V3}/roles")).json()["roles"]]
    assert names == ["admin", "member", "observer", "reader"]
    resp = await http.patch(f"{V3}/roles/{rid}", json={"role": {"name": "watcher"}})
    assert resp.json()["role"]["name"] == "watcher"

    pid, uid = member.project["id"], member.user["id"]
    grant = f"{V3}/projects/{pid}/users/{uid}/roles/{rid}"
    assert (await http.head(grant)).status_code == 404
    assert _error(await http.get(grant), 404) == (
        f"Could not find role assignment with role: {rid}, user or group: {uid}, "
        f"project, domain, or system: {pid}.")
    for _ in range(2):  # idempotent
        assert (await http.put(grant)).status_code == 204
    assert (await http.head(grant)).status_code == 204
    assert (await http.get(grant)).status_code == 204
    held = (await http.get(f"{V3}/projects/{pid}/users/{uid}/roles")).json()
    assert [r["name"] for r in held["roles"]] == ["member", "watcher"]
    assert held["links"]["self"] == f"{PUBLIC}/identity/v3/projects/{pid}/users/{uid}/roles"

    listed = (await http.get(f"{V3}/role_assignments",
                             params={"user.id": uid, "role.id": rid})).json()
    assert listed["role_assignments"] == [{
        "user": {"id": uid}, "role": {"id": rid}, "scope": {"project": {"id": pid}},
        "links": {"assignment": f"{PUBLIC}{grant}"}}]
    named = (await http.get(f"{V3}/role_assignments?scope.project.id={pid}"
                            "&include_names")).json()["role_assignments"]
    assert {(a["user"]["name"], a["role"]["name"], a["scope"]["project"]["name"])
            for a in named} == {("alice", "member", "alice-project"),
                                ("alice", "watcher", "alice-project")}
    assert named[0]["user"]["domain"] == {"id": "default", "name": "Default"}
    everyone = (await http.get(f"{V3}/role_assignments")).json()["role_assignments"]
    assert len(everyone) == 5  # the admin's three, and alice's two
    assert (await http.get(f"{V3}/role_assignments",
                           params={"group.id": "g"})).json()["role_assignments"] == []

    assert (await http.delete(grant)).status_code == 204
    _error(await http.delete(grant), 404)
    assert (await http.head(grant)).status_code == 404
    assert (await http.delete(f"{V3}/roles/{rid}")).status_code == 204
    assert _error(await http.get(f"{V3}/roles/{rid}"), 404) == f"Could not find role: {rid}."


async def test_users_keep_extra_properties(http: httpx.AsyncClient) -> None:
    """Keystone's user schemas take additional properties (``openstack user create
    --email --description``): kept, shown, merged by a PATCH."""
    created = await _created(http, "user", {"name": "xtra", "email": "x@example.com",
                                            "description": "d", "team": {"a": [1]},
                                            "id": "ignored"})
    uid = created["id"]
    assert uid != "ignored"
    assert (created["email"], created["description"], created["team"]) == (
        "x@example.com", "d", {"a": [1]})
    resp = await http.patch(f"{V3}/users/{uid}", json={"user": {"email": "y@example.com",
                                                                "description": None}})
    assert resp.status_code == 200, resp.text
    shown = (await http.get(f"{V3}/users/{uid}")).json()["user"]
    assert (shown["email"], shown["description"], shown["team"]) == (
        "y@example.com", None, {"a": [1]})
    listed = (await http.get(f"{V3}/users", params={"name": "xtra"})).json()["users"]
    assert listed == [shown]
    assert "password" not in shown


async def test_list_filters(http: httpx.AsyncClient) -> None:
    """The filters ``openstack {user,project,role} list`` and Terraform send."""
    domain = await _created(http, "domain", {"name": "other"})
    p1 = await _created(http, "project", {"name": "p1"})
    p2 = await _created(http, "project", {"name": "p2", "domain_id": domain["id"],
                                          "enabled": False})
    u1 = await _created(http, "user", {"name": "u1", "domain_id": domain["id"]})

    async def names(path: str, **params: str) -> set[str]:
        resp = await http.get(f"{V3}/{path}", params=params)
        assert resp.status_code == 200, resp.text
        return {item["name"] for item in resp.json()[path]}

    assert await names("projects", parent_id=domain["id"]) == {"p2"}
    assert await names("projects", parent_id="default", name="p1") == {p1["name"]}
    assert await names("projects", parent_id="default", domain_id=domain["id"]) == set()
    assert await names("projects", domain_id=domain["id"], enabled="false") == {p2["name"]}
    assert await names("projects", is_domain="true") == set()
    assert "p1" in await names("projects", is_domain="false")
    assert await names("users", domain_id=domain["id"]) == {u1["name"]}
    assert await names("users", name="u1", enabled="0") == set()
    assert await names("roles", name="member") == {"member"}
    assert await names("roles", domain_id="default") == set()


@pytest.mark.parametrize(("query", "message"), [
    ("scope.domain.id=d&scope.project.id=p", "Specify a domain or project, not both"),
    ("user.id=u&group.id=g", "Specify a user or group, not both"),
    ("scope.system=all&scope.project.id=p", "Specify system or project, not both"),
    ("effective&group.id=g", "Combining effective and group filter"),
    ("include_subtree=true", "scope.project.id needs to be specified"),
])
async def test_bad_role_assignment_queries_are_400(http: httpx.AsyncClient, query: str,
                                                   message: str) -> None:
    assert message in _error(await http.get(f"{V3}/role_assignments?{query}"), 400)


async def test_role_assignments_with_subtree_and_effective(http: httpx.AsyncClient) -> None:
    admin = (await http.get(f"{V3}/projects", params={"name": "admin"})).json()["projects"]
    pid = admin[0]["id"]
    plain = (await http.get(f"{V3}/role_assignments",
                            params={"scope.project.id": pid})).json()["role_assignments"]
    for extra in ("include_subtree=true&effective", "effective=true"):
        resp = await http.get(f"{V3}/role_assignments?scope.project.id={pid}&{extra}")
        assert resp.json()["role_assignments"] == plain, extra


# ---- errors ------------------------------------------------------------------------------

@pytest.mark.parametrize(("path", "body", "message"), [
    ("projects", {"project": {"name": "x", "colour": "red"}},
     "Additional properties are not allowed ('colour' was unexpected)"),
    ("projects", {"project": {"name": "x", "enabled": "yes"}},
     "Invalid input for field 'enabled': Input should be a valid boolean"),
    ("projects", {"project": {"name": ""}}, "Invalid input for field 'name'"),
    ("projects", {"project": {"name": "   "}}, "Invalid input for field 'name'"),
    ("projects", {"project": {"name": "p" * 65}}, "Invalid input for field 'name'"),
    ("projects", {"project": {"description": "no name"}}, "'name' is a required property"),
    ("projects", {"project": {"name": "x", "is_domain": True}}, "is_domain"),
    ("projects", {"project": {"name": "x", "parent_id": "abc", "domain_id": "default"}},
     "parent_id"),
    ("projects", {"project": {"name": "x", "options": {"immutable": True}}}, "options"),
    ("projects", {"name": "x"}, "'project' is a required property"),
    ("projects", ["project"], "'project' is a required property"),
    ("domains", {"domain": {"name": 7}}, "Invalid input for field 'name'"),
    ("domains", {"domain": {"name": "d" * 65}}, "Invalid input for field 'name'"),
    ("users", {"user": {"name": "u" * 256}}, "Invalid input for field 'name'"),
    ("users", {"user": {"name": "u", "password": 1234}}, "Invalid input for field 'password'"),
    ("users", {"user": {"name": "u", "description": 7}},
     "Invalid input for field 'description'"),
    ("users", {"user": {"name": "u", "default_project_id": "nope"}},
     "Could not find project: nope."),
    ("roles", {"role": {"name": "r" * 256}}, "Invalid input for field 'name'"),
    ("roles", {"role": {"name": "r", "domain_id": "default"}}, "domain_id"),
])
async def test_bad_bodies_are_400(http: httpx.AsyncClient, path: str, body: Any,
                                  message: str) -> None:
    assert message in _error(await http.post(f"{V3}/{path}", json=body), 400)


async def test_bad_updates_are_400(http: httpx.AsyncClient) -> None:
    member = await _member(http)
    pid, uid = member.project["id"], member.user["id"]
    _error(await http.post(f"{V3}/projects", content=b"{not json",
                           headers={"Content-Type": "application/json"}), 400)
    _error(await http.patch(f"{V3}/projects/{pid}", json={"project": {}}), 400)
    assert _error(await http.patch(f"{V3}/projects/{pid}", json={
        "project": {"domain_id": "other"}}), 400) == "Update of `domain_id` is not allowed."
    assert _error(await http.patch(f"{V3}/users/{uid}", json={
        "user": {"domain_id": "other"}}), 400) == "Cannot change Domain ID"
    _error(await http.patch(f"{V3}/users/{uid}", json={"user": {"enabled": None}}), 400)
    _error(await http.patch(f"{V3}/roles/{member.role['id']}",
                            json={"role": {"name": ""}}), 400)
    # Nothing changed.
    assert (await http.get(f"{V3}/projects/{pid}")).json()["project"] == member.project


async def test_duplicates_are_409(http: httpx.AsyncClient) -> None:
    await _member(http)
    for kind, body in (("project", {"name": "alice-project"}), ("user", {"name": "alice"}),
                       ("role", {"name": "member"}), ("domain", {"name": "Default"})):
        resp = await http.post(f"{V3}/{kind}s", json={kind: body})
        assert _error(resp, 409).startswith(
            f"Conflict occurred attempting to store {kind} - Duplicate entry"), kind
    project = await _created(http, "project", {"name": "other"})
    resp = await http.patch(f"{V3}/projects/{project['id']}",
                            json={"project": {"name": "alice-project"}})
    _error(resp, 409)


@pytest.mark.parametrize("kind", ["domain", "project", "user", "role"])
async def test_unknown_ids_are_404(http: httpx.AsyncClient, kind: str) -> None:
    message = f"Could not find {kind}: nope."
    assert _error(await http.get(f"{V3}/{kind}s/nope"), 404) == message
    body = {kind: {"name": "whatever"}}
    assert _error(await http.patch(f"{V3}/{kind}s/nope", json=body), 404) == message
    assert _error(await http.delete(f"{V3}/{kind}s/nope"), 404) == message


async def test_grants_name_what_is_missing(http: httpx.AsyncClient) -> None:
    member = await _member(http)
    pid, uid, rid = member.project["id"], member.user["id"], member.role["id"]
    for path, missing in ((f"projects/nope/users/{uid}/roles/{rid}", "project"),
                          (f"projects/{pid}/users/nope/roles/{rid}", "user"),
                          (f"projects/{pid}/users/{uid}/roles/nope", "role")):
        assert _error(await http.put(f"{V3}/{path}"), 404) == f"Could not find {missing}: nope."
    _error(await http.post(f"{V3}/projects", json={"project": {
        "name": "x", "domain_id": "nope"}}), 404)


# ---- policy ------------------------------------------------------------------------------

async def test_a_member_sees_only_themselves(http: httpx.AsyncClient) -> None:
    member = await _member(http)
    other = await _member(http, "bob")
    uid, pid = member.user["id"], member.project["id"]
    mine = {"X-Auth-Token": await _token(http, uid, member.password, pid)}

    for method, path in (("GET", "projects"), ("POST", "projects"), ("GET", "users"),
                         ("GET", "roles"), ("GET", "domains"), ("GET", "role_assignments"),
                         ("GET", f"users/{other.user['id']}"),
                         ("GET", f"projects/{other.project['id']}"),
                         ("PATCH", f"users/{uid}"), ("DELETE", f"projects/{pid}"),
                         ("PUT", f"projects/{pid}/users/{uid}/roles/{member.role['id']}")):
        resp = await http.request(method, f"{V3}/{path}", headers=mine,
                                  json={"project": {"name": "x"}, "user": {"name": "x"}})
        message = _error(resp, 403)
        assert message.startswith("You are not authorized to perform the requested action: "
                                  "identity:"), (method, path, message)
    resp = await http.get(f"{V3}/projects", headers=mine)
    assert _error(resp, 403) == ("You are not authorized to perform the requested action: "
                                 "identity:list_projects.")
    assert (await http.get(f"{V3}/users/{uid}", headers=mine)).json()["user"]["id"] == uid
    assert (await http.get(f"{V3}/projects/{pid}", headers=mine)).status_code == 200
    resp = await http.get(f"{V3}/users/{uid}/projects", headers=mine)
    assert [p["id"] for p in resp.json()["projects"]] == [pid]
    _error(await http.get(f"{V3}/users/{other.user['id']}/projects", headers=mine), 403)
    # Nor may the admin change someone else's password this way (PATCH is the admin's).
    _error(await http.post(f"{V3}/users/{uid}/password", json={"user": {
        "original_password": member.password, "password": "x"}}), 403)


# ---- effects on tokens -------------------------------------------------------------------

async def test_a_password_change_refuses_the_users_earlier_tokens(
        http: httpx.AsyncClient) -> None:
    member = await _member(http)
    uid, pid = member.user["id"], member.project["id"]
    token = await _token(http, uid, member.password, pid)
    mine = {"X-Auth-Token": token}
    body = {"user": {"original_password": "wrong", "password": "new secret"}}
    assert "original password" in _error(
        await http.post(f"{V3}/users/{uid}/password", json=body, headers=mine), 401)
    assert await _works(http, token)

    body["user"]["original_password"] = member.password
    resp = await http.post(f"{V3}/users/{uid}/password", json=body, headers=mine)
    assert resp.status_code == 204, resp.text
    assert not await _works(http, token)
    _error(await _login(http, uid, member.password, pid), 401)
    assert await _works(http, await _token(http, uid, "new secret", pid))

    # The admin's reset (PATCH) does the same.
    token = await _token(http, uid, "new secret", pid)
    await http.patch(f"{V3}/users/{uid}", json={"user": {"password": "reset"}})
    assert not await _works(http, token)


async def test_disabling_a_user_refuses_its_tokens_for_good(http: httpx.AsyncClient) -> None:
    member = await _member(http)
    uid, pid = member.user["id"], member.project["id"]
    token = await _token(http, uid, member.password, pid)
    assert await _works(http, token)
    await http.patch(f"{V3}/users/{uid}", json={"user": {"enabled": False}})
    assert not await _works(http, token)
    _error(await _login(http, uid, member.password, pid), 401)
    await http.patch(f"{V3}/users/{uid}", json={"user": {"enabled": True}})
    assert not await _works(http, token)  # as Keystone: re-enabling revives nothing
    assert await _works(http, await _token(http, uid, member.password, pid))


@pytest.mark.parametrize("change", ["unassign", "delete role", "disable project",
                                    "delete project", "disable domain", "delete user"])
async def test_tokens_stop_with_what_they_depend_on(http: httpx.AsyncClient,
                                                    change: str) -> None:
    domain = await _created(http, "domain", {"name": "acme"})
    project = await _created(http, "project", {"name": "web", "domain_id": domain["id"]})
    user = await _created(http, "user", {"name": "wile", "password": "pw",
                                         "domain_id": domain["id"]})
    role = await _created(http, "role", {"name": "operator"})
    grant = f"{V3}/projects/{project['id']}/users/{user['id']}/roles/{role['id']}"
    await http.put(grant)
    token = await _token(http, user["id"], "pw", project["id"])
    assert await _works(http, token)
    bystander = await _token(http, *await _admin_login(http))

    changes: dict[str, Callable[[], Awaitable[httpx.Response]]] = {
        "unassign": lambda: http.delete(grant),
        "delete role": lambda: http.delete(f"{V3}/roles/{role['id']}"),
        "disable project": lambda: http.patch(f"{V3}/projects/{project['id']}",
                                              json={"project": {"enabled": False}}),
        "delete project": lambda: http.delete(f"{V3}/projects/{project['id']}"),
        "disable domain": lambda: http.patch(f"{V3}/domains/{domain['id']}",
                                             json={"domain": {"enabled": False}}),
        "delete user": lambda: http.delete(f"{V3}/users/{user['id']}")}
    assert (await changes[change]()).status_code in (200, 204)
    assert not await _works(http, token)
    assert await _works(http, bystander)


async def _admin_login(http: httpx.AsyncClient) -> tuple[str, str, str]:
    [admin] = (await http.get(f"{V3}/users", params={"name": "admin"})).json()["users"]
    return admin["id"], "strato-admin", admin["default_project_id"]
