"""Quotas through the Compute API: ``os-quota-sets``, ``os-quota-class-sets``,
``/limits``, and their enforcement when servers are created."""

from __future__ import annotations

import asyncio
import base64
import re
from typing import Any

import httpx
import pytest

from strato.api.quotas.schemas import SETTABLE
from strato.domain.quotas import DEFAULT_LIMITS, RESOURCES
from strato.rpc.contracts.conductor import BuildInstances
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    MAX_METADATA,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

QUOTAS = "/v2.1/os-quota-sets"
# The fixture's settings make 8 the default metadata_items quota.
DEFAULTS = {**DEFAULT_LIMITS, "metadata_items": MAX_METADATA}
REQUEST_ID = re.compile(r"^req-[0-9a-f-]{36}$")


def assert_fault(response: httpx.Response, status: int, name: str, message: str = "") -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == [name], body
    assert body[name]["code"] == status
    assert message in body[name]["message"], body[name]["message"]


async def set_quotas(api: Api, project: str = "project-a", **limits: Any) -> dict[str, Any]:
    response = await api.request("PUT", f"{QUOTAS}/{project}", token=ADMIN,
                                 json={"quota_set": limits})
    assert response.status_code == 200, response.text
    quota_set: dict[str, Any] = response.json()["quota_set"]
    return quota_set


async def create(api: Api, token: str = ALICE, **fields: Any) -> httpx.Response:
    return await api.create_server(token, **fields)


async def live_count(api: Api, project: str = "project-a") -> int:
    return sum(1 for i in await api.instances() if i.project_id == project)


# --- os-quota-sets -----------------------------------------------------------------------

def test_the_update_schema_knows_every_resource() -> None:
    assert set(SETTABLE) == set(RESOURCES)


async def test_a_member_reads_its_projects_quotas(api: Api) -> None:
    response = await api.request("GET", f"{QUOTAS}/project-a")
    assert response.status_code == 200
    body = response.json()["quota_set"]
    assert body == {"id": "project-a", **DEFAULTS}
    assert list(body) == ["id", *RESOURCES]


async def test_a_member_may_not_read_another_projects_quotas(api: Api) -> None:
    for path in (f"{QUOTAS}/project-b", f"{QUOTAS}/project-b/detail"):
        response = await api.request("GET", path)
        assert_fault(response, 403, "forbidden", "Policy doesn't allow "
                     "os_compute_api:os-quota-sets:")
    response = await api.request("GET", f"{QUOTAS}/project-b", token=ADMIN)
    assert response.json()["quota_set"] == {"id": "project-b", **DEFAULTS}


async def test_anyone_reads_the_defaults(api: Api) -> None:
    await set_quotas(api, "project-b", instances=1)
    response = await api.request("GET", f"{QUOTAS}/project-b/defaults")
    assert response.status_code == 200
    assert response.json() == {"quota_set": {"id": "project-b", **DEFAULTS}}


async def test_admin_updates_quotas_and_the_answer_has_no_id(api: Api) -> None:
    response = await api.request("PUT", f"{QUOTAS}/project-a", token=ADMIN,
                                 json={"quota_set": {"instances": 3, "cores": "-1",
                                                     "ram": "4096", "force": True}})
    assert response.status_code == 200, response.text
    expected = {**DEFAULTS, "instances": 3, "cores": -1, "ram": 4096}
    assert response.json() == {"quota_set": expected}

    shown = await api.request("GET", f"{QUOTAS}/project-a")
    assert shown.json()["quota_set"] == {"id": "project-a", **expected}
    other = await api.request("GET", f"{QUOTAS}/project-b", token=BOB)
    assert other.json()["quota_set"] == {"id": "project-b", **DEFAULTS}


async def test_a_member_may_not_update_or_delete_quotas(api: Api) -> None:
    response = await api.request("PUT", f"{QUOTAS}/project-a",
                                 json={"quota_set": {"instances": 100}})
    assert_fault(response, 403, "forbidden", "os_compute_api:os-quota-sets:update")
    response = await api.request("DELETE", f"{QUOTAS}/project-a")
    assert_fault(response, 403, "forbidden", "os_compute_api:os-quota-sets:delete")
    shown = await api.request("GET", f"{QUOTAS}/project-a")
    assert shown.json()["quota_set"]["instances"] == DEFAULTS["instances"]


@pytest.mark.parametrize(("body", "fragment"), [
    ({"quota_set": {"bogus": 1}}, "'bogus' was unexpected"),
    ({"quota_set": {"networks": 1}}, "'networks' was unexpected"),
    ({"quota_set": {"instances": -2}}, "instances"),
    ({"quota_set": {"instances": 2**31}}, "instances"),
    ({"quota_set": {"instances": "ten"}}, "instances"),
    ({"quota_set": {"instances": 1.5}}, "instances"),
    ({"quota_set": {"instances": True}}, "instances"),
    ({"quota_set": {"instances": None}}, "instances"),
    ({"quota_set": {"force": "perhaps"}}, "force"),
    ({"quota_set": []}, "quota_set"),
    ({}, "'quota_set' is a required property"),
    ({"quota_set": {}, "extra": 1}, "'extra' was unexpected"),
])
async def test_a_bad_update_is_a_400_and_changes_nothing(api: Api, body: Any,
                                                         fragment: str) -> None:
    response = await api.request("PUT", f"{QUOTAS}/project-a", token=ADMIN, json=body)
    assert_fault(response, 400, "badRequest", fragment)
    shown = await api.request("GET", f"{QUOTAS}/project-a")
    assert shown.json()["quota_set"] == {"id": "project-a", **DEFAULTS}


async def test_a_limit_below_usage_needs_force(api: Api) -> None:
    assert (await create(api, max_count=3)).status_code == 202
    response = await api.request("PUT", f"{QUOTAS}/project-a", token=ADMIN,
                                 json={"quota_set": {"instances": 2}})
    assert_fault(response, 400, "badRequest", "Quota limit 2 for instances must be greater "
                 "than or equal to already used and reserved 3.")
    forced = await set_quotas(api, instances=2, force="true")
    assert forced["instances"] == 2
    response = await create(api)
    assert_fault(response, 403, "forbidden", "Quota exceeded for instances: Requested 1, but "
                 "already used 3 of 2 instances")


async def test_delete_restores_the_defaults(api: Api) -> None:
    await set_quotas(api, instances=1, key_pairs=2)
    response = await api.request("DELETE", f"{QUOTAS}/project-a", token=ADMIN)
    assert response.status_code == 202
    assert response.content == b""
    shown = await api.request("GET", f"{QUOTAS}/project-a")
    assert shown.json()["quota_set"] == {"id": "project-a", **DEFAULTS}
    # Deleting what is not set is fine too.
    again = await api.request("DELETE", f"{QUOTAS}/project-a", token=ADMIN)
    assert again.status_code == 202


async def test_detail_counts_what_the_project_uses(api: Api) -> None:
    await set_quotas(api, instances=5)
    assert (await create(api, max_count=2)).status_code == 202
    assert (await create(api, token=BOB)).status_code == 202

    response = await api.request("GET", f"{QUOTAS}/project-a/detail")
    assert response.status_code == 200
    body = response.json()["quota_set"]
    assert list(body) == ["id", *RESOURCES]
    assert body["id"] == "project-a"
    assert body["instances"] == {"limit": 5, "in_use": 2, "reserved": 0}
    assert body["cores"] == {"limit": 20, "in_use": 2, "reserved": 0}
    assert body["ram"] == {"limit": 51200, "in_use": 1024, "reserved": 0}
    assert body["key_pairs"] == {"limit": 100, "in_use": 0, "reserved": 0}


# --- os-quota-class-sets ------------------------------------------------------------------

async def test_the_default_class_sets_every_projects_defaults(api: Api) -> None:
    classes = "/v2.1/os-quota-class-sets/default"
    shown = await api.request("GET", classes, token=ADMIN)
    assert shown.json() == {"quota_class_set": {"id": "default", **DEFAULTS}}
    assert_fault(await api.request("GET", classes), 403, "forbidden",
                 "os_compute_api:os-quota-class-sets:show")
    assert_fault(await api.request("PUT", classes, json={"quota_class_set": {"cores": 1}}),
                 403, "forbidden", "os_compute_api:os-quota-class-sets:update")
    bad = await api.request("PUT", classes, token=ADMIN,
                            json={"quota_class_set": {"cores": 1, "force": True}})
    assert_fault(bad, 400, "badRequest", "'force' was unexpected")

    await set_quotas(api, instances=7)
    response = await api.request("PUT", classes, token=ADMIN,
                                 json={"quota_class_set": {"instances": 2, "ram": 1024}})
    assert response.status_code == 200, response.text
    assert response.json() == {"quota_class_set": {**DEFAULTS, "instances": 2, "ram": 1024}}

    defaults = await api.request("GET", f"{QUOTAS}/project-b/defaults", token=BOB)
    assert defaults.json()["quota_set"] == {"id": "project-b", **DEFAULTS, "instances": 2,
                                            "ram": 1024}
    b = await api.request("GET", f"{QUOTAS}/project-b", token=BOB)
    assert (b.json()["quota_set"]["instances"], b.json()["quota_set"]["ram"]) == (2, 1024)
    a = await api.request("GET", f"{QUOTAS}/project-a")  # its own value wins
    assert (a.json()["quota_set"]["instances"], a.json()["quota_set"]["ram"]) == (7, 1024)


# --- /limits -------------------------------------------------------------------------------

async def test_limits_show_the_callers_limits_and_usage(api: Api) -> None:
    await set_quotas(api, instances=4, metadata_items=-1)
    assert (await create(api, max_count=3)).status_code == 202

    response = await api.request("GET", "/v2.1/limits")
    assert response.status_code == 200
    limits = response.json()["limits"]
    assert limits["rate"] == []
    assert limits["absolute"] == {
        "maxTotalInstances": 4, "maxTotalCores": 20, "maxTotalRAMSize": 51200,
        "maxServerMeta": -1, "maxImageMeta": -1, "maxPersonality": 5,
        "maxPersonalitySize": 10240, "maxTotalKeypairs": 100, "maxServerGroups": 10,
        "maxServerGroupMembers": 10, "totalInstancesUsed": 3, "totalCoresUsed": 3,
        "totalRAMUsed": 1536, "totalServerGroupsUsed": 0,
        # nova-network's, still in Nova's 2.1 answer: limits shown, usage always 0.
        "maxTotalFloatingIps": 10, "maxSecurityGroups": 10, "maxSecurityGroupRules": 20,
        "totalFloatingIpsUsed": 0, "totalSecurityGroupsUsed": 0}
    created = await api.request("POST", "/v2.1/os-server-groups", json={
        "server_group": {"name": "g", "policies": ["anti-affinity"]}})
    assert created.status_code == 200, created.text
    absolute = (await api.request("GET", "/v2.1/limits")).json()["limits"]["absolute"]
    assert absolute["totalServerGroupsUsed"] == 1

    bob = (await api.request("GET", "/v2.1/limits", token=BOB)).json()["limits"]["absolute"]
    assert (bob["maxTotalInstances"], bob["totalInstancesUsed"]) == (10, 0)


async def test_limits_of_another_project_are_for_admins(api: Api) -> None:
    assert (await create(api)).status_code == 202
    response = await api.request("GET", "/v2.1/limits?tenant_id=project-a", token=BOB)
    assert_fault(response, 403, "forbidden", "os_compute_api:limits:other_project")
    own = await api.request("GET", "/v2.1/limits?tenant_id=project-b", token=BOB)
    assert own.status_code == 200
    admin = await api.request("GET", "/v2.1/limits?tenant_id=project-a", token=ADMIN)
    assert admin.json()["limits"]["absolute"]["totalInstancesUsed"] == 1


# --- enforcement on create -----------------------------------------------------------------

async def test_exceeding_instances_is_a_403_with_retry_after_and_writes_nothing(
        api: Api) -> None:
    assert (await create(api, max_count=9)).status_code == 202
    rows, sent = len(await api.instances(include_deleted=True)), len(api.bus.sent)

    response = await create(api, min_count=3, max_count=3)

    assert_fault(response, 403, "forbidden")
    assert response.json()["forbidden"]["message"] == (
        "Quota exceeded for instances: Requested 3, but already used 9 of 10 instances")
    assert response.headers["retry-after"] == "0"
    assert REQUEST_ID.match(response.headers["x-openstack-request-id"])
    assert len(await api.instances(include_deleted=True)) == rows
    assert len(api.bus.sent) == sent


async def test_cores_and_ram_are_enforced_with_novas_message(api: Api) -> None:
    await set_quotas(api, cores=3, ram=1024)
    response = await create(api, min_count=4, max_count=4)
    assert_fault(response, 403, "forbidden")
    assert response.json()["forbidden"]["message"] == (
        "Quota exceeded for cores, ram: Requested 4, 2048, but already used 0, 0 of "
        "3, 1024 cores, ram")
    assert response.headers["retry-after"] == "0"

    await set_quotas(api, cores=-1)
    response = await create(api, min_count=3, max_count=3)
    assert response.json()["forbidden"]["message"] == (
        "Quota exceeded for ram: Requested 1536, but already used 0 of 1024 ram")
    assert await api.instances() == [] and api.bus.sent == []

    assert (await create(api, max_count=2)).status_code == 202  # exactly 1024 MB
    response = await create(api)
    assert response.json()["forbidden"]["message"] == (
        "Quota exceeded for ram: Requested 512, but already used 1024 of 1024 ram")


async def test_multi_create_makes_as_many_as_fit_down_to_min_count(api: Api) -> None:
    await set_quotas(api, instances=4)
    assert (await create(api)).status_code == 202

    response = await create(api, name="batch", min_count=2, max_count=10,
                            return_reservation_id=True)
    assert response.status_code == 202, response.text
    reservation = response.json()["reservation_id"]
    made = [i for i in await api.instances() if i.reservation_id == reservation]
    assert sorted(i.display_name for i in made) == ["batch-1", "batch-2", "batch-3"]
    [build] = [s.message for s in api.bus.casts][1:]
    assert isinstance(build, BuildInstances) and len(build.requests) == 3

    response = await create(api, min_count=2, max_count=5)
    assert_fault(response, 403, "forbidden", "Quota exceeded for instances: Requested 2-5, "
                 "but already used 4 of 4 instances")
    assert await live_count(api) == 4


async def test_a_batch_cut_to_one_server_is_named_as_one(api: Api) -> None:
    await set_quotas(api, instances=1)
    response = await create(api, name="solo", max_count=3)  # min_count defaults to 1
    assert response.status_code == 202, response.text
    [row] = await api.instances()
    assert row.display_name == "solo"


async def test_deleting_servers_frees_quota(api: Api) -> None:
    await set_quotas(api, instances=2)
    ids = [(await create(api)).json()["server"]["id"] for _ in range(2)]
    assert (await create(api)).status_code == 403

    deleted = await api.request("DELETE", f"/v2.1/servers/{ids[0]}")
    assert deleted.status_code == 204
    assert (await create(api)).status_code == 202
    assert await live_count(api) == 2


async def test_one_projects_quota_does_not_limit_another(api: Api) -> None:
    await set_quotas(api, instances=0)
    assert (await create(api)).status_code == 403
    assert (await create(api, token=BOB)).status_code == 202
    await set_quotas(api, instances=-1)
    assert (await create(api, max_count=15)).status_code == 202  # past the default 10


async def test_parallel_creates_never_exceed_the_quota(api: Api) -> None:
    await set_quotas(api, instances=3)
    responses = await asyncio.gather(*(create(api) for _ in range(10)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [202] * 3 + [403] * 7
    assert await live_count(api) == 3
    assert len(api.bus.casts) == 3


# --- metadata and injected files use the project's quotas ----------------------------------

async def test_metadata_items_follow_the_projects_quota(api: Api) -> None:
    many = {f"k{i}": "v" for i in range(MAX_METADATA + 4)}
    assert_fault(await create(api, metadata=many), 403, "forbidden",
                 f"Quota exceeded for metadata_items: at most {MAX_METADATA} items")
    await set_quotas(api, metadata_items=-1)
    assert (await create(api, metadata=many)).status_code == 202
    await set_quotas(api, metadata_items=1)
    assert_fault(await create(api, metadata={"a": "1", "b": "2"}), 403, "forbidden",
                 "at most 1 items")


def _file(path: str, size: int) -> dict[str, str]:
    return {"path": path, "contents": base64.b64encode(b"x" * size).decode()}


async def test_injected_files_follow_the_projects_quotas(api: Api) -> None:
    await set_quotas(api, injected_files=1, injected_file_content_bytes=20000,
                     injected_file_path_bytes=10)
    assert_fault(await create(api, personality=[_file("/a", 1), _file("/b", 1)]), 403,
                 "forbidden", "Quota exceeded for injected_files: at most 1 personality")
    assert_fault(await create(api, personality=[_file("/0123456789", 1)]), 403,
                 "forbidden", "Personality file path exceeds maximum 10 bytes")
    assert_fault(await create(api, personality=[_file("/a", 20001)]), 403, "forbidden",
                 "Personality file content exceeds maximum 20000 bytes")
    # Past Nova's default 10240 bytes, within this project's quota.
    assert (await create(api, personality=[_file("/a", 15000)])).status_code == 202
    assert await live_count(api) == 1
