"""``/v2.1/servers``: create, list, show, delete, and the instance actions they leave."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

from strato.domain.actions import EventResult
from strato.domain.errors import Unavailable
from strato.domain.ids import HostName, InstanceId, NodeName, RequestId
from strato.domain.instances import PowerState, TaskState, VmState
from strato.domain.resources import NodeCapacity, Resources
from strato.rpc.contracts.compute import TerminateInstance
from strato.rpc.contracts.conductor import BuildInstances
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    BOB,
    IMAGE_ID,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)


async def create_one(api: Api, token: str = ALICE, **fields: Any) -> str:
    response = await api.create_server(token, **fields)
    assert response.status_code == 202, response.text
    server_id: str = response.json()["server"]["id"]
    return server_id


async def place(api: Api, server_id: str, host: str = "h1") -> None:
    """Do what the scheduler and compute would: put the instance on a host, running."""
    await api.db.instances.update(
        InstanceId(server_id),
        {"host": HostName(host), "node": NodeName(f"{host}-n1"), "vm_state": VmState.ACTIVE,
         "task_state": None, "power_state": PowerState.RUNNING,
         "launched_at": datetime.now(UTC)},
        expected_task_state=(TaskState.SCHEDULING,))


# --- create ------------------------------------------------------------------------------

async def test_create_answers_202_and_casts_one_build(api: Api) -> None:
    user_data = base64.b64encode(b"#!/bin/sh\necho hi\n").decode()
    keypair = await api.request("POST", "/v2.1/os-keypairs", json={"keypair": {"name": "mykey"}})
    assert keypair.status_code == 200, keypair.text
    response = await api.create_server(metadata={"role": "web"}, user_data=user_data,
                                       key_name="mykey", config_drive=True)
    assert response.status_code == 202
    server = response.json()["server"]
    assert set(server) == {"id", "links", "OS-DCF:diskConfig", "adminPass", "security_groups"}
    assert len(server["adminPass"]) == 12
    assert response.headers["location"] == f"http://strato.test/v2.1/servers/{server['id']}"
    assert server["links"][0] == {"rel": "self", "href": response.headers["location"]}

    [row] = await api.instances()
    assert (row.id, row.vm_state, row.task_state, row.power_state) == (
        server["id"], VmState.BUILDING, TaskState.SCHEDULING, PowerState.NOSTATE)
    assert (row.project_id, row.user_id, row.display_name) == ("project-a", "alice", "web")
    assert row.flavor.id == "1" and row.flavor.memory_mb == 512  # a snapshot of the flavor
    assert (row.user_data, row.key_name, row.config_drive) == (user_data, "mykey", True)
    assert row.reservation_id.startswith("r-") and len(row.reservation_id) == 10

    [cast] = api.bus.casts
    assert cast.target.address == "conductor"
    assert isinstance(cast.message, BuildInstances)
    [boot] = cast.message.requests
    assert (boot.instance_id, boot.name, boot.image.id, boot.flavor.id) == (
        row.id, "web", IMAGE_ID, "1")
    assert boot.metadata == {"role": "web"} and boot.user_data == user_data
    assert cast.ctx.request_id == response.headers["x-openstack-request-id"]
    assert (cast.ctx.project_id, cast.ctx.user_id) == ("project-a", "alice")


async def test_create_records_a_create_action(api: Api) -> None:
    response = await api.create_server()
    server_id = response.json()["server"]["id"]
    actions = await api.request("GET", f"/v2.1/servers/{server_id}/os-instance-actions")
    assert actions.status_code == 200
    [action] = actions.json()["instanceActions"]
    assert action["action"] == "create"
    assert action["request_id"] == response.headers["x-openstack-request-id"]
    assert (action["instance_uuid"], action["user_id"], action["project_id"]) == (
        server_id, "alice", "project-a")
    one = await api.request(
        "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{action['request_id']}")
    assert one.json()["instanceAction"]["events"] == []
    missing = await api.request("GET",
                                f"/v2.1/servers/{server_id}/os-instance-actions/req-nope")
    assert missing.status_code == 404


async def test_action_events_hide_traceback_and_host_from_members(api: Api) -> None:
    response = await api.create_server()
    server_id = InstanceId(response.json()["server"]["id"])
    request_id = RequestId(response.headers["x-openstack-request-id"])
    await api.db.actions.start_event(instance_id=server_id, request_id=request_id,
                                     event="compute_build", host=HostName("h1"))
    await api.db.actions.finish_event(instance_id=server_id, request_id=request_id,
                                      event="compute_build", result=EventResult.ERROR,
                                      traceback="Traceback: boom")
    path = f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}"
    [member_event] = (await api.request("GET", path)).json()["instanceAction"]["events"]
    assert member_event["result"] == "Error" and member_event["finish_time"]
    # Nova 2.1: the traceback is null for a member; no event shows its host.
    assert member_event["traceback"] is None and "host" not in member_event
    [admin_event] = (await api.request("GET", path, token=ADMIN)).json()[
        "instanceAction"]["events"]
    assert admin_event["traceback"] == "Traceback: boom" and "host" not in admin_event
    # strato's extras (its own clients ask for them): the host, for admins only.
    extras = {"X-Strato-Action-Extras": "1"}
    [member_event] = (await api.request("GET", path, headers=extras)).json()[
        "instanceAction"]["events"]
    assert "host" not in member_event
    [admin_event] = (await api.request("GET", path, token=ADMIN, headers=extras)).json()[
        "instanceAction"]["events"]
    assert admin_event["host"] == "h1"


async def test_max_count_names_servers_with_an_index(api: Api) -> None:
    response = await api.create_server(name="node", min_count=2, max_count=3)
    assert response.status_code == 202
    rows = sorted(await api.instances(), key=lambda i: i.launch_index)
    assert [(r.display_name, r.launch_index) for r in rows] == [
        ("node-1", 0), ("node-2", 1), ("node-3", 2)]
    assert len({r.reservation_id for r in rows}) == 1
    assert response.json()["server"]["id"] == rows[0].id
    [cast] = api.bus.casts
    assert [b.name for b in cast.message.requests] == ["node-1", "node-2", "node-3"]  # type: ignore[attr-defined]


async def test_min_count_alone_creates_that_many(api: Api) -> None:
    assert (await api.create_server(min_count="2")).status_code == 202
    assert sorted(r.display_name for r in await api.instances()) == ["web-1", "web-2"]


async def test_return_reservation_id(api: Api) -> None:
    response = await api.create_server(return_reservation_id=True, max_count=2)
    assert response.status_code == 202
    reservation = response.json()["reservation_id"]
    assert {r.reservation_id for r in await api.instances()} == {reservation}
    listed = await api.request("GET", f"/v2.1/servers?reservation_id={reservation}")
    assert len(listed.json()["servers"]) == 2


async def test_flavor_and_image_by_url_and_accepted_extras(api: Api) -> None:
    disk_config: dict[str, Any] = {"OS-DCF:diskConfig": "AUTO"}
    response = await api.create_server(
        flavorRef="http://strato.test/v2.1/flavors/1",
        imageRef=f"http://strato.test/image/v2/images/{IMAGE_ID}", networks="none",
        security_groups=[{"name": "default"}], adminPass="s3cret",
        **disk_config)
    assert response.status_code == 202, response.text
    assert response.json()["server"]["adminPass"] == "s3cret"
    scheduler_hints = {"server": {"name": "x", "imageRef": IMAGE_ID, "flavorRef": 1},
                       "os:scheduler_hints": {"target_cell": "cell1"}}
    assert (await api.request("POST", "/v2.1/servers",
                              json=scheduler_hints)).status_code == 202


async def test_admin_may_force_a_host_or_node_that_exists(api: Api) -> None:
    await api.db.nodes.report([NodeCapacity(host=HostName("h7"), node=NodeName("n7"),
                                            total=Resources(vcpus=4, memory_mb=4096,
                                                            disk_gb=40))])
    assert (await api.create_server(ADMIN, availability_zone="nova:h7")).status_code == 202
    assert (await api.create_server(ADMIN, availability_zone="nova:h7:n7")).status_code == 202
    assert (await api.create_server(ADMIN, availability_zone="::n7")).status_code == 202
    hints = [c.message.requests[0].hints  # type: ignore[attr-defined]
             for c in api.bus.casts]
    assert [(h.availability_zone, h.force_host, h.force_node) for h in hints] == [
        ("nova", "h7", None), ("nova", "h7", "n7"), (None, None, "n7")]
    before = len(await api.instances())
    for where, message in (("nova:h8", "Compute host h8 could not be found."),
                           ("nova:h7:n8", "Compute host node h7/n8 could not be found."),
                           ("mars", "The requested availability zone is not available"),
                           ("mars:h7", "The requested availability zone is not available")):
        response = await api.create_server(ADMIN, availability_zone=where)
        assert response.status_code == 400, where
        assert response.json()["badRequest"]["message"] == message
    assert len(await api.instances()) == before  # nothing half-created


async def test_conductor_unreachable_puts_servers_in_error(api: Api) -> None:
    api.bus.fail_with = Unavailable("no conductor")
    response = await api.create_server(max_count=2)
    assert response.status_code == 202
    rows = await api.instances()
    assert {(r.vm_state, r.task_state) for r in rows} == {(VmState.ERROR, None)}
    shown = (await api.request("GET", f"/v2.1/servers/{rows[0].id}")).json()["server"]
    assert shown["status"] == "ERROR"
    assert "conductor" in shown["fault"]["message"]
    assert shown["fault"]["code"] == 500 and "details" not in shown["fault"]
    as_admin = (await api.request("GET", f"/v2.1/servers/{rows[0].id}",
                                  token=ADMIN)).json()["server"]
    assert as_admin["fault"]["details"] == "no conductor"


# --- show and list -----------------------------------------------------------------------

async def test_show_has_novas_detail_view(api: Api) -> None:
    server_id = await create_one(api, metadata={"a": "b"})
    server = (await api.request("GET", f"/v2.1/servers/{server_id}")).json()["server"]
    assert server["status"] == "BUILD"
    assert (server["tenant_id"], server["user_id"], server["name"]) == (
        "project-a", "alice", "web")
    assert server["metadata"] == {"a": "b"}
    assert server["image"]["id"] == IMAGE_ID
    assert server["flavor"] == {"id": "1", "links": [
        {"rel": "bookmark", "href": "http://strato.test/flavors/1"}]}
    assert server["hostId"] == "" and server["addresses"] == {}
    assert server["OS-EXT-STS:vm_state"] == "building"
    assert server["OS-EXT-STS:task_state"] == "scheduling"
    assert server["OS-EXT-STS:power_state"] == 0
    assert server["OS-SRV-USG:launched_at"] is None
    assert server["created"].endswith("Z") and server["progress"] == 0
    assert server["config_drive"] == "" and server["accessIPv4"] == ""
    assert server["os-extended-volumes:volumes_attached"] == []
    assert not any(k.startswith("OS-EXT-SRV-ATTR") for k in server)
    assert "fault" not in server


async def test_admin_sees_host_attributes(api: Api) -> None:
    server_id = await create_one(api)
    await place(api, server_id, "h1")
    server = (await api.request("GET", f"/v2.1/servers/{server_id}",
                                token=ADMIN)).json()["server"]
    assert server["status"] == "ACTIVE"
    assert server["OS-EXT-SRV-ATTR:host"] == "h1"
    assert server["OS-EXT-SRV-ATTR:hypervisor_hostname"] == "h1-n1"
    assert server["OS-EXT-SRV-ATTR:instance_name"] == f"instance-{server_id[:8]}"
    assert server["hostId"] == hashlib.sha224(b"project-ah1").hexdigest()
    assert server["OS-EXT-AZ:availability_zone"] == "nova"
    assert server["OS-SRV-USG:launched_at"] is not None


async def test_list_and_detail(api: Api) -> None:
    first = await create_one(api, name="alpha")
    second = await create_one(api, name="beta")
    listed = (await api.request("GET", "/v2.1/servers")).json()
    assert [s["name"] for s in listed["servers"]] == ["beta", "alpha"]  # newest first
    assert set(listed["servers"][0]) == {"id", "name", "links"}
    assert "servers_links" not in listed
    detail = (await api.request("GET", "/v2.1/servers/detail")).json()["servers"]
    assert [s["id"] for s in detail] == [second, first]
    assert all(s["status"] == "BUILD" for s in detail)


async def test_list_filters(api: Api) -> None:
    built = await create_one(api, name="web-a")
    await create_one(api, name="db-a")
    await place(api, built)

    async def names(query: str) -> list[str]:
        response = await api.request("GET", f"/v2.1/servers/detail?{query}")
        assert response.status_code == 200, response.text
        return sorted(s["name"] for s in response.json()["servers"])

    assert await names("status=ACTIVE") == ["web-a"]
    assert await names("status=BUILD") == ["db-a"]
    assert await names("status=ACTIVE&status=BUILD") == ["db-a", "web-a"]
    assert await names("status=NO-SUCH-STATUS") == []
    assert await names("name=^web") == ["web-a"]
    assert await names("name=a$") == ["db-a", "web-a"]
    future = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    past = (datetime.now(UTC) - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert await names(f"changes-since={past}") == ["db-a", "web-a"]
    assert await names(f"changes-since={future.replace('+', '%2B')}") == []
    assert await names("unknown-filter=ignored") == ["db-a", "web-a"]


async def test_deleted_servers_are_listed_for_admins_only(api: Api) -> None:
    server_id = await create_one(api)
    await api.request("DELETE", f"/v2.1/servers/{server_id}")
    refused = await api.request("GET", "/v2.1/servers/detail?status=DELETED")
    assert refused.status_code == 403
    listed = await api.request("GET", "/v2.1/servers/detail?status=DELETED&all_tenants=1",
                               token=ADMIN)
    [server] = listed.json()["servers"]
    assert (server["id"], server["status"]) == (server_id, "DELETED")
    assert server["OS-SRV-USG:terminated_at"] is not None
    since = "2000-01-01T00:00:00Z"
    changed = await api.request("GET", f"/v2.1/servers?changes-since={since}")
    assert [s["id"] for s in changed.json()["servers"]] == [server_id]


async def test_paging_with_limit_and_marker(api: Api) -> None:
    assert (await api.create_server(max_count=5)).status_code == 202
    everything = [s["id"] for s in (await api.request("GET", "/v2.1/servers")).json()["servers"]]
    first = (await api.request("GET", "/v2.1/servers/detail?limit=2&status=BUILD")).json()
    assert [s["id"] for s in first["servers"]] == everything[:2]
    [link] = first["servers_links"]
    assert link["rel"] == "next"
    url = urlsplit(link["href"])
    assert url.path == "/v2.1/servers/detail"
    query = parse_qs(url.query)
    assert query == {"limit": ["2"], "marker": [everything[1]], "status": ["BUILD"]}
    second = (await api.request("GET", f"{url.path}?{url.query}")).json()
    assert [s["id"] for s in second["servers"]] == everything[2:4]
    last = (await api.request(
        "GET", f"/v2.1/servers?limit=2&marker={everything[3]}")).json()
    assert [s["id"] for s in last["servers"]] == everything[4:]
    assert "servers_links" not in last
    assert (await api.request("GET", "/v2.1/servers?limit=0")).json()["servers"] == []


async def test_all_tenants_is_for_admins(api: Api) -> None:
    await create_one(api, ALICE, name="a")
    await create_one(api, BOB, name="b")
    admin_own = (await api.request("GET", "/v2.1/servers", token=ADMIN)).json()["servers"]
    assert admin_own == []  # without all_tenants an admin sees its own project
    everyone = (await api.request("GET", "/v2.1/servers?all_tenants=1",
                                  token=ADMIN)).json()["servers"]
    assert sorted(s["name"] for s in everyone) == ["a", "b"]
    only_b = (await api.request("GET", "/v2.1/servers?all_tenants&project_id=project-b",
                                token=ADMIN)).json()["servers"]
    assert [s["name"] for s in only_b] == ["b"]
    refused = await api.request("GET", "/v2.1/servers?all_tenants=1", token=ALICE)
    assert refused.status_code == 403 and "forbidden" in refused.json()


# --- delete ------------------------------------------------------------------------------

async def test_delete_without_host_deletes_locally(api: Api) -> None:
    server_id = await create_one(api)
    response = await api.request("DELETE", f"/v2.1/servers/{server_id}")
    assert response.status_code == 204
    assert (await api.request("GET", f"/v2.1/servers/{server_id}")).status_code == 404
    assert (await api.request("GET", "/v2.1/servers")).json()["servers"] == []
    [row] = await api.instances(include_deleted=True)
    assert row.deleted and row.vm_state == VmState.DELETED
    assert [c.message for c in api.bus.casts if isinstance(c.message, TerminateInstance)] == []
    actions = await api.db.actions.list(InstanceId(server_id))
    assert [a.action for a in actions] == ["delete", "create"]
    assert actions[0].request_id == response.headers["x-openstack-request-id"]
    # The history of a deleted server stays readable.
    history = await api.request("GET", f"/v2.1/servers/{server_id}/os-instance-actions")
    assert [a["action"] for a in history.json()["instanceActions"]] == ["delete", "create"]
    again = await api.request("DELETE", f"/v2.1/servers/{server_id}")
    assert again.status_code == 404


async def test_delete_on_a_host_casts_terminate_to_that_host(api: Api) -> None:
    server_id = await create_one(api)
    await place(api, server_id, "h2")
    response = await api.request("DELETE", f"/v2.1/servers/{server_id}")
    assert response.status_code == 204
    terminate = api.bus.casts[-1]
    assert terminate.target.address == "compute.h2"
    assert terminate.message == TerminateInstance(instance_id=InstanceId(server_id))
    [row] = await api.instances()
    assert row.task_state == TaskState.DELETING and not row.deleted
    shown = (await api.request("GET", f"/v2.1/servers/{server_id}")).json()["server"]
    assert shown["OS-EXT-STS:task_state"] == "deleting"
    # A second delete while the first runs is accepted and does nothing more.
    assert (await api.request("DELETE", f"/v2.1/servers/{server_id}")).status_code == 204
    assert len([c for c in api.bus.casts if isinstance(c.message, TerminateInstance)]) == 1


async def test_failed_terminate_cast_gives_the_delete_back(api: Api) -> None:
    server_id = await create_one(api)
    await place(api, server_id, "h2")
    api.bus.fail_with = Unavailable("broker down")
    response = await api.request("DELETE", f"/v2.1/servers/{server_id}")
    assert response.status_code == 503 and "serviceUnavailable" in response.json()
    [row] = await api.instances()
    assert row.task_state is None  # so a retry really retries


# --- project isolation -------------------------------------------------------------------

async def test_another_project_cannot_see_or_delete(api: Api) -> None:
    server_id = await create_one(api, ALICE)
    for method, path in [("GET", f"/v2.1/servers/{server_id}"),
                         ("DELETE", f"/v2.1/servers/{server_id}"),
                         ("GET", f"/v2.1/servers/{server_id}/os-instance-actions")]:
        response = await api.request(method, path, token=BOB)
        assert response.status_code == 404, (method, path)
        assert response.json()["itemNotFound"]["message"] == (
            f"Instance {server_id} could not be found.")
    assert (await api.request("GET", "/v2.1/servers/detail", token=BOB)).json()["servers"] == []
    [row] = await api.instances()
    assert row.task_state == TaskState.SCHEDULING  # untouched
    marker = await api.request("GET", f"/v2.1/servers?marker={server_id}", token=BOB)
    assert marker.status_code == 400
    # The admin may act on it.
    assert (await api.request("GET", f"/v2.1/servers/{server_id}",
                              token=ADMIN)).status_code == 200
