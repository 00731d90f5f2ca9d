"""Errors at the API edge: every failure is a Nova fault, carries a request id, and a
rejected request writes nothing and sends nothing."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import strategies as st

from strato.api import ApiDeps, create_app
from strato.config import ApiSettings
from strato.domain.context import RequestContext
from strato.image.store import ImageStore
from tests.api_fixtures import (
    IMAGE_ID,
    MAX_METADATA,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
    run_property,
)
from tests.fakes.bus import RecordingBus

REQUEST_ID = re.compile(r"^req-[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


def assert_fault(response: httpx.Response, status: int, name: str, fragment: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    assert fragment in body[name]["message"], body[name]["message"]
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])


def server(**fields: Any) -> dict[str, Any]:
    return {"server": {"name": "web", "imageRef": IMAGE_ID, "flavorRef": "1", **fields}}


BAD_CREATE_BODIES: list[tuple[str, Any, str | None]] = [
    ("not an object", [1, 2], "must be a JSON object"),
    ("missing server", {}, "'server' is a required property"),
    ("server not an object", {"server": "web"}, "server"),
    ("unknown top-level key", {**server(), "bogus": {}}, "'bogus' was unexpected"),
    ("missing name", {"server": {"imageRef": IMAGE_ID, "flavorRef": "1"}},
     "'name' is a required property"),
    ("empty name", server(name=""), "name"),
    ("leading whitespace", server(name=" web"), "whitespace"),
    ("trailing whitespace", server(name="web "), "whitespace"),
    ("name too long", server(name="x" * 256), "name"),
    ("name not a string", server(name=7), "name"),
    ("unknown field in server", server(bogus=1), "'bogus' was unexpected"),
    ("missing flavorRef", {"server": {"name": "web", "imageRef": IMAGE_ID}},
     "'flavorRef' is a required property"),
    ("unknown flavor", server(flavorRef="999"), "Flavor 999 could not be found"),
    ("unknown flavor by URL", server(flavorRef="http://x/flavors/999"),
     "Flavor 999 could not be found"),
    ("private flavor", server(flavorRef="2"), "Flavor 2 could not be found"),
    ("disabled flavor", server(flavorRef="3"), "disabled"),
    ("missing imageRef", {"server": {"name": "web", "flavorRef": "1"}}, "imageRef"),
    ("imageRef not a uuid", server(imageRef="cirros"), "Invalid imageRef"),
    ("unknown image", server(imageRef="3c1b0d2e-0000-4000-8000-000000000000"),
     "Can not find requested image"),
    ("min_count > max_count", server(min_count=3, max_count=2), "min_count must be <="),
    ("max_count 0", server(max_count=0), "max_count"),
    ("max_count too big", server(max_count=1001), "max_count"),
    ("min_count not a number", server(min_count="two"), "min_count"),
    ("metadata key too long", server(metadata={"k" * 256: "v"}), "metadata"),
    ("metadata key empty", server(metadata={"": "v"}), "metadata"),
    ("metadata value too long", server(metadata={"k": "v" * 256}), "metadata"),
    ("metadata value not a string", server(metadata={"k": 1}), "metadata.k"),
    ("metadata not an object", server(metadata=["k"]), "metadata"),
    ("user_data not base64", server(user_data="not base64!"), "base64"),
    ("user_data too long", server(user_data="QUFB" * 16384), "user_data"),
    ("personality not a list", server(personality={"path": "/a"}), "personality"),
    ("personality path relative", server(personality=[{"path": "etc/x", "contents": ""}]),
     "absolute"),
    ("personality path with ..",
     server(personality=[{"path": "/etc/../root/x", "contents": ""}]), "absolute"),
    ("personality contents not base64",
     server(personality=[{"path": "/x", "contents": "not base64!"}]), "decoded"),
    ("personality with an unknown key",
     server(personality=[{"path": "/x", "contents": "", "mode": "0600"}]), "mode"),
    ("return_reservation_id not a bool", server(return_reservation_id="maybe"),
     "return_reservation_id"),
    ("networks of a wrong type", server(networks=5), "networks"),
    ("scheduler hints not an object", {**server(), "os:scheduler_hints": []},
     "scheduler_hints"),
    ("forced host by a member", server(availability_zone="nova:host1"), None),
]


async def assert_nothing_written(api: Api) -> None:
    assert await api.instances(include_deleted=True) == []
    assert api.bus.sent == []


@pytest.mark.parametrize(("body", "fragment"),
                         [pytest.param(b, f, id=name) for name, b, f in BAD_CREATE_BODIES])
async def test_bad_create_body_is_a_400_and_writes_nothing(api: Api, body: Any,
                                                          fragment: str | None) -> None:
    response = await api.request("POST", "/v2.1/servers", json=body)
    if fragment is None:  # a policy refusal, not a malformed body
        assert_fault(response, 403, "forbidden")
    else:
        assert_fault(response, 400, "badRequest", fragment)
    await assert_nothing_written(api)


# Over a project's quota for metadata or injected files: Nova's 403 (a QuotaError), with
# Retry-After: 0, and nothing written.
OVER_QUOTA_BODIES: list[tuple[str, Any, str]] = [
    ("too many metadata items",
     server(metadata={f"k{i}": "v" for i in range(MAX_METADATA + 1)}), "metadata_items"),
    ("personality file too big",
     server(personality=[{"path": "/x", "contents": "QUFB" * 3414}]), "exceeds"),
    ("personality path too long",
     server(personality=[{"path": "/" + "p" * 255, "contents": ""}]), "exceeds"),
    ("too many personality files",
     server(personality=[{"path": f"/f{i}", "contents": ""} for i in range(6)]),
     "injected_files"),
]


@pytest.mark.parametrize(("body", "fragment"),
                         [pytest.param(b, f, id=name) for name, b, f in OVER_QUOTA_BODIES])
async def test_over_quota_create_body_is_a_403_and_writes_nothing(api: Api, body: Any,
                                                                  fragment: str) -> None:
    response = await api.request("POST", "/v2.1/servers", json=body)
    assert_fault(response, 403, "forbidden", fragment)
    assert response.headers["Retry-After"] == "0"
    await assert_nothing_written(api)


async def test_image_not_active_is_a_400(api: Api) -> None:
    created = await api.request("POST", "/image/v2/images", json={"name": "empty"})
    response = await api.create_server(imageRef=created.json()["id"])
    assert_fault(response, 400, "badRequest", "is not active")
    await assert_nothing_written(api)


@pytest.mark.parametrize("raw", [b"{not json", b"", b"\xff\xfe", b"[" * 100000],
                         ids=["malformed", "empty", "not utf-8", "deep nesting"])
async def test_malformed_json_is_a_400(api: Api, raw: bytes) -> None:
    response = await api.request("POST", "/v2.1/servers", content=raw,
                                 headers={"Content-Type": "application/json"})
    assert_fault(response, 400, "badRequest", "")
    await assert_nothing_written(api)


async def test_a_huge_body_is_refused(api: Api) -> None:
    response = await api.request("POST", "/v2.1/servers", content=b" " * 200_000)
    assert_fault(response, 413, "overLimit", "too large")


@pytest.mark.parametrize(("query", "fragment"), [
    ("limit=-1", "limit"), ("limit=abc", "limit"), ("limit=1.5", "limit"),
    ("marker=3c1b0d2e-0000-4000-8000-000000000000",
     "marker [3c1b0d2e-0000-4000-8000-000000000000] not found"),
    ("changes-since=yesterday", "changes-since"),
    ("name=%5B", "regular expression"),
    ("all_tenants=perhaps", "all_tenants"),
])
@pytest.mark.parametrize("path", ["/v2.1/servers", "/v2.1/servers/detail"])
async def test_bad_list_query_is_a_400(api: Api, path: str, query: str, fragment: str) -> None:
    response = await api.request("GET", f"{path}?{query}")
    assert_fault(response, 400, "badRequest", fragment)


async def test_unknown_server_is_a_404(api: Api) -> None:
    for method in ("GET", "DELETE"):
        response = await api.request(method, "/v2.1/servers/nope")
        assert_fault(response, 404, "itemNotFound", "Instance nope could not be found.")
    response = await api.request("GET", "/v2.1/servers/nope/os-instance-actions")
    assert_fault(response, 404, "itemNotFound", "Instance nope could not be found.")


@pytest.mark.parametrize("token", [None, "wrong-token"], ids=["no token", "unknown token"])
async def test_missing_or_unknown_token_is_a_401(api: Api, token: str | None) -> None:
    for path in ("/v2.1/servers", "/v2.1/flavors", "/v2.1/nowhere"):
        response = await api.request("GET", path, token=token)
        assert_fault(response, 401, "unauthorized", "requires authentication")
    # The Image API answers in Glance's (webob's) shape.
    response = await api.request("GET", "/image/v2/images", token=token)
    assert response.status_code == 401
    assert response.json() == {"code": "401 Unauthorized", "title": "Unauthorized",
                               "message": "The request you have made requires "
                                          "authentication."}
    await assert_nothing_written(api)


async def test_unknown_route_and_wrong_method(api: Api) -> None:
    assert_fault(await api.request("GET", "/v2.1/nowhere"), 404, "itemNotFound",
                 "could not be found")
    assert_fault(await api.request("PUT", "/v2.1/servers"), 405, "badMethod", "not allowed")


async def test_every_response_has_a_request_id(api: Api) -> None:
    responses = [
        await api.request("GET", "/", token=None),
        await api.request("GET", "/v2.1/servers"),
        await api.request("GET", "/v2.1/servers", token=None),
        await api.request("GET", "/v2.1/servers/nope"),
        await api.request("POST", "/v2.1/servers", content=b"{"),
        await api.create_server(),
    ]
    ids = [r.headers["x-openstack-request-id"] for r in responses]
    assert all(REQUEST_ID.match(i) for i in ids)
    assert len(set(ids)) == len(ids)
    assert all(r.headers["x-compute-request-id"] == r.headers["x-openstack-request-id"]
               for r in responses)
    image_api = await api.request("GET", "/image/v2/images")
    assert REQUEST_ID.match(image_api.headers["x-openstack-request-id"])
    assert "x-compute-request-id" not in image_api.headers


async def test_callers_request_id_becomes_the_global_request_id(api: Api) -> None:
    mine = "req-0b9ae1c4-4a5e-4f7a-9a61-3b0e2f3f1a11"
    response = await api.create_server(headers={"X-OpenStack-Request-ID": mine})
    assert response.status_code == 202
    assert response.headers["x-openstack-request-id"] != mine
    ctx = api.bus.casts[0].ctx
    assert ctx.global_request_id == mine
    assert ctx.request_id == response.headers["x-openstack-request-id"]


async def test_callers_request_id_of_a_wrong_form_is_ignored(api: Api) -> None:
    await api.create_server(headers={"X-OpenStack-Request-ID": "evil\nid"})
    assert api.bus.casts[0].ctx.global_request_id is None


class _BrokenAuth:
    async def authenticate(self, token: str) -> RequestContext | None:
        raise RuntimeError("boom")


async def test_a_bug_is_a_500_compute_fault_with_a_request_id(tmp_path: Path) -> None:
    settings = ApiSettings()
    deps = ApiDeps(db=None, bus=RecordingBus(), image_store=ImageStore(tmp_path / "images"),  # type: ignore[arg-type]
                   auth=_BrokenAuth(), settings=settings)
    transport = httpx.ASGITransport(app=create_app(deps, settings))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        response = await client.get("/v2.1/servers", headers={"X-Auth-Token": "x"})
    assert_fault(response, 500, "computeFault", "Unexpected API Error")
    assert "boom" not in response.text


# --- property: no body makes the API fail with a 5xx -----------------------------------

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
_OPTIONAL = ["metadata", "min_count", "max_count", "availability_zone", "key_name",
             "user_data", "return_reservation_id", "networks", "config_drive",
             "security_groups", "adminPass", "accessIPv4", "personality", "bogus"]


def _mostly(valid: object) -> st.SearchStrategy[Any]:
    # Two draws in three keep the field valid, so bodies get past the first check and
    # reach the flavor and image look-ups and the database writes.
    return st.one_of(st.just(valid), st.just(valid), _JSON)


_SERVERISH = st.fixed_dictionaries(
    {"name": _mostly("web"), "imageRef": _mostly(IMAGE_ID), "flavorRef": _mostly("1")},
    optional={key: _JSON for key in _OPTIONAL})
_BODIES = st.one_of(_JSON, st.builds(lambda s: {"server": s}, _SERVERISH),
                    st.builds(lambda s, h: {"server": s, "os:scheduler_hints": h},
                              _SERVERISH, _JSON))


def test_no_create_body_produces_a_5xx(tmp_path: Path) -> None:
    def check(runner: asyncio.Runner, api: Api, body: Any) -> None:
        response = runner.run(api.request(
            "POST", "/v2.1/servers", content=json.dumps(body),
            headers={"Content-Type": "application/json"}))
        assert response.status_code < 500, (body, response.text)
        fault = response.json()
        if response.status_code >= 400:
            assert len(fault) == 1 and "message" in next(iter(fault.values()))

    run_property(tmp_path, check, _BODIES)
