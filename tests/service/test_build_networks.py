"""Ports in the build, end to end on the fake driver and the in-memory data plane: the
compute allocates the instance's ports through the conductor while the image is
fetched, plugs them before the spawn, and every way a build or an instance ends leaves
no port it made behind (a user's own port is unbound instead)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from strato.domain.ids import InstanceId
from strato.network.host import FakeHostNetwork
from tests.cloud_fixtures import Harness, fake_hosts, running_cloud, wait_until

V2 = "/networking/v2.0"


async def _make(h: Harness, kind: str, **fields: Any) -> dict[str, Any]:
    response = await h.client.request("POST", f"{V2}/{kind}s", json={kind: fields})
    assert response.status_code == 201, response.text
    made: dict[str, Any] = response.json()[kind]
    return made


async def _network(h: Harness, cidr: str = "10.20.0.0/24", **subnet: Any
                   ) -> tuple[dict[str, Any], dict[str, Any]]:
    net = await _make(h, "network", name="net")
    sub = await _make(h, "subnet", network_id=net["id"], cidr=cidr, ip_version=4, **subnet)
    return net, sub


async def _ports(h: Harness, **params: str) -> list[dict[str, Any]]:
    response = await h.client.request("GET", f"{V2}/ports", params=params)
    ports: list[dict[str, Any]] = response.json()["ports"]
    return [p for p in ports if p["device_owner"] != "network:dhcp"]


async def _boot(h: Harness, name: str, networks: Any) -> str:
    return await h.client.create_server(name, image=h.image_id, flavor=h.flavors["m1.tiny"],
                                        networks=networks)


def _plane(h: Harness, host: str) -> FakeHostNetwork:
    network = h.cloud.computes[host].network
    assert isinstance(network, FakeHostNetwork)
    return network


async def test_a_build_makes_binds_and_plugs_a_port_per_network(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        net, sub = await _network(h)
        server_id = await _boot(h, "vm", [{"uuid": net["id"]}])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ACTIVE", server.fault
        [port] = await _ports(h, device_id=server_id)
        assert (port["device_owner"], port["binding:host_id"], port["status"]) == (
            "compute:nova", "h1", "ACTIVE")
        assert port["binding:vif_type"] == "bridge"
        [fixed] = port["fixed_ips"]
        assert fixed["subnet_id"] == sub["id"] and fixed["ip_address"] == "10.20.0.2"
        # The port joined the project's default group (none was asked for).
        groups = (await h.client.request("GET", f"{V2}/security-groups",
                                         params={"name": "default"})).json()
        assert port["security_groups"] == [groups["security_groups"][0]["id"]]
        # The guest's NIC has the port's MAC, and the host plugged that port.
        assert h.driver("h1").nics(InstanceId(server_id)) == (port["mac_address"],)
        assert set(_plane(h, "h1").plugged) == {port["id"]}
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
        assert await _ports(h) == []
        assert _plane(h, "h1").plugged == {}


async def test_nics_follow_the_request_order_and_fixed_ips(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        first, _ = await _network(h, "10.21.0.0/24")
        second, _ = await _network(h, "10.22.0.0/24")
        server_id = await _boot(h, "two-nics", [{"uuid": second["id"]},
                                                {"uuid": first["id"],
                                                 "fixed_ip": "10.21.0.50"}])
        assert (await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})).status == \
            "ACTIVE"
        ports = {p["network_id"]: p for p in await _ports(h, device_id=server_id)}
        assert ports[first["id"]]["fixed_ips"][0]["ip_address"] == "10.21.0.50"
        assert h.driver("h1").nics(InstanceId(server_id)) == (ports[second["id"]]["mac_address"],
                                                  ports[first["id"]]["mac_address"])


async def test_a_users_port_is_bound_then_unbound_not_deleted(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        net, _ = await _network(h)
        own = await _make(h, "port", network_id=net["id"], name="mine")
        server_id = await _boot(h, "vm", [{"port": own["id"]}])
        assert (await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})).status == \
            "ACTIVE"
        [bound] = await _ports(h, device_id=server_id)
        assert bound["id"] == own["id"] and bound["binding:host_id"] == "h1"
        assert h.driver("h1").nics(InstanceId(server_id)) == (own["mac_address"],)
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
        [left] = await _ports(h)
        assert left["id"] == own["id"] and left["fixed_ips"] == own["fixed_ips"]
        assert (left["device_id"], left["device_owner"], left["binding:host_id"],
                left["status"]) == ("", "", "", "DOWN")


async def test_a_reschedule_leaves_only_the_port_on_the_host_that_built_it(
        tmp_path: Path) -> None:
    # bad1 has the most free RAM, so it is chosen first, and fails the spawn.
    hosts = fake_hosts(1, prefix="bad", memory_mb=16384,
                       fail_names=frozenset({"flaky"})) + fake_hosts(1)
    async with running_cloud(tmp_path, hosts) as h:
        net, _ = await _network(h)
        own = await _make(h, "port", network_id=net["id"])
        server_id = await _boot(h, "flaky", [{"uuid": net["id"]}, {"port": own["id"]}])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ACTIVE" and server.host == "h1"
        ports = await _ports(h)
        assert len(ports) == 2  # one made by the build (on h1), plus the user's own
        assert {p["binding:host_id"] for p in ports} == {"h1"}
        assert {p["device_id"] for p in ports} == {server_id}
        # bad1 plugged the ports, then unplugged them when its spawn failed.
        bad = _plane(h, "bad1")
        assert bad.plugged == {} and {kind for kind, _ in bad.history} == {"plug", "unplug"}
        assert set(_plane(h, "h1").plugged) == {p["id"] for p in ports}


@pytest.mark.parametrize("retryable", [False, True])
async def test_a_failed_build_deletes_its_ports_and_unbinds_the_users(
        tmp_path: Path, retryable: bool) -> None:
    hosts = fake_hosts(2, fail_names=frozenset({"doomed"}), fail_retryable=retryable)
    async with running_cloud(tmp_path, hosts) as h:
        net, _ = await _network(h)
        own = await _make(h, "port", network_id=net["id"])
        server_id = await _boot(h, "doomed", [{"uuid": net["id"]}, {"port": own["id"]}])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ERROR"
        [left] = await _ports(h)
        assert left["id"] == own["id"]
        assert (left["device_id"], left["binding:host_id"]) == ("", "")
        assert all(_plane(h, host).plugged == {} for host in ("h1", "h2"))


async def test_a_full_network_aborts_the_build_without_a_reschedule(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        net, _ = await _network(h, allocation_pools=[{"start": "10.20.0.9",
                                                      "end": "10.20.0.9"}])
        taken = await _make(h, "port", network_id=net["id"])
        server_id = await _boot(h, "no-room", [{"uuid": net["id"]}])
        server = await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})
        assert server.status == "ERROR" and server.fault is not None
        assert server.fault["message"] == (
            "Failed to allocate the network(s), not rescheduling: No more IP addresses "
            f"available on network {net['id']}.")
        actions = (await h.client.request(
            "GET", f"/v2.1/servers/{server_id}/os-instance-actions")).json()
        request_id = actions["instanceActions"][0]["request_id"]
        events: list[dict[str, Any]] = []

        async def recorded() -> bool:
            # The compute's steps come in a cast of their own, at the end of its try.
            nonlocal events
            events = (await h.client.request(
                "GET", f"/v2.1/servers/{server_id}/os-instance-actions/{request_id}")
            ).json()["instanceAction"]["events"]
            return any(e["event"] == "compute_claim_resources" for e in events)

        await wait_until(recorded)
        # One try on one host: the scheduler ran once and so did the compute, whose
        # allocation failed (the image it prepared meanwhile was fine).
        assert sorted((e["event"], e["result"]) for e in events) == [
            ("compute__do_build_and_run_instance", "Error"),
            ("compute_allocate_networks", "Error"),
            ("compute_claim_resources", "Success"),
            ("compute_prepare_image", "Success"),
            ("conductor_schedule_and_build_instances", "Success")]
        [allocation] = [e for e in events if e["event"] == "compute_allocate_networks"]
        assert allocation["traceback"] == (
            f"No more IP addresses available on network {net['id']}.")
        assert [p["id"] for p in await _ports(h)] == [taken["id"]]


async def test_no_networks_means_no_nic_and_no_port(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1)) as h:
        await _network(h)
        server_id = await _boot(h, "alone", "none")
        assert (await h.client.wait_for_status(server_id, {"ACTIVE", "ERROR"})).status == \
            "ACTIVE"
        assert h.driver("h1").nics(InstanceId(server_id)) == ()
        assert await _ports(h) == []


async def test_deleting_a_server_while_it_spawns_leaves_no_port(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1, spawn_delay=1.0)) as h:
        net, _ = await _network(h)
        server_id = await _boot(h, "slow", [{"uuid": net["id"]}])

        async def spawning() -> bool:
            return (await h.client.get_server(server_id)).task_state == "spawning"

        await wait_until(spawning)
        assert len(await _ports(h, device_id=server_id)) == 1
        await h.client.delete_server(server_id)
        await h.client.wait_for_status(server_id, {"DELETED"})
        assert await _ports(h) == []
        assert _plane(h, "h1").plugged == {}
