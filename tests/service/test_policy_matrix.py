"""The policy matrix: every API action x (admin, member of the owning project, member of
another project, reader of the owning project) -> the status each must get.

One embedded cloud per API area (fake hosts, in-process bus, SQLite); every caller logs
in with a password through the Identity API and holds a real Fernet token. Project A owns
the resources (created by its member ``alice``); ``bob`` is a member of project B;
``carol`` has only the ``reader`` role on project A; ``admin`` is the cloud's admin (in
its own project). What each must get follows from the kind of action:

- ``read`` of a project's resource: admin, alice and carol succeed; bob gets a 404 (he
  must not learn that the resource exists);
- ``write`` of a project's resource: admin and alice succeed; carol gets a 403; bob a 404;
- ``read``/``write`` of a collection (no resource in the path): bob succeeds in his own
  project, and never sees project A's resources in a listing;
- ``admin``: only admin succeeds, everyone else gets a 403;
- ``target``: the path names a project (quotas): its readers and admin succeed, bob 403.

Actions that change a resource get a fresh one for each caller. The last test checks that
the matrix covers every route of the app and every action of the action routes.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from strato.api.policies import SERVER_ACTIONS, aggregate_rule
from strato.api.policy import PER_BODY, PUBLIC, action_of
from strato.client.auth import password_token
from strato.identity.passwords import Argon2Params, hash_password
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until

Caller = Literal["admin", "alice", "bob", "carol"]
CALLERS: tuple[Caller, ...] = ("bob", "carol", "alice", "admin")
Kind = Literal["read", "write", "admin", "target", "user"]

PASSWORD = "matrix-pw"
FAST = Argon2Params(1024, 1, 1)
PATCH = "application/openstack-images-v2.1-json-patch"


@dataclass(frozen=True)
class Case:
    """One request. ``path`` and ``body`` may hold ``{name}`` placeholders, filled from
    the resources (``fresh`` ones made anew for each caller). ``ok``: the status when
    allowed. ``scoped``: the path (or body) names a project-A resource. ``expect``
    overrides the derived status for some callers."""

    method: str
    path: str
    ok: int
    kind: Kind
    body: Any = None
    scoped: bool = False
    fresh: tuple[str, ...] = ()
    expect: dict[str, int] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    content: bytes | None = None

    def status_for(self, caller: Caller) -> int:
        if caller in self.expect:
            return self.expect[caller]
        if caller == "admin":
            return self.ok
        if self.kind == "admin":
            return 403
        if caller == "alice":
            return self.ok
        if caller == "carol":
            if self.kind == "write":
                return 403
            if self.kind == "user":
                return 404 if self.scoped else self.ok
            return self.ok
        # bob: another project's member
        if self.kind == "target":
            return 403
        return 404 if self.scoped else self.ok


class EndpointLog:
    """An ASGI wrapper noting which endpoint answered each request (routing writes it
    into the scope)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.endpoints: set[object] = set()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)
        if "endpoint" in scope:
            self.endpoints.add(scope["endpoint"])


@dataclass
class World:
    harness: Harness
    http: httpx.AsyncClient
    log: EndpointLog
    tokens: dict[Caller, str]
    ids: dict[str, str]
    actions: set[str] = field(default_factory=set)

    async def call(self, caller: Caller, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"X-Auth-Token": self.tokens[caller], **kwargs.pop("headers", {})}
        return await self.http.request(method, path, headers=headers, **kwargs)

    async def ok(self, caller: Caller, method: str, path: str, **kwargs: Any) -> Any:
        resp = await self.call(caller, method, path, **kwargs)
        assert resp.status_code < 300, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json() if resp.content else None


COVERED: set[object] = set()  # endpoints hit across the area tests
ACTIONS_HIT: set[str] = set()


async def _users(h: Harness) -> None:
    identity = h.cloud.db.identity
    a = await identity.ensure_project("project-a")
    b = await identity.ensure_project("project-b")
    roles = {name: await identity.ensure_role(name) for name in ("member", "reader")}
    for name, project, role in (("alice", a, "member"), ("bob", b, "member"),
                                ("carol", a, "reader")):
        user = await identity.ensure_user(name, project.id)
        await identity.assign_role(user.id, project.id, roles[role].id)
        await identity.set_password_hash(user.id, hash_password(PASSWORD, FAST))


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        await _users(h)
        log = EndpointLog(h.cloud.app)
        transport = httpx.ASGITransport(app=log)
        async with httpx.AsyncClient(base_url="http://strato", transport=transport) as http:
            logins: dict[Caller, tuple[str, str]] = {
                "admin": ("strato-admin", "admin"), "alice": (PASSWORD, "project-a"),
                "bob": (PASSWORD, "project-b"), "carol": (PASSWORD, "project-a")}
            tokens = {caller: await password_token("http://strato", user=caller,
                                                   password=password, project=project,
                                                   transport=transport)
                      for caller, (password, project) in logins.items()}
            world = World(harness=h, http=http, log=log, tokens=tokens, ids={})
            world.ids["public_image"] = h.image_id
            await world.ok("admin", "PATCH", f"/image/v2/images/{h.image_id}",
                           headers={"Content-Type": PATCH},
                           json=[{"op": "replace", "path": "/visibility", "value": "public"}])
            yield world
            COVERED.update(log.endpoints)
            ACTIONS_HIT.update(world.actions)


# -- resources of project A, made by alice ------------------------------------------------

def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def make_server(w: World) -> str:
    body = {"server": {"name": _unique("vm"), "imageRef": w.ids["public_image"],
                       "flavorRef": "1", "networks": "none"}}
    server = (await w.ok("alice", "POST", "/v2.1/servers", json=body))["server"]

    async def active() -> bool:
        shown = await w.ok("alice", "GET", f"/v2.1/servers/{server['id']}")
        assert shown["server"]["status"] != "ERROR", shown
        return bool(shown["server"]["status"] == "ACTIVE")

    await wait_until(active)
    return str(server["id"])


async def make_image(w: World) -> str:
    image = await w.ok("alice", "POST", "/image/v2/images",
                       json={"name": _unique("img"), "disk_format": "raw",
                             "container_format": "bare"})
    await w.ok("alice", "PUT", f"/image/v2/images/{image['id']}/file", content=b"x" * 512,
               headers={"Content-Type": "application/octet-stream"})
    return str(image["id"])


async def make_queued_image(w: World) -> str:
    image = await w.ok("alice", "POST", "/image/v2/images",
                       json={"name": _unique("img"), "disk_format": "raw",
                             "container_format": "bare"})
    return str(image["id"])


async def make_shared_image(w: World) -> str:
    image = await make_image(w)
    await w.ok("alice", "POST", f"/image/v2/images/{image}/members",
               json={"member": w.ids["bob_project"]})
    return image


async def make_tagged_image(w: World) -> str:
    image = await make_image(w)
    await w.ok("alice", "PUT", f"/image/v2/images/{image}/tags/blue")
    return image


async def make_network(w: World) -> str:
    net = await w.ok("alice", "POST", "/networking/v2.0/networks",
                     json={"network": {"name": _unique("net")}})
    return str(net["network"]["id"])


async def make_subnet(w: World) -> str:
    net = await make_network(w)
    subnet = await w.ok("alice", "POST", "/networking/v2.0/subnets", json={"subnet": {
        "network_id": net, "ip_version": 4, "cidr": "10.20.0.0/24"}})
    return str(subnet["subnet"]["id"])


async def make_port(w: World) -> str:
    port = await w.ok("alice", "POST", "/networking/v2.0/ports",
                      json={"port": {"network_id": w.ids["network"]}})
    return str(port["port"]["id"])


async def make_group(w: World) -> str:
    group = await w.ok("alice", "POST", "/networking/v2.0/security-groups",
                       json={"security_group": {"name": _unique("sg")}})
    return str(group["security_group"]["id"])


async def make_rule(w: World) -> str:
    rule = await w.ok("alice", "POST", "/networking/v2.0/security-group-rules", json={
        "security_group_rule": {"security_group_id": w.ids["sg"], "direction": "ingress",
                                "protocol": "tcp", "port_range_min": 22,
                                "port_range_max": 22,
                                "remote_ip_prefix": f"10.{next(_OCTETS)}.0.0/16"}})
    return str(rule["security_group_rule"]["id"])


_OCTETS = itertools.count(1)


async def make_keypair(w: World) -> str:
    name = _unique("key")
    await w.ok("alice", "POST", "/v2.1/os-keypairs", json={"keypair": {"name": name}})
    return name


async def make_server_group(w: World) -> str:
    group = await w.ok("alice", "POST", "/v2.1/os-server-groups", json={
        "server_group": {"name": _unique("grp"), "policies": ["anti-affinity"]}})
    return str(group["server_group"]["id"])


async def make_aggregate(w: World) -> str:
    agg = await w.ok("admin", "POST", "/v2.1/os-aggregates",
                     json={"aggregate": {"name": _unique("agg")}})
    return str(agg["aggregate"]["id"])


async def make_flavor(w: World) -> str:
    flavor = await w.ok("admin", "POST", "/v2.1/flavors", json={"flavor": {
        "name": _unique("fl"), "ram": 64, "vcpus": 1, "disk": 1}})
    return str(flavor["flavor"]["id"])


async def make_request_id(w: World) -> str:
    actions = await w.ok("alice", "GET", f"/v2.1/servers/{w.ids['server']}/os-instance-actions")
    return str(actions["instanceActions"][0]["request_id"])


async def make_domain(w: World) -> str:
    domain = await w.ok("admin", "POST", f"{V3}/domains",
                        json={"domain": {"name": _unique("dom")}})
    return str(domain["domain"]["id"])


async def make_disabled_domain(w: World) -> str:
    domain = await make_domain(w)
    await w.ok("admin", "PATCH", f"{V3}/domains/{domain}",
               json={"domain": {"enabled": False}})
    return domain


async def make_project(w: World) -> str:
    project = await w.ok("admin", "POST", f"{V3}/projects",
                         json={"project": {"name": _unique("prj")}})
    return str(project["project"]["id"])


async def make_user(w: World) -> str:
    user = await w.ok("admin", "POST", f"{V3}/users",
                      json={"user": {"name": _unique("usr"), "password": "pw-12345"}})
    return str(user["user"]["id"])


async def make_role(w: World) -> str:
    role = await w.ok("admin", "POST", f"{V3}/roles", json={"role": {"name": _unique("rol")}})
    return str(role["role"]["id"])


async def make_grant(w: World) -> str:
    """A fresh role granted to alice on project A; the role's id."""
    role = await make_role(w)
    await w.ok("admin", "PUT",
               f"{V3}/projects/{w.ids['project_a']}/users/{w.ids['alice_user']}/roles/{role}")
    return role


MAKERS: dict[str, Callable[[World], Awaitable[str]]] = {
    "server": make_server, "image": make_image, "queued_image": make_queued_image,
    "shared_image": make_shared_image, "tagged_image": make_tagged_image,
    "network": make_network, "subnet": make_subnet,
    "port": make_port, "sg": make_group, "rule": make_rule, "keypair": make_keypair,
    "server_group": make_server_group, "aggregate": make_aggregate, "flavor": make_flavor,
    "request_id": make_request_id, "domain": make_domain,
    "disabled_domain": make_disabled_domain, "project": make_project, "user": make_user,
    "role": make_role, "grant": make_grant,
}


def _fill(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        return value.format(**ids)
    if isinstance(value, dict):
        return {k: _fill(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [_fill(v, ids) for v in value]
    return value


async def run_cases(w: World, cases: list[Case], needs: tuple[str, ...]) -> None:
    """Run every case as every caller; collect every mismatch, then fail with all."""
    identity = w.harness.cloud.db.identity
    w.ids["project_a"] = (await identity.project_by_name("project-a")).id
    w.ids["bob_project"] = (await identity.project_by_name("project-b")).id
    w.ids["alice_user"] = (await identity.user_by_name("alice")).id
    for name in needs:
        w.ids[name] = await MAKERS[name](w)
    mismatches = []
    for case, caller in itertools.product(cases, CALLERS):
        ids = dict(w.ids)
        for name in case.fresh:
            ids[name] = await MAKERS[name](w)
            w.ids.setdefault(name, ids[name])
        body = _fill(case.body, ids)
        path = _fill(case.path, ids)
        kwargs: dict[str, Any] = {"headers": dict(case.headers)}
        if case.content is not None:
            kwargs["content"] = case.content
        elif body is not None:
            kwargs["json"] = body
        resp = await w.call(caller, case.method, path, **kwargs)
        wanted = case.status_for(caller)
        if resp.status_code != wanted:
            mismatches.append(f"{caller:5} {case.method} {case.path}: got "
                              f"{resp.status_code}, want {wanted}: {resp.text[:200]}")
        if case.method == "POST" and case.path.endswith("/action") and isinstance(body, dict):
            [verb] = body
            w.actions.add(verb)
    assert not mismatches, "\n" + "\n".join(mismatches)


# -- the matrix ----------------------------------------------------------------------------

S = "/v2.1/servers/{server}"

SERVER_CASES = [
    Case("GET", "/v2.1/servers", 200, "read"),
    Case("GET", "/v2.1/servers/detail", 200, "read"),
    Case("POST", "/v2.1/servers", 202, "write", body={"server": {
        "name": "m", "imageRef": "{public_image}", "flavorRef": "1", "networks": "none"}}),
    Case("GET", S, 200, "read", scoped=True),
    Case("DELETE", S, 204, "write", scoped=True, fresh=("server",)),
    Case("GET", f"{S}/ips", 200, "read", scoped=True),
    Case("GET", f"{S}/ips/nowhere", 404, "read", scoped=True),
    Case("GET", f"{S}/os-instance-actions", 200, "read", scoped=True),
    Case("GET", f"{S}/os-instance-actions/{{request_id}}", 200, "read", scoped=True),
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"reboot": {"type": "SOFT"}}),
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"os-stop": None}),
    Case("POST", f"{S}/action", 409, "write", scoped=True, body={"os-start": None}),
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"pause": None}),
    Case("POST", f"{S}/action", 409, "write", scoped=True, body={"unpause": None}),
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"suspend": None}),
    Case("POST", f"{S}/action", 409, "write", scoped=True, body={"resume": None}),
    Case("POST", f"{S}/action", 409, "write", scoped=True, body={"restore": None}),
    # Nova force-deletes a server in any state, not only a soft-deleted one.
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"forceDelete": None}),
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"lock": None}),
    Case("POST", f"{S}/action", 202, "write", scoped=True, body={"unlock": None}),
    Case("POST", f"{S}/action", 202, "write", scoped=True, fresh=("server",),
         body={"rebuild": {"imageRef": "{public_image}"}}),
    Case("POST", f"{S}/action", 200, "write", scoped=True,
         body={"os-getConsoleOutput": {"length": 5}}),
    Case("PUT", S, 200, "write", scoped=True, body={"server": {"name": "renamed"}}),
    Case("GET", f"{S}/metadata", 200, "read", scoped=True),
    Case("POST", f"{S}/metadata", 200, "write", scoped=True, body={"metadata": {"a": "1"}}),
    Case("PUT", f"{S}/metadata", 200, "write", scoped=True, body={"metadata": {"b": "2"}}),
    Case("PUT", f"{S}/metadata/k", 200, "write", scoped=True, body={"meta": {"k": "v"}}),
    Case("GET", f"{S}/metadata/k", 200, "read", scoped=True),
    # alice deletes the item first, so the admin's delete finds none.
    Case("DELETE", f"{S}/metadata/k", 204, "write", scoped=True, expect={"admin": 404}),
]


async def test_servers(world: World) -> None:
    await run_cases(world, SERVER_CASES, ("server", "request_id"))
    # bob's listing never shows project A's servers; admin sees them with all_tenants.
    listed = await world.ok("bob", "GET", "/v2.1/servers")
    assert world.ids["server"] not in {s["id"] for s in listed["servers"]}
    everyone = await world.ok("admin", "GET", "/v2.1/servers?all_tenants=1")
    assert world.ids["server"] in {s["id"] for s in everyone["servers"]}
    mine = await world.ok("admin", "GET", "/v2.1/servers")
    assert world.ids["server"] not in {s["id"] for s in mine["servers"]}


COMPUTE_CASES = [
    Case("GET", "/v2.1/flavors", 200, "read"),
    Case("GET", "/v2.1/flavors/detail", 200, "read"),
    Case("GET", "/v2.1/flavors/1", 200, "read"),
    Case("GET", "/v2.1/flavors/1/os-extra_specs", 200, "read"),
    Case("GET", "/v2.1/flavors/1/os-extra_specs/hw:none", 404, "read"),
    Case("POST", "/v2.1/flavors", 200, "admin",
         body={"flavor": {"name": "{server}-{request_id}", "ram": 64, "vcpus": 1,
                          "disk": 1}}),
    Case("DELETE", "/v2.1/flavors/{flavor}", 202, "admin", fresh=("flavor",)),
    Case("GET", "/v2.1/limits", 200, "read"),
    Case("GET", "/v2.1/limits?tenant_id={project_a}", 200, "target"),
    Case("GET", "/v2.1/os-quota-sets/{project_a}", 200, "target"),
    Case("GET", "/v2.1/os-quota-sets/{project_a}/detail", 200, "target"),
    Case("GET", "/v2.1/os-quota-sets/{project_a}/defaults", 200, "read"),
    Case("PUT", "/v2.1/os-quota-sets/{project_a}", 200, "admin",
         body={"quota_set": {"instances": 20}}),
    Case("DELETE", "/v2.1/os-quota-sets/{project_a}", 202, "admin"),
    Case("GET", "/v2.1/os-quota-class-sets/default", 200, "admin"),
    Case("PUT", "/v2.1/os-quota-class-sets/default", 200, "admin",
         body={"quota_class_set": {"instances": -1}}),
    # Key pairs belong to users: only alice has hers (an admin names other users' key
    # pairs only from microversion 2.10).
    Case("GET", "/v2.1/os-keypairs", 200, "user"),
    Case("POST", "/v2.1/os-keypairs", 200, "user",
         body={"keypair": {"name": "k-{server}"}}, fresh=("server",)),
    Case("GET", "/v2.1/os-keypairs/{keypair}", 200, "user", scoped=True,
         expect={"admin": 404}),
    Case("DELETE", "/v2.1/os-keypairs/{keypair}", 202, "user", scoped=True,
         fresh=("keypair",), expect={"admin": 404}),
    Case("GET", "/v2.1/os-server-groups", 200, "read"),
    Case("POST", "/v2.1/os-server-groups", 200, "write",
         body={"server_group": {"name": "g", "policies": ["affinity"]}}),
    Case("GET", "/v2.1/os-server-groups/{server_group}", 200, "read", scoped=True),
    Case("DELETE", "/v2.1/os-server-groups/{server_group}", 204, "write", scoped=True,
         fresh=("server_group",)),
    Case("GET", "/v2.1/os-aggregates", 200, "admin"),
    Case("POST", "/v2.1/os-aggregates", 200, "admin",
         body={"aggregate": {"name": "agg-{server}"}}, fresh=("server",)),
    Case("GET", "/v2.1/os-aggregates/{aggregate}", 200, "admin"),
    Case("PUT", "/v2.1/os-aggregates/{aggregate}", 200, "admin", fresh=("aggregate",),
         body={"aggregate": {"name": "renamed-{aggregate}"}}),
    Case("DELETE", "/v2.1/os-aggregates/{aggregate}", 200, "admin", fresh=("aggregate",)),
    Case("POST", "/v2.1/os-aggregates/{aggregate}/action", 200, "admin",
         fresh=("aggregate",), body={"add_host": {"host": "h1"}}),
    Case("POST", "/v2.1/os-aggregates/{aggregate}/action", 404, "admin",
         body={"remove_host": {"host": "h2"}}),
    Case("POST", "/v2.1/os-aggregates/{aggregate}/action", 200, "admin",
         body={"set_metadata": {"metadata": {"ssd": "true"}}}),
    Case("GET", "/v2.1/os-availability-zone", 200, "read"),
    Case("GET", "/v2.1/os-availability-zone/detail", 200, "admin"),
    Case("GET", "/v2.1/os-hypervisors", 200, "admin"),
    Case("GET", "/v2.1/os-hypervisors/detail", 200, "admin"),
    Case("GET", "/v2.1/os-services", 200, "admin"),
    Case("PUT", "/v2.1/os-services/enable", 200, "admin",
         body={"host": "h1", "binary": "nova-compute"}),
]


async def test_compute(world: World) -> None:
    await run_cases(world, COMPUTE_CASES,
                    ("server", "request_id", "keypair", "server_group", "aggregate"))
    mine = await world.ok("bob", "GET", "/v2.1/os-server-groups")
    assert world.ids["server_group"] not in {g["id"] for g in mine["server_groups"]}


IMG = "/image/v2/images"

IMAGE_CASES = [
    Case("GET", IMG, 200, "read"),
    Case("POST", IMG, 201, "write",
         body={"name": "i", "disk_format": "raw", "container_format": "bare"}),
    Case("GET", f"{IMG}/{{image}}", 200, "read", scoped=True),
    Case("PATCH", f"{IMG}/{{image}}", 200, "write", scoped=True, headers={"Content-Type": PATCH},
         body=[{"op": "replace", "path": "/name", "value": "renamed"}]),
    Case("DELETE", f"{IMG}/{{image}}", 204, "write", scoped=True, fresh=("image",)),
    Case("PUT", f"{IMG}/{{queued_image}}/file", 204, "write", scoped=True,
         fresh=("queued_image",), content=b"y" * 256,
         headers={"Content-Type": "application/octet-stream"}),
    Case("GET", f"{IMG}/{{image}}/file", 200, "read", scoped=True),
    Case("POST", f"{IMG}/{{image}}/actions/deactivate", 204, "write", scoped=True,
         fresh=("image",)),
    Case("POST", f"{IMG}/{{image}}/actions/reactivate", 204, "write", scoped=True),
    Case("PUT", f"{IMG}/{{image}}/tags/blue", 204, "write", scoped=True),
    Case("DELETE", f"{IMG}/{{tagged_image}}/tags/blue", 204, "write", scoped=True,
         fresh=("tagged_image",)),
    Case("GET", "/image/v2/schemas/image", 200, "read"),
    Case("GET", "/image/v2/schemas/images", 200, "read"),
    Case("GET", "/image/v2/schemas/member", 200, "read"),
    Case("GET", "/image/v2/schemas/members", 200, "read"),
    # Sharing: bob's project is the member of a shared image, so he sees it (and only he
    # may accept it); alice owns it.
    Case("POST", f"{IMG}/{{image}}/members", 200, "write", scoped=True, fresh=("image",),
         body={"member": "{bob_project}"}),
    Case("GET", f"{IMG}/{{shared_image}}/members", 200, "read", scoped=True,
         expect={"bob": 200}),
    Case("GET", f"{IMG}/{{shared_image}}/members/{{bob_project}}", 200, "read", scoped=True,
         expect={"bob": 200}),
    Case("PUT", f"{IMG}/{{shared_image}}/members/{{bob_project}}", 200, "write", scoped=True,
         body={"status": "accepted"}, expect={"bob": 200, "alice": 403}),
    Case("DELETE", f"{IMG}/{{shared_image}}/members/{{bob_project}}", 204, "write",
         scoped=True, fresh=("shared_image",), expect={"bob": 403}),
]


async def test_images(world: World) -> None:
    await run_cases(world, IMAGE_CASES, ("image", "shared_image"))
    listed = await world.ok("bob", "GET", IMG)
    assert world.ids["image"] not in {i["id"] for i in listed["images"]}


N = "/networking/v2.0"

NETWORK_CASES = [
    Case("GET", N, 200, "read"),
    Case("GET", f"{N}/extensions", 200, "read"),
    Case("GET", f"{N}/extensions/security-group", 200, "read"),
    Case("GET", f"{N}/networks", 200, "read"),
    Case("POST", f"{N}/networks", 201, "write", body={"network": {"name": "n"}}),
    Case("GET", f"{N}/networks/{{network}}", 200, "read", scoped=True),
    Case("PUT", f"{N}/networks/{{network}}", 200, "write", scoped=True,
         body={"network": {"name": "renamed"}}),
    Case("DELETE", f"{N}/networks/{{network}}", 204, "write", scoped=True,
         fresh=("network",)),
    Case("GET", f"{N}/subnets", 200, "read"),
    Case("POST", f"{N}/subnets", 201, "write", scoped=True, fresh=("network",),
         body={"subnet": {"network_id": "{network}", "ip_version": 4,
                          "cidr": "10.30.0.0/24"}}),
    Case("GET", f"{N}/subnets/{{subnet}}", 200, "read", scoped=True),
    Case("PUT", f"{N}/subnets/{{subnet}}", 200, "write", scoped=True,
         body={"subnet": {"name": "renamed"}}),
    Case("DELETE", f"{N}/subnets/{{subnet}}", 204, "write", scoped=True, fresh=("subnet",)),
    Case("GET", f"{N}/ports", 200, "read"),
    Case("POST", f"{N}/ports", 201, "write", scoped=True,
         body={"port": {"network_id": "{network}"}}),
    Case("GET", f"{N}/ports/{{port}}", 200, "read", scoped=True),
    Case("PUT", f"{N}/ports/{{port}}", 200, "write", scoped=True,
         body={"port": {"name": "renamed"}}),
    Case("DELETE", f"{N}/ports/{{port}}", 204, "write", scoped=True, fresh=("port",)),
    Case("GET", f"{N}/security-groups", 200, "read"),
    Case("POST", f"{N}/security-groups", 201, "write", body={"security_group": {"name": "s"}}),
    Case("GET", f"{N}/security-groups/{{sg}}", 200, "read", scoped=True),
    Case("PUT", f"{N}/security-groups/{{sg}}", 200, "write", scoped=True,
         body={"security_group": {"description": "changed"}}),
    Case("DELETE", f"{N}/security-groups/{{sg}}", 204, "write", scoped=True, fresh=("sg",)),
    Case("GET", f"{N}/security-group-rules", 200, "read"),
    Case("POST", f"{N}/security-group-rules", 201, "write", scoped=True, fresh=("sg",),
         body={"security_group_rule": {"security_group_id": "{sg}", "direction": "egress",
                                       "protocol": "udp"}}),
    Case("GET", f"{N}/security-group-rules/{{rule}}", 200, "read", scoped=True),
    Case("DELETE", f"{N}/security-group-rules/{{rule}}", 204, "write", scoped=True,
         fresh=("rule",)),
]


async def test_networks(world: World) -> None:
    await run_cases(world, NETWORK_CASES, ("network", "subnet", "port", "sg", "rule"))
    listed = await world.ok("bob", "GET", f"{N}/networks")
    assert world.ids["network"] not in {n["id"] for n in listed["networks"]}


V3 = "/identity/v3"
GRANT = f"{V3}/projects/{{project_a}}/users/{{alice_user}}/roles"
_SELF = {"alice": 200, "carol": 403, "bob": 403}  # a user may see only itself

IDENTITY_CASES = [
    Case("GET", f"{V3}/domains", 200, "admin"),
    Case("POST", f"{V3}/domains", 201, "admin", body={"domain": {"name": "d-{server}"}},
         fresh=("server",)),
    Case("GET", f"{V3}/domains/default", 200, "admin"),
    Case("PATCH", f"{V3}/domains/{{domain}}", 200, "admin", fresh=("domain",),
         body={"domain": {"description": "changed"}}),
    Case("DELETE", f"{V3}/domains/{{disabled_domain}}", 204, "admin",
         fresh=("disabled_domain",)),
    Case("GET", f"{V3}/projects", 200, "admin"),
    Case("POST", f"{V3}/projects", 201, "admin", body={"project": {"name": "p-{server}"}},
         fresh=("server",)),
    # A project's members (readers too) may see it; another project's may not.
    Case("GET", f"{V3}/projects/{{project_a}}", 200, "target"),
    Case("PATCH", f"{V3}/projects/{{project}}", 200, "admin", fresh=("project",),
         body={"project": {"description": "changed"}}),
    Case("DELETE", f"{V3}/projects/{{project}}", 204, "admin", fresh=("project",)),
    Case("GET", f"{V3}/users", 200, "admin"),
    Case("POST", f"{V3}/users", 201, "admin", body={"user": {"name": "u-{server}"}},
         fresh=("server",)),
    Case("GET", f"{V3}/users/{{alice_user}}", 200, "admin", expect=_SELF),
    Case("GET", f"{V3}/users/{{alice_user}}/projects", 200, "admin", expect=_SELF),
    Case("PATCH", f"{V3}/users/{{user}}", 200, "admin", fresh=("user",),
         body={"user": {"enabled": False}}),
    Case("DELETE", f"{V3}/users/{{user}}", 204, "admin", fresh=("user",)),
    Case("GET", f"{V3}/roles", 200, "admin"),
    Case("POST", f"{V3}/roles", 201, "admin", body={"role": {"name": "r-{server}"}},
         fresh=("server",)),
    Case("GET", f"{V3}/roles/{{role}}", 200, "admin"),
    Case("PATCH", f"{V3}/roles/{{role}}", 200, "admin", fresh=("role",),
         body={"role": {"name": "renamed-{role}"}}),
    Case("DELETE", f"{V3}/roles/{{role}}", 204, "admin", fresh=("role",)),
    Case("GET", GRANT, 200, "admin"),
    Case("PUT", f"{GRANT}/{{role}}", 204, "admin", fresh=("role",)),
    Case("HEAD", f"{GRANT}/{{grant}}", 204, "admin"),
    Case("GET", f"{GRANT}/{{grant}}", 204, "admin"),
    Case("DELETE", f"{GRANT}/{{grant}}", 204, "admin", fresh=("grant",)),
    Case("GET", f"{V3}/role_assignments", 200, "admin"),
    # Only users themselves change their password (admins reset it with PATCH). Last:
    # it ends alice's earlier tokens.
    Case("POST", f"{V3}/users/{{alice_user}}/password", 204, "admin",
         body={"user": {"original_password": PASSWORD, "password": PASSWORD}},
         expect={"alice": 204, "admin": 403}),
]


async def test_identity(world: World) -> None:
    await run_cases(world, IDENTITY_CASES, ("server", "role", "grant"))


def _endpoints(routes: list[Any]) -> list[APIRoute]:
    found: list[APIRoute] = []
    for route in routes:
        if hasattr(route, "original_router"):
            found.extend(_endpoints(route.original_router.routes))
        elif isinstance(route, APIRoute):
            found.append(route)
    return found


def test_the_matrix_covers_every_route_and_action() -> None:
    """Runs after the area tests (file order): each non-public route was called by
    one of them, and each action of the action routes too."""
    if not COVERED:
        pytest.skip("the area tests did not run in this session")
    from strato.api.app import create_app
    from strato.api.deps import ApiDeps
    from strato.config import ApiSettings

    app = create_app(ApiDeps(db=None, bus=None, image_store=None,  # type: ignore[arg-type]
                             auth=None, settings=ApiSettings()),  # type: ignore[arg-type]
                     ApiSettings())
    missing = sorted(f"{sorted(r.methods or ())} {r.path}" for r in _endpoints(app.routes)
                     if action_of(r.endpoint) not in (PUBLIC,) and r.endpoint not in COVERED)
    assert not missing, missing
    assert set(SERVER_ACTIONS) <= ACTIONS_HIT
    assert {aggregate_rule(n).rsplit(":", 1)[1]
            for n in ("add_host", "remove_host", "set_metadata")} <= ACTIONS_HIT
    assert all(action_of(r.endpoint) is not None for r in _endpoints(app.routes))
    assert PER_BODY in {action_of(r.endpoint) for r in _endpoints(app.routes)}
