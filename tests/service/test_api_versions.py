"""Version discovery, microversion negotiation, and the admin host views."""

from __future__ import annotations

import pytest

from strato.domain.ids import HostName, NodeName
from strato.domain.resources import NodeCapacity, Resources
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)


async def test_root_lists_versions_without_a_token(api: Api) -> None:
    response = await api.request("GET", "/", token=None)
    assert response.status_code == 200
    versions = {v["id"]: v for v in response.json()["versions"]}
    assert versions["v2.1"]["status"] == "CURRENT"
    assert (versions["v2.1"]["min_version"], versions["v2.1"]["version"]) == ("2.1", "2.1")
    assert versions["v2.1"]["links"] == [{"rel": "self", "href": "http://strato.test/v2.1/"}]
    assert versions["v2.0"]["status"] == "SUPPORTED"


@pytest.mark.parametrize("path", ["/v2.1", "/v2.1/"])
async def test_version_document(api: Api, path: str) -> None:
    response = await api.request("GET", path, token=None)
    assert response.status_code == 200
    version = response.json()["version"]
    assert (version["id"], version["status"], version["version"]) == ("v2.1", "CURRENT", "2.1")
    assert version["media-types"][0]["base"] == "application/json"
    assert response.headers["openstack-api-version"] == "compute 2.1"
    assert response.headers["x-openstack-nova-api-version"] == "2.1"


@pytest.mark.parametrize("header", [{"OpenStack-API-Version": "compute 2.1"},
                                    {"OpenStack-API-Version": "compute latest"},
                                    {"OpenStack-API-Version": "image 2.9, compute 2.1"},
                                    {"X-OpenStack-Nova-API-Version": "2.1"}, {}])
async def test_supported_microversions(api: Api, header: dict[str, str]) -> None:
    response = await api.request("GET", "/v2.1/servers", headers=header)
    assert response.status_code == 200
    assert response.headers["openstack-api-version"] == "compute 2.1"


@pytest.mark.parametrize(("value", "status"), [("2.90", 406), ("3.0", 406), ("2", 400),
                                               ("two", 400)])
async def test_unsupported_microversions(api: Api, value: str, status: int) -> None:
    response = await api.request("GET", "/v2.1/servers",
                                 headers={"OpenStack-API-Version": f"compute {value}"})
    assert response.status_code == status
    assert response.headers["x-openstack-request-id"].startswith("req-")


async def test_services_and_hypervisors_are_for_admins(api: Api) -> None:
    for path in ("/v2.1/os-services", "/v2.1/os-hypervisors", "/v2.1/os-hypervisors/detail"):
        assert (await api.request("GET", path, token=ALICE)).status_code == 403


async def test_services_and_hypervisors(api: Api) -> None:
    await api.db.services.heartbeat(binary="strato-compute", host=HostName("h1"),
                                    topic="compute")
    await api.db.services.heartbeat(binary="strato-conductor", host=HostName("ctl"),
                                    topic="conductor")
    await api.db.nodes.report([NodeCapacity(
        host=HostName("h1"), node=NodeName("h1"),
        total=Resources(vcpus=8, memory_mb=16384, disk_gb=100))])
    services = (await api.request("GET", "/v2.1/os-services", token=ADMIN)).json()["services"]
    by_binary = {s["binary"]: s for s in services}
    compute = by_binary["strato-compute"]
    assert (compute["host"], compute["zone"], compute["status"], compute["state"]) == (
        "h1", "nova", "enabled", "up")
    assert compute["updated_at"] and compute["disabled_reason"] is None
    assert by_binary["strato-conductor"]["zone"] == "internal"

    brief = (await api.request("GET", "/v2.1/os-hypervisors", token=ADMIN)).json()
    assert brief == {"hypervisors": [{"id": 1, "hypervisor_hostname": "h1", "state": "up",
                                      "status": "enabled"}]}
    [detail] = (await api.request("GET", "/v2.1/os-hypervisors/detail",
                                  token=ADMIN)).json()["hypervisors"]
    assert (detail["vcpus"], detail["memory_mb"], detail["local_gb"]) == (8, 16384, 100)
    assert (detail["vcpus_used"], detail["memory_mb_used"], detail["running_vms"]) == (0, 0, 0)
    assert detail["hypervisor_type"] == "fake" and detail["host_ip"] == ""
    assert detail["service"]["id"] == compute["id"]
