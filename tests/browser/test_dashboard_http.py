"""The dashboard's forms and pages over plain HTTP (no browser): CSRF on every write,
login refusals, no open redirect, escaping, the wizard's refusals in place, nothing
half-created, and 4xx (never 5xx) for bad addresses. Against ``strato up`` (fake driver).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from http.cookies import SimpleCookie

import httpx
import pytest
from starlette.routing import Route

from strato.client import CloudClient
from strato.client.auth import password_token
from strato.dashboard import create_dashboard
from strato.dashboard.session import Dashboard
from tests.client.server_fixtures import ADMIN, RunningApi, add_member, api_fixture

__all__ = ["api_fixture"]

PASSWORD = "http-test-pw"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


class Visitor:
    """A browser without a browser: keeps the dashboard's cookies itself (httpx's jar
    would not send ``Secure`` cookies over plain http)."""

    def __init__(self, url: str) -> None:
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30)
        self.cookies: dict[str, str] = {}
        self.csrf = ""

    def send(self, method: str, path: str, **kw: object) -> httpx.Response:
        headers = dict(kw.pop("headers", {}) or {})  # type: ignore[call-overload]
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        resp = self.http.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
        for header in resp.headers.get_list("set-cookie"):
            jar: SimpleCookie = SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel["max-age"] == "0" or morsel.value in ("", '""'):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        found = _CSRF.search(resp.text)
        if found:
            self.csrf = found.group(1)
        return resp

    def get(self, path: str) -> httpx.Response:
        return self.send("GET", path)

    def post(self, path: str, data: dict[str, object], *, csrf: bool = True
             ) -> httpx.Response:
        body = dict(data)
        if csrf:
            body["csrf"] = self.csrf
        return self.send("POST", path, data=body)

    def log_in(self, user: str, password: str) -> httpx.Response:
        self.get("/dashboard/login")
        return self.post("/dashboard/login", {"username": user, "password": password,
                                              "next": "/dashboard/instances"})

    def close(self) -> None:
        self.http.close()


@pytest.fixture(scope="module")
def member(api: RunningApi) -> Iterator[Visitor]:
    add_member(api, "http-a", "dora", PASSWORD)
    visitor = Visitor(api.url)
    assert visitor.log_in("dora", PASSWORD).status_code == 303
    yield visitor
    visitor.close()


async def _admin_client(api: RunningApi) -> CloudClient:
    token = await password_token(api.url, user=ADMIN.username, password=ADMIN.password,
                                 project=ADMIN.project_name)
    return CloudClient(api.url, token)


@pytest.fixture(scope="module")
def public_image(api: RunningApi) -> str:
    async def make() -> str:
        async with await _admin_client(api) as admin:
            return await admin.create_image("http-public", b"\0" * 512, disk_format="raw",
                                            visibility="public")
    return asyncio.run(make())


def test_pages_need_a_login_and_a_wrong_password_says_so(api: RunningApi) -> None:
    visitor = Visitor(api.url)
    resp = visitor.get("/dashboard/images")
    assert resp.status_code == 303
    assert resp.headers["location"] == "/dashboard/login?next=/dashboard/images"
    visitor.get("/dashboard/login")
    assert "strato_csrf" in visitor.cookies and "strato_session" not in visitor.cookies
    wrong = visitor.post("/dashboard/login", {"username": "admin", "password": "nope"})
    assert wrong.status_code == 401 and "The user name or password is wrong." in wrong.text
    assert "strato_session" not in visitor.cookies
    forged = visitor.post("/dashboard/login", {"username": ADMIN.username,
                                               "password": ADMIN.password}, csrf=False)
    assert forged.status_code == 403 and "strato_session" not in visitor.cookies
    # ``next`` only ever leads inside the dashboard.
    for evil in ("https://evil.example/", "//evil.example/x", "/dashboard/../identity"):
        visitor.get("/dashboard/login")
        resp = visitor.post("/dashboard/login", {"username": ADMIN.username,
                                                 "password": ADMIN.password, "next": evil})
        assert resp.status_code == 303
        assert resp.headers["location"] in ("/dashboard/instances",
                                            "/dashboard/../identity") and \
            not resp.headers["location"].startswith(("//", "http"))
    cookie = next(h for h in resp.headers.get_list("set-cookie")
                  if h.startswith("strato_session="))
    assert all(flag in cookie for flag in ("HttpOnly", "Secure", "Path=/dashboard",
                                           "SameSite=lax"))
    visitor.close()


def test_every_write_refuses_a_missing_or_wrong_csrf_value(api: RunningApi,
                                                           member: Visitor) -> None:
    app = create_dashboard(Dashboard(base_url="http://unused"))
    writes = [r for r in app.routes if isinstance(r, Route)
              and (r.methods or set()) & {"POST", "PUT", "DELETE"}]
    assert len(writes) >= 9
    values = {"server_id": "00000000-0000-0000-0000-000000000000", "action": "delete",
              "image_id": "00000000-0000-0000-0000-000000000000", "name": "k",
              "network_id": "00000000-0000-0000-0000-000000000000"}
    for route in writes:
        if route.path == "/login":
            continue  # above
        path = "/dashboard" + route.path.format(**values)
        for method in sorted((route.methods or set()) - {"GET", "HEAD"}):
            for csrf in (None, "wrong"):
                data = {} if csrf is None else {"csrf": csrf}
                resp = member.send(method, path, data=data)
                assert resp.status_code == 403, (method, path, resp.status_code)
                assert "CSRF" in resp.text
    # The session survived all that (logout was refused too).
    assert member.get("/dashboard/instances").status_code == 200


def test_names_are_escaped_and_other_projects_are_not_found(api: RunningApi,
                                                            member: Visitor) -> None:
    async def make() -> tuple[str, str]:
        async with await _admin_client(api) as admin:
            flavor = str((await admin.flavors())[0]["id"])
            image = await admin.create_image("<img src=x onerror=alert(1)>", b"\0" * 512,
                                             disk_format="raw", visibility="public")
            server = await admin.create_servers({
                "name": "<script>alert('x')</script>", "imageRef": image,
                "flavorRef": flavor})
            return image, str(server["id"])

    image, admins_server = asyncio.run(make())
    page = member.get("/dashboard/images")
    assert page.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text
    assert "<img src=x" not in page.text
    # The admin's server is another project's: not found, and never listed.
    assert admins_server not in member.get("/dashboard/instances").text
    for path in (f"/dashboard/instances/{admins_server}",
                 f"/dashboard/instances/{admins_server}/console",
                 f"/dashboard/instances/{admins_server}/confirm/delete",
                 "/dashboard/instances/not-a-uuid", "/dashboard/images/nope/confirm/delete"):
        resp = member.get(path)
        assert resp.status_code == 404, (path, resp.status_code)
        assert "Not found" in resp.text
    refused = member.post(f"/dashboard/instances/{admins_server}/delete", {})
    assert refused.status_code == 303 and "instances/" in refused.headers["location"]
    assert member.get("/dashboard/instances/" + admins_server + "/confirm/explode"
                      ).status_code == 404
    # An admin sees the escaped name in the list.
    admin = Visitor(api.url)
    admin.log_in(ADMIN.username, ADMIN.password)
    listing = admin.get("/dashboard/instances").text
    assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in listing
    assert "<script>alert(" not in listing
    # Members do not get the admin pages: the API's 403, in words.
    denied = member.get("/dashboard/admin/hypervisors")
    assert denied.status_code == 403 and "Not allowed" in denied.text
    admin.close()


def test_the_wizard_refuses_in_place_and_creates_nothing_half_way(
        api: RunningApi, member: Visitor, public_image: str) -> None:
    step = member.post("/dashboard/launch", {"step": "details", "go": "next",
                                             "name": "", "count": "0"})
    assert step.status_code == 400
    assert "An instance needs a name." in step.text and "from 1 to 100" in step.text
    # Past the details: the source step, the answers carried as hidden fields.
    ok = member.post("/dashboard/launch", {"step": "details", "go": "next",
                                           "name": "w<b>", "count": "30"})
    assert ok.status_code == 200 and "Source: the image to boot" in ok.text
    assert 'name="name" value="w&lt;b&gt;"' in ok.text
    images = re.findall(r'name="image" id="image-[^"]+" value="([^"]+)"', ok.text)
    assert public_image in images
    flavor_step = member.post("/dashboard/launch", {
        "step": "source", "go": "next", "name": "w<b>", "count": "30",
        "image": images[0], "seen": "details"})
    assert "Quota after launch" in flavor_step.text and "over quota" in flavor_step.text
    flavors = re.findall(r'name="flavor" id="flavor-[^"]+" value="([^"]+)"', flavor_step.text)
    over = member.post("/dashboard/launch", {
        "step": "flavor", "go": "next", "name": "w<b>", "count": "30",
        "image": images[0], "flavor": flavors[0], "seen": "details,source"})
    assert over.status_code == 400
    assert "Not enough quota left for this flavor: instances 0 used + 30 &gt; 10" in over.text
    # The API's own refusal (no such key pair) comes back on the step it is about.
    refused = member.post("/dashboard/launch", {
        "step": "configuration", "go": "launch", "name": "w", "count": "1",
        "image": images[0], "flavor": flavors[0], "key_name": "no-such-key",
        "seen": "details,source,flavor,networks,access"})
    assert refused.status_code == 400
    assert "The API refused the launch" in refused.text
    assert "Security groups and key pair" in refused.text
    listing = member.get("/dashboard/instances").text
    assert "No instances." in listing
    # A garbled wizard form is a 4xx, not a crash.
    garbled = member.post("/dashboard/launch", {"step": "???", "go": "step-nowhere"})
    assert garbled.status_code == 400


def test_key_pairs_generated_once_and_bad_keys_refused(api: RunningApi,
                                                       member: Visitor) -> None:
    made = member.post("/dashboard/keypairs", {"name": "gen-key", "public_key": ""})
    assert made.status_code == 201 and "BEGIN" in made.text and "PRIVATE KEY" in made.text
    again = member.get("/dashboard/keypairs")
    assert "gen-key" in again.text and "PRIVATE KEY" not in again.text
    bad = member.post("/dashboard/keypairs", {"name": "bad-key", "public_key": "not a key"})
    assert bad.status_code == 400 and 'class="error"' in bad.text
    assert "bad-key" in bad.text  # the form keeps what was typed
    confirm = member.get("/dashboard/keypairs/gen-key/confirm/delete")
    assert "Delete the key pair gen-key?" in confirm.text
    gone = member.post("/dashboard/keypairs/gen-key/delete", {})
    assert gone.status_code == 303
    assert "gen-key" not in member.get("/dashboard/keypairs").text


def test_a_revoked_session_goes_back_to_the_login(api: RunningApi) -> None:
    add_member(api, "http-b", "emil", PASSWORD)
    visitor = Visitor(api.url)
    visitor.log_in("emil", PASSWORD)
    token = visitor.cookies["strato_session"]

    async def revoke() -> None:
        async with CloudClient(api.url, token) as client:
            await client.revoke_token(token)

    asyncio.run(revoke())
    resp = visitor.get("/dashboard/flavors")
    assert resp.status_code == 303 and resp.headers["location"].startswith(
        "/dashboard/login")
    assert "strato_session" not in visitor.cookies
    assert "Your session has ended" in visitor.get(resp.headers["location"]).text
    visitor.close()


def test_ids_stay_one_path_segment(api: RunningApi, member: Visitor) -> None:
    # An id that would climb out of /servers/ reaches the API as one escaped segment.
    rows = member.get("/dashboard/instances/rows?id=../os-hypervisors&id=..%2F..%2Fidentity")
    assert rows.status_code == 200 and "<tr" not in rows.text
    for path in ("/dashboard/instances/..%2Fos-hypervisors",
                 "/dashboard/instances/..%2F..%2Fimage%2Fv2%2Fimages/console",
                 "/dashboard/keypairs/..%2F..%2Fos-hypervisors/confirm/delete"):
        resp = member.get(path)
        assert 200 <= resp.status_code < 500, (path, resp.status_code)
        assert "hypervisor_hostname" not in resp.text
    # A name with a slash matches no dashboard route at all.
    assert member.post("/dashboard/keypairs/..%2F..%2Fos-services/delete", {}
                       ).status_code == 404


def test_a_refused_upload_leaves_no_empty_image(api: RunningApi, member: Visitor) -> None:
    created = member.send("POST", "/dashboard/images",
                          data={"name": "not-really-qcow2", "disk_format": "qcow2"},
                          headers={"X-CSRF-Token": member.csrf})
    assert created.status_code == 201
    image_id = created.json()["id"]
    upload = member.send("PUT", f"/dashboard/images/{image_id}/file",
                         content=b"this is not a qcow2 image" * 100,
                         headers={"X-CSRF-Token": member.csrf,
                                  "Content-Type": "application/octet-stream"})
    assert upload.status_code == 400, upload.text
    assert "(the empty image record was removed)" in upload.json()["error"]
    assert "not-really-qcow2" not in member.get("/dashboard/images").text
    # A good upload goes through, and the image is active.
    created = member.send("POST", "/dashboard/images",
                          data={"name": "raw-one", "disk_format": "raw"},
                          headers={"X-CSRF-Token": member.csrf})
    image_id = created.json()["id"]
    upload = member.send("PUT", f"/dashboard/images/{image_id}/file", content=b"\0" * 4096,
                         headers={"X-CSRF-Token": member.csrf,
                                  "Content-Type": "application/octet-stream"})
    assert upload.status_code == 200 and upload.json() == {"id": image_id,
                                                          "status": "uploaded"}
    page = member.get("/dashboard/images").text
    assert re.search(r'data-name="raw-one">.*?status-active', page, re.S)


def test_a_network_and_its_subnet_are_made_together_or_not_at_all(
        api: RunningApi, member: Visitor) -> None:
    bad = member.post("/dashboard/networks", {"name": "half-net", "cidr": "10.0.300.0/24",
                                              "enable_dhcp": "1"})
    assert bad.status_code == 400 and "The subnet was refused:" in bad.text
    assert 'value="half-net"' in bad.text  # the form keeps what was typed
    assert 'data-name="half-net"' not in member.get("/dashboard/networks").text
    missing = member.post("/dashboard/networks", {"name": "no-cidr", "cidr": ""})
    assert missing.status_code == 400 and "needs a name and its subnet a CIDR" in missing.text

    made = member.post("/dashboard/networks", {"name": "team-net", "cidr": "10.232.0.0/24",
                                               "gateway_ip": "10.232.0.254"})
    assert made.status_code == 303
    page = member.get("/dashboard/networks").text
    row = re.search(r'<tr data-name="team-net">.*?</tr>', page, re.S)
    assert row is not None
    assert "team-net-subnet" in row.group(0) and "10.232.0.0/24" in row.group(0)
    assert "gateway 10.232.0.254" in row.group(0) and "DHCP off" in row.group(0)
    network_id = re.search(r'/networks/([0-9a-f-]{36})/confirm/delete', row.group(0))
    assert network_id is not None
    confirm = member.get(f"/dashboard/networks/{network_id.group(1)}/confirm/delete")
    assert "Delete the network team-net and its subnets?" in confirm.text
    assert member.post(f"/dashboard/networks/{network_id.group(1)}/delete", {}
                       ).status_code == 303
    assert 'data-name="team-net"' not in member.get("/dashboard/networks").text
    assert member.get("/dashboard/networks/nope/confirm/delete").status_code == 404
