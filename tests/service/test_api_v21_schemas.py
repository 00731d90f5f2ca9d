"""strato's Compute API answers, checked against Tempest's 2.1 response schemas.

Tempest validates every answer it gets against the JSON schemas of
``tempest/lib/api_schema/response/compute/v2_1`` (``limits.py``, ``quotas.py``,
``quota_classes.py``, ``versions.py``, ``servers.py``); most objects there forbid
unknown keys, so a key strato adds fails Tempest as surely as one it misses. The
schemas below say the same as Tempest's, written with small helpers: the same
properties, the same required keys, no others allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest

from strato.domain.actions import EventResult
from strato.domain.ids import HostName, InstanceId, RequestId
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.cloud_fixtures import fake_hosts, running_cloud

Schema = dict[str, Any]

INTEGER: Schema = {"type": "integer"}
STRING: Schema = {"type": "string"}


def closed(properties: dict[str, Schema], required: Iterable[str] = ()) -> Schema:
    """An object with exactly these properties allowed and ``required`` present."""
    schema: Schema = {"type": "object", "properties": properties,
                      "additionalProperties": False}
    if needed := sorted(required):  # draft 4 has no empty "required"
        schema["required"] = needed
    return schema


def check(schema: Schema, body: Any) -> None:
    """Fail with every way ``body`` breaks ``schema``."""
    errors = [f"{'/'.join(map(str, e.instance_path))}: {e.message}"
              for e in jsonschema_rs.Draft4Validator(schema).iter_errors(body)]
    assert not errors, errors


LINKS: Schema = {"type": "array", "items": closed(
    {"href": {"type": "string", "format": "uri"}, "rel": STRING}, ["href", "rel"])}

# --- limits.py: get_limit --------------------------------------------------------------

_ABSOLUTE_REQUIRED = ("maxImageMeta", "maxPersonality", "maxPersonalitySize",
                      "maxSecurityGroupRules", "maxSecurityGroups", "maxServerMeta",
                      "maxTotalCores", "maxTotalFloatingIps", "maxTotalInstances",
                      "maxTotalKeypairs", "maxTotalRAMSize", "totalCoresUsed",
                      "totalFloatingIpsUsed", "totalInstancesUsed", "totalRAMUsed",
                      "totalSecurityGroupsUsed")
# Tempest allows these without requiring them (an extension in old Novas); Nova 2.1
# answers them, and so does strato (the test below requires them too).
_ABSOLUTE_OPTIONAL = ("maxServerGroupMembers", "maxServerGroups", "totalServerGroupsUsed")
_RATE_LIMIT = closed({"next-available": STRING, "remaining": INTEGER, "unit": STRING,
                      "value": INTEGER, "verb": STRING})
GET_LIMITS = closed({"limits": closed({
    "absolute": closed({k: INTEGER for k in _ABSOLUTE_REQUIRED + _ABSOLUTE_OPTIONAL},
                       _ABSOLUTE_REQUIRED),
    "rate": {"type": "array", "items": closed({
        "limit": {"type": "array", "items": _RATE_LIMIT}, "regex": STRING, "uri": STRING})},
}, ["absolute", "rate"])}, ["limits"])

# --- quotas.py and quota_classes.py -----------------------------------------------------

_QUOTA_REQUIRED = ("instances", "cores", "ram", "floating_ips", "fixed_ips",
                   "metadata_items", "key_pairs", "security_groups", "security_group_rules",
                   "injected_files", "injected_file_content_bytes",
                   "injected_file_path_bytes")
_QUOTA_OPTIONAL = ("server_group_members", "server_groups")
_QUOTAS = _QUOTA_REQUIRED + _QUOTA_OPTIONAL


def quota_body(key: str, *, with_id: bool) -> Schema:
    """``{key: {resource: int, ...}}``, with the set's ``id`` (show, defaults) or
    without (update)."""
    properties = {k: INTEGER for k in _QUOTAS}
    required = list(_QUOTA_REQUIRED)
    if with_id:
        properties["id"] = STRING
        required.append("id")
    return closed({key: closed(properties, required)}, [key])


_USAGE = {"type": "object", "properties": {
    "reserved": INTEGER, "limit": INTEGER, "in_use": INTEGER}}
GET_QUOTA_DETAIL = closed({"quota_set": closed(
    {"id": STRING, **{k: _USAGE for k in _QUOTAS}}, [*_QUOTA_REQUIRED, "id"])},
    ["quota_set"])

# --- versions.py: get_one_version -------------------------------------------------------

_VERSION = closed({
    "id": STRING,
    "links": {"type": "array", "items": closed(
        {"href": {"type": "string", "format": "uri"}, "rel": STRING, "type": STRING},
        ["href", "rel"])},
    "status": STRING, "updated": STRING, "version": STRING, "min_version": STRING,
    "media-types": {"type": "array"},
}, ["id", "links", "status", "updated"])
GET_ONE_VERSION = closed({"version": _VERSION})
LIST_VERSIONS = closed({"versions": {"type": "array", "items": _VERSION}}, ["versions"])

# --- servers.py: rebuild_server_with_admin_pass, show_instance_action -------------------

_ADDRESSES: Schema = {"type": "object", "patternProperties": {
    "^[a-zA-Z0-9-_.]+$": {"type": "array", "items": closed(
        {"version": INTEGER, "addr": STRING}, ["version", "addr"])}}}
_SERVER = closed({
    "id": STRING, "name": STRING, "status": STRING,
    "image": {"oneOf": [closed({"id": STRING, "links": LINKS}, ["id", "links"]),
                        {"type": ["string", "null"]}]},
    "flavor": closed({"id": STRING, "links": LINKS}),
    "fault": closed({"code": INTEGER, "created": STRING, "message": STRING,
                     "details": STRING}, ["code", "created", "message"]),
    "user_id": STRING, "tenant_id": STRING, "created": STRING, "updated": STRING,
    "progress": INTEGER, "metadata": {"type": "object"}, "links": LINKS,
    "addresses": _ADDRESSES, "hostId": STRING, "OS-DCF:diskConfig": STRING,
    "accessIPv4": STRING, "accessIPv6": STRING, "adminPass": STRING,
}, ["id", "name", "status", "image", "flavor", "user_id", "tenant_id", "created",
    "updated", "metadata", "links", "addresses", "hostId", "adminPass"])
REBUILD_WITH_ADMIN_PASS = closed({"server": _SERVER}, ["server"])

_NULLABLE_STRING: Schema = {"type": ["string", "null"]}
_ACTION_FIELDS: dict[str, Schema] = {
    "action": STRING, "request_id": STRING, "user_id": STRING, "project_id": STRING,
    "start_time": STRING, "message": _NULLABLE_STRING, "instance_uuid": STRING}
_EVENT = closed({"event": STRING, "start_time": STRING,
                 "finish_time": _NULLABLE_STRING, "result": _NULLABLE_STRING,
                 "traceback": _NULLABLE_STRING},
                ["event", "start_time", "finish_time", "result", "traceback"])
SHOW_INSTANCE_ACTION = closed({"instanceAction": closed(
    {**_ACTION_FIELDS, "events": {"type": "array", "items": _EVENT}},
    _ACTION_FIELDS)}, ["instanceAction"])


def test_the_schemas_refuse_what_tempest_refuses() -> None:
    """The helpers above mean what they say: an extra or a missing key fails."""
    absolute = {k: 0 for k in _ABSOLUTE_REQUIRED}
    check(GET_LIMITS, {"limits": {"absolute": absolute, "rate": []}})
    with pytest.raises(AssertionError):
        check(GET_LIMITS, {"limits": {"absolute": {**absolute, "maxBogus": 1}, "rate": []}})
    with pytest.raises(AssertionError):
        check(GET_LIMITS, {"limits": {"absolute": {**absolute, "maxTotalFloatingIps": None},
                                      "rate": []}})
    event = {"event": "e", "start_time": "t", "finish_time": None, "result": None,
             "traceback": None}
    with pytest.raises(AssertionError):
        check(_EVENT, {**event, "details": None})
    with pytest.raises(AssertionError):
        check(_EVENT, {k: v for k, v in event.items() if k != "traceback"})


# --- the answers ------------------------------------------------------------------------

async def test_limits_match_tempests_schema(api: Api) -> None:
    for token in (ALICE, ADMIN):
        response = await api.request("GET", "/v2.1/limits", token=token)
        assert response.status_code == 200
        check(GET_LIMITS, response.json())
        absolute = response.json()["limits"]["absolute"]
        assert set(absolute) == set(_ABSOLUTE_REQUIRED + _ABSOLUTE_OPTIONAL)
        # Nova's nova-network defaults, their usage never counted.
        assert (absolute["maxTotalFloatingIps"], absolute["maxSecurityGroups"],
                absolute["maxSecurityGroupRules"], absolute["totalFloatingIpsUsed"],
                absolute["totalSecurityGroupsUsed"]) == (10, 10, 20, 0, 0)


async def test_quota_sets_match_tempests_schemas(api: Api) -> None:
    base = "/v2.1/os-quota-sets/project-a"
    shown = await api.request("GET", base)
    assert shown.status_code == 200
    check(quota_body("quota_set", with_id=True), shown.json())
    assert set(shown.json()["quota_set"]) == {"id", *_QUOTAS}
    assert {k: shown.json()["quota_set"][k] for k in
            ("fixed_ips", "floating_ips", "security_groups", "security_group_rules")} == {
        "fixed_ips": -1, "floating_ips": 10, "security_groups": 10,
        "security_group_rules": 20}
    defaults = await api.request("GET", f"{base}/defaults")
    check(quota_body("quota_set", with_id=True), defaults.json())
    detail = await api.request("GET", f"{base}/detail")
    check(GET_QUOTA_DETAIL, detail.json())
    assert set(detail.json()["quota_set"]) == {"id", *_QUOTAS}
    assert detail.json()["quota_set"]["floating_ips"] == {
        "limit": 10, "in_use": 0, "reserved": 0}

    # An update takes the nova-network resources too, and answers without the id.
    updated = await api.request("PUT", base, token=ADMIN, json={"quota_set": {
        "floating_ips": 3, "fixed_ips": "7", "security_groups": 4,
        "security_group_rules": -1}})
    assert updated.status_code == 200, updated.text
    check(quota_body("quota_set", with_id=False), updated.json())
    after = (await api.request("GET", base)).json()["quota_set"]
    assert (after["floating_ips"], after["fixed_ips"], after["security_groups"],
            after["security_group_rules"]) == (3, 7, 4, -1)
    # nova-network's "networks" quota is gone, as in Nova without nova-network.
    refused = await api.request("PUT", base, token=ADMIN,
                                json={"quota_set": {"networks": 1}})
    assert refused.status_code == 400


async def test_quota_class_sets_match_tempests_schemas(api: Api) -> None:
    path = "/v2.1/os-quota-class-sets/default"
    shown = await api.request("GET", path, token=ADMIN)
    check(quota_body("quota_class_set", with_id=True), shown.json())
    updated = await api.request("PUT", path, token=ADMIN,
                                json={"quota_class_set": {"security_groups": 5}})
    assert updated.status_code == 200, updated.text
    check(quota_body("quota_class_set", with_id=False), updated.json())
    assert updated.json()["quota_class_set"]["security_groups"] == 5


@pytest.mark.parametrize("token", [None, ALICE])
async def test_every_listed_version_document_can_be_followed(api: Api,
                                                             token: str | None) -> None:
    """Tempest's test_get_version_details: each version's ``self`` link answers its
    one-version document, whose ``self`` link is the same."""
    listed = await api.request("GET", "/", token=None)
    check(LIST_VERSIONS, listed.json())
    assert [v["id"] for v in listed.json()["versions"]] == ["v2.0", "v2.1"]
    for version in listed.json()["versions"]:
        [link] = [x for x in version["links"] if x["rel"] == "self"]
        path = link["href"].removeprefix("http://strato.test")
        for variant in (path, path.rstrip("/")):
            response = await api.request("GET", variant, token=token)
            assert response.status_code == 200, (variant, response.text)
            check(GET_ONE_VERSION, response.json())
            doc = response.json()["version"]
            assert doc["id"] == version["id"]
            assert [x for x in doc["links"] if x["rel"] == "self"] == [link]


async def test_rebuild_answers_tempests_rebuild_schema(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        server_id = await h.client.create_server("vm", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        await h.client.wait_for_status(server_id, {"ACTIVE"})
        response = await h.client.request(
            "POST", f"/v2.1/servers/{server_id}/action",
            json={"rebuild": {"imageRef": h.image_id, "name": "again"}})
        assert response.status_code == 202
        check(REBUILD_WITH_ADMIN_PASS, response.json())
        server = response.json()["server"]
        assert (server["id"], server["name"], server["status"]) == (server_id, "again",
                                                                    "REBUILD")
        assert server["image"]["id"] == h.image_id and len(server["adminPass"]) == 12


async def test_console_output_tails_as_nova_does(tmp_path: Path) -> None:
    """Tempest's test_get_console_output: ``length=3`` splits into 3 pieces."""
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        server_id = await h.client.create_server("vm", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE"})
        driver = h.driver(server.host or "")
        for _ in range(4):
            await driver.reboot(InstanceId(server_id))
        # A serial console's line ends, and a control character Nova removes.
        await driver.reboot(InstanceId(server_id))
        guest_console = driver._guests[InstanceId(server_id)].console
        guest_console.append("login:\r\x1b[0m")

        async def output(length: object) -> str:
            args = {} if length is None else {"length": length}
            response = await h.client.request(
                "POST", f"/v2.1/servers/{server_id}/action",
                json={"os-getConsoleOutput": args})
            text: str = response.json()["output"]
            return text

        tail = await output(3)
        assert len(tail.split("\n")) == 3
        assert tail == "fake-guest: soft reboot\nlogin:[0m\n"
        everything = await output(None)
        assert everything == await output(-1) == await output("-1")
        assert len(everything.split("\n")) == len(guest_console) + 1
        assert "\r" not in everything and "\x1b" not in everything
        assert await output(0) == ""


async def test_an_instance_action_matches_tempests_schema_at_2_1(api: Api) -> None:
    response = await api.create_server()
    server_id = InstanceId(response.json()["server"]["id"])
    request_id = RequestId(response.headers["x-openstack-request-id"])
    await api.db.actions.start_event(instance_id=server_id, request_id=request_id,
                                     event="conductor_schedule_and_build_instances")
    await api.db.actions.finish_event(
        instance_id=server_id, request_id=request_id,
        event="conductor_schedule_and_build_instances", result=EventResult.SUCCESS,
        host=HostName("h1"), details="placed on a host; 1 alternate host kept",
        alternates=[HostName("h2")])
    await api.db.actions.start_event(instance_id=server_id, request_id=request_id,
                                     event="compute__do_build_and_run_instance")
    path = f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}"
    for token in (ALICE, ADMIN):
        shown = await api.request("GET", path, token=token)
        assert shown.status_code == 200
        check(SHOW_INSTANCE_ACTION, shown.json())
        assert [e["event"] for e in shown.json()["instanceAction"]["events"]] == [
            "conductor_schedule_and_build_instances", "compute__do_build_and_run_instance"]
    # The data is kept: strato's own clients ask for the fields 2.1 has not.
    extras = {"X-Strato-Action-Extras": "true"}
    first = (await api.request("GET", path, token=ADMIN, headers=extras)).json()[
        "instanceAction"]["events"][0]
    assert (first["details"], first["host"], first["alternates"]) == (
        "placed on a host; 1 alternate host kept", "h1", ["h2"])
