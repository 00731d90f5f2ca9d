"""The request body cap (``strato.api.bodylimit``): every route refuses a body over
``api.max_request_body_size`` with a 413 in its API's format before reading it whole,
chunked or not; image data streams on up to ``api.max_upload_body_size``; absurdly
nested JSON is a 400, never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from strato.api import create_app
from strato.config import ApiSettings
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.cloud_fixtures import ADMIN_TOKEN, Harness, fake_hosts, running_cloud
from tests.service.test_api_images import IMAGES, MIB, OCTETS, assert_fault, create, show

TOKENS = "/identity/v3/auth/tokens"
CAP = 114688  # Nova's osapi_max_request_body_size
NESTED = "[" * 50_000 + "]" * 50_000  # under the cap, far over Python's recursion limit


@dataclass
class Sender:
    """A streamed request body of ``count`` chunks of ``size`` bytes that records how
    many the app pulled."""

    count: int
    size: int = MIB
    sent: int = 0

    async def chunks(self) -> AsyncIterator[bytes]:
        for _ in range(self.count):
            self.sent += 1
            yield b"x" * self.size


@pytest.fixture
async def cloud(tmp_path: Path) -> AsyncIterator[Harness]:
    async with running_cloud(tmp_path, fake_hosts(1),
                             api={"admin_token": ADMIN_TOKEN}) as harness:
        yield harness


@pytest.fixture
async def http(cloud: Harness) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=cloud.cloud.app)
    async with httpx.AsyncClient(base_url="http://strato", transport=transport) as client:
        yield client


def assert_keystone_error(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == status, error


# ---- the identity API (Keystone) --------------------------------------------------------


async def test_a_60_mb_chunked_token_request_is_refused_before_it_is_read(
        http: httpx.AsyncClient) -> None:
    sender = Sender(60)
    response = await http.post(TOKENS, content=sender.chunks(),
                               headers={"Content-Type": "application/json"})
    assert_keystone_error(response, 413)
    # The cap is 112 KiB: the second MiB is never asked for.
    assert sender.sent == 1


async def test_a_60_mb_declared_token_request_is_refused_unread(
        http: httpx.AsyncClient) -> None:
    sender = Sender(60)
    response = await http.post(TOKENS, content=sender.chunks(), headers={
        "Content-Type": "application/json", "Content-Length": str(60 * MIB)})
    assert_keystone_error(response, 413)
    assert sender.sent == 0


async def test_deeply_nested_json_to_the_token_route_is_a_400(
        http: httpx.AsyncClient) -> None:
    for body in (NESTED, '{"auth": ' + NESTED + "}"):
        response = await http.post(TOKENS, content=body,
                                   headers={"Content-Type": "application/json"})
        assert_keystone_error(response, 400)


async def test_a_token_request_at_the_cap_still_works(http: httpx.AsyncClient) -> None:
    body = ('{"auth": {"identity": {"methods": ["password"], "password": {"user": {'
            '"name": "admin", "domain": {"id": "default"}, "password": "strato-admin"}}}}'
            + " " * (CAP - 200) + "}")
    assert len(body) <= CAP
    response = await http.post(TOKENS, content=body,
                               headers={"Content-Type": "application/json"})
    assert response.status_code == 201, response.text


# ---- the dashboard ----------------------------------------------------------------------


async def test_a_60_mb_dashboard_form_is_refused_before_it_is_read(
        http: httpx.AsyncClient) -> None:
    sender = Sender(60)
    response = await http.post("/dashboard/login", content=sender.chunks(), headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413, response.text
    assert "too large" in response.json()["error"]
    assert sender.sent == 2  # a form may have 1 MiB: the second crosses it, the rest waits


async def test_a_dashboard_form_may_pass_the_json_cap(http: httpx.AsyncClient) -> None:
    # A launch form carries up to 64 KiB of user data, which URL-encoding may triple.
    form = "username=admin&password=x&csrf=forged&user_data=" + "%0A" * 65535
    response = await http.post("/dashboard/login", content=form, headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 403 and "stale" in response.text  # read, then refused


async def test_nested_json_to_the_dashboard_is_refused_not_a_crash(
        http: httpx.AsyncClient) -> None:
    for path in ("/dashboard/login", "/dashboard/images", "/dashboard/launch"):
        response = await http.post(path, content=NESTED,
                                   headers={"Content-Type": "application/json"})
        # Without a session a page sends the browser to the login page (303).
        assert response.status_code in (303, 400, 403), (path, response.text)


# ---- the other APIs ---------------------------------------------------------------------


async def test_a_chunked_body_over_the_cap_is_413_in_each_apis_format(api: Api) -> None:
    nova = await api.request("POST", "/v2.1/servers", content=Sender(3).chunks(),
                             headers={"Content-Type": "application/json"})
    assert nova.status_code == 413 and nova.json()["overLimit"]["code"] == 413, nova.text
    neutron = await api.request("POST", "/networking/v2.0/networks",
                                content=Sender(3).chunks(),
                                headers={"Content-Type": "application/json"})
    assert neutron.status_code == 413, neutron.text
    assert neutron.json()["NeutronError"]["type"] == "HTTPRequestEntityTooLarge"
    glance = await api.request("POST", IMAGES, content=Sender(3).chunks(),
                               headers={"Content-Type": "application/json"})
    assert_fault(glance, 413, "too large")
    assert await api.instances() == []


async def test_a_declared_body_over_the_cap_is_refused_unread(api: Api) -> None:
    sender = Sender(3)
    response = await api.request("POST", "/v2.1/servers", content=sender.chunks(), headers={
        "Content-Type": "application/json", "Content-Length": str(3 * MIB)})
    assert response.status_code == 413, response.text
    assert sender.sent == 0


# ---- image data -------------------------------------------------------------------------


async def test_image_data_streams_past_the_json_cap(api: Api) -> None:
    image_id = (await create(api))["id"]
    sender = Sender(5)
    response = await api.request("PUT", f"{IMAGES}/{image_id}/file",
                                 content=sender.chunks(), headers=OCTETS)
    assert response.status_code == 204, response.text
    assert (await show(api, image_id))["size"] == 5 * MIB


async def test_image_data_over_the_upload_cap_is_413_and_leaves_no_data(
        api: Api) -> None:
    settings = ApiSettings(admin_token=ADMIN, max_upload_body_size=2 * MIB)
    app = create_app(api.app.state.deps, settings)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                 base_url="http://strato.test") as client:
        image_id = (await create(api))["id"]
        sender = Sender(5)
        response = await client.put(f"{IMAGES}/{image_id}/file", content=sender.chunks(),
                                    headers={**OCTETS, "X-Auth-Token": ALICE})
        assert_fault(response, 413, "too large")
        assert sender.sent == 3  # cut as it streamed: the rest was never pulled
        declared = await client.put(f"{IMAGES}/{image_id}/file", content=b"x" * 3 * MIB,
                                    headers={**OCTETS, "X-Auth-Token": ALICE})
        assert_fault(declared, 413, "too large")
    assert (await show(api, image_id))["status"] == "queued"
    assert not api.store.directory.exists() or not any(api.store.directory.iterdir())
