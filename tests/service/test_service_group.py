"""The service group: an operator disables a compute (``PUT /os-services/disable...``)
and a compute that stops reporting goes down; either way the scheduler stops choosing
it, and ``os-services`` and ``os-hypervisors`` say so (and why)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strato.domain.ids import HostName
from strato.rpc.contracts.conductor import ReportNodes
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until
from tests.fakes.lossy_bus import lossy_cloud

# Heartbeats every 0.2 s; a compute silent for 2.5 s is down.
QUICK = {"compute": {"report_interval": 0.2, "max_concurrent_builds": 10},
         "scheduler": {"service_down_time": 2.5}}


async def _put(h: Harness, action: str, **body: Any) -> Any:
    resp = await h.client.request("PUT", f"/v2.1/os-services/{action}", json=body)
    return resp.json()


async def _services(h: Harness) -> dict[str, dict[str, Any]]:
    services = (await h.client.request("GET", "/v2.1/os-services")).json()["services"]
    return {s["host"]: s for s in services if s["binary"] == "strato-compute"}


async def _hypervisors(h: Harness) -> dict[str, dict[str, Any]]:
    detail = (await h.client.request("GET", "/v2.1/os-hypervisors/detail")).json()
    return {hv["hypervisor_hostname"]: hv for hv in detail["hypervisors"]}


async def _boot(h: Harness, name: str) -> Any:
    server_id = await h.client.create_server(name, image=h.image_id,
                                             flavor=h.flavors["m1.tiny"])
    return await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})


async def test_disabled_compute_is_not_chosen_until_enabled(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        answer = await _put(h, "disable-log-reason", host="h1", binary="nova-compute",
                            disabled_reason="RAM test")
        assert answer == {"service": {"host": "h1", "binary": "nova-compute",
                                      "status": "disabled", "disabled_reason": "RAM test"}}
        services = await _services(h)
        assert (services["h1"]["status"], services["h1"]["disabled_reason"]) == (
            "disabled", "RAM test")
        assert (services["h2"]["status"], services["h2"]["disabled_reason"]) == (
            "enabled", None)
        hypervisors = await _hypervisors(h)
        assert hypervisors["h1"]["status"] == "disabled"
        assert hypervisors["h1"]["service"]["disabled_reason"] == "RAM test"
        assert hypervisors["h2"]["status"] == "enabled"

        # h1 and h2 are alike, so without the flag the emptier (tie: h1) would win.
        for i in range(3):
            server = await _boot(h, f"elsewhere-{i}")
            assert (server.status, server.host) == ("ACTIVE", "h2")

        answer = await _put(h, "enable", host="h1", binary="strato-compute")
        assert answer == {"service": {"host": "h1", "binary": "strato-compute",
                                      "status": "enabled"}}
        services = await _services(h)
        assert (services["h1"]["status"], services["h1"]["disabled_reason"]) == (
            "enabled", None)
        server = await _boot(h, "back")
        assert (server.status, server.host) == ("ACTIVE", "h1")


async def test_only_compute_disabled_puts_the_build_in_error_naming_it(
        tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        await _put(h, "disable", host="h1", binary="nova-compute")
        assert (await _services(h))["h1"]["status"] == "disabled"
        server = await _boot(h, "nowhere")
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 1 host: 1 removed by ComputeFilter "
            "(compute service disabled (no reason given)).")
        assert "h1 (node h1): ComputeFilter: compute service disabled (no reason given)" \
            in server.fault["details"]
        await _put(h, "enable", host="h1", binary="nova-compute")
        assert (await _boot(h, "somewhere")).status == "ACTIVE"


async def test_compute_that_stops_reporting_goes_down_and_is_not_chosen(
        tmp_path: Path) -> None:
    async with lossy_cloud(tmp_path, fake_hosts(2), **QUICK) as (h, bus):
        assert {s["state"] for s in (await _services(h)).values()} == {"up"}
        # h2's reports (its heartbeat) are lost from now on, as if it had died.
        bus.drop_type(ReportNodes, where=lambda m: m.host == HostName("h2"))

        async def h2_down() -> bool:
            return bool((await _services(h))["h2"]["state"] == "down")

        await wait_until(h2_down, timeout=10)
        assert (await _services(h))["h1"]["state"] == "up"
        hypervisors = await _hypervisors(h)
        assert (hypervisors["h2"]["state"], hypervisors["h2"]["status"]) == ("down",
                                                                             "enabled")
        # h2 is the emptier host after this one, but down: every build goes to h1.
        for i in range(2):
            server = await _boot(h, f"up-only-{i}")
            assert (server.status, server.host) == ("ACTIVE", "h1")

        # With h1 disabled too, nothing is left, and the fault says why for both.
        await _put(h, "disable-log-reason", host="h1", binary="nova-compute",
                   disabled_reason="maintenance")
        server = await _boot(h, "stranded")
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "No valid host was found. 2 hosts: 2 removed by ComputeFilter (compute service "
            "disabled (maintenance); compute service down (no recent heartbeat)).")
        details = server.fault["details"].splitlines()
        assert details[1:] == [
            "h1 (node h1): ComputeFilter: compute service disabled (maintenance)",
            "h2 (node h2): ComputeFilter: compute service down (no recent heartbeat)"]

        # h2 reports again: it is up and chosen.
        bus.heal()

        async def h2_up() -> bool:
            return bool((await _services(h))["h2"]["state"] == "up")

        await wait_until(h2_up, timeout=10)
        server = await _boot(h, "revived")
        assert (server.status, server.host) == ("ACTIVE", "h2")


async def test_updating_services_is_for_admins(api: Api) -> None:
    await api.db.services.heartbeat(binary="strato-compute", host=HostName("h1"),
                                    topic="compute")
    for action in ("enable", "disable", "disable-log-reason"):
        resp = await api.request("PUT", f"/v2.1/os-services/{action}", token=ALICE,
                                 json={"host": "h1", "binary": "nova-compute",
                                       "disabled_reason": "mine"})
        assert resp.status_code == 403
        assert "os_compute_api:os-services:update" in resp.json()["forbidden"]["message"]
    [service] = await api.db.services.list()
    assert not service.disabled


@pytest.mark.parametrize(("action", "body", "status", "message"), [
    ("disable-log-reason", {"host": "h1", "binary": "nova-compute"}, 400,
     "Missing disabled reason field"),
    ("disable", {"host": "h1", "binary": "strato-conductor"}, 400,
     "Updating a strato-conductor service is not supported. Only nova-compute services "
     "can be updated."),
    ("disable", {"host": "h9", "binary": "nova-compute"}, 404,
     "Could not find binary nova-compute on host h9."),
    ("disable", {"host": "h1"}, 400, "'binary' is a required property"),
    ("disable", {"host": "h1", "binary": "nova-compute", "zone": "nova"}, 400,
     "Additional properties are not allowed ('zone' was unexpected)"),
    ("force-down", {"host": "h1", "binary": "nova-compute"}, 404, "Unknown action"),
])
async def test_bad_service_updates(api: Api, action: str, body: dict[str, Any],
                                   status: int, message: str) -> None:
    await api.db.services.heartbeat(binary="strato-compute", host=HostName("h1"),
                                    topic="compute")
    resp = await api.request("PUT", f"/v2.1/os-services/{action}", token=ADMIN, json=body)
    assert resp.status_code == status
    assert next(iter(resp.json().values()))["message"] == message
    [service] = await api.db.services.list()
    assert not service.disabled


async def test_disable_then_enable_clears_the_reason(api: Api) -> None:
    await api.db.services.heartbeat(binary="strato-compute", host=HostName("h1"),
                                    topic="compute")
    resp = await api.request("PUT", "/v2.1/os-services/disable-log-reason", token=ADMIN,
                             json={"host": "h1", "binary": "nova-compute",
                                   "disabled_reason": "broken fan"})
    assert resp.status_code == 200
    [service] = await api.db.services.list()
    assert (service.disabled, service.disabled_reason) == (True, "broken fan")
    # A heartbeat (the compute restarting) keeps what the operator set.
    await api.db.services.heartbeat(binary="strato-compute", host=HostName("h1"),
                                    topic="compute")
    [service] = await api.db.services.list()
    assert (service.disabled, service.disabled_reason) == (True, "broken fan")
    resp = await api.request("PUT", "/v2.1/os-services/enable", token=ADMIN,
                             json={"host": "h1", "binary": "nova-compute"})
    assert resp.json() == {"service": {"host": "h1", "binary": "nova-compute",
                                       "status": "enabled"}}
    [service] = await api.db.services.list()
    assert (service.disabled, service.disabled_reason) == (False, None)
