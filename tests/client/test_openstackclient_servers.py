"""The real ``openstack`` CLI (python-openstackclient, pinned) against a real strato API
(``strato up`` as an OS process, fake virt driver).

The CLI logs in as a user does: it reads the clouds.yaml ``strato up`` wrote (cloud
``strato``: the admin's password, the Identity API's URL and nothing else), gets a token
from ``/identity/v3/auth/tokens`` and finds every other service in the catalog. Each
command runs as its own process (see :class:`~tests.client.server_fixtures.Cli`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.client.server_fixtures import (
    MIB,
    Cli,
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
    build_qcow2,
)


@pytest.fixture(scope="module")
def cli(api: RunningApi, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli.for_cloud(api.clouds_yaml, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def image_id(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small qcow2 image uploaded with ``openstack image create``."""
    path = tmp_path_factory.mktemp("image") / "tiny.qcow2"
    path.write_bytes(build_qcow2(16 * MIB))
    image = cli.json("image", "create", "--disk-format", "qcow2", "--container-format",
                     "bare", "--file", str(path), "cli-tiny")
    assert image["status"] == "active"
    yield image["id"]
    cli.run("image", "delete", image["id"])


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_network(cli: Cli, cidr: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """``openstack network create`` + ``openstack subnet create --network NAME``."""
    net = cli.json("network", "create", unique("cli-net"))
    sub = cli.json("subnet", "create", "--network", net["name"], "--subnet-range", cidr,
                   unique("cli-sub"))
    return net, sub


def test_network_and_subnet_create(cli: Cli) -> None:
    net, sub = create_network(cli, "10.60.0.0/24")
    assert (net["status"], net["admin_state_up"], net["mtu"]) == ("ACTIVE", True, 1500)
    assert (sub["network_id"], sub["cidr"], sub["gateway_ip"]) == (
        net["id"], "10.60.0.0/24", "10.60.0.1")
    assert sub["allocation_pools"] == [{"start": "10.60.0.2", "end": "10.60.0.254"}]
    assert cli.json("network", "show", net["name"])["subnets"] == [sub["id"]]
    [listed] = cli.json("subnet", "list", "--network", net["id"])
    assert listed["ID"] == sub["id"]
    # A port made by the CLI (it probes /v2.0/extensions first), found by its address.
    port = cli.json("port", "create", "--network", net["name"], unique("cli-port"))
    [address] = port["fixed_ips"]
    assert address["subnet_id"] == sub["id"]
    found = cli.json("port", "list", "--fixed-ip", f"ip-address={address['ip_address']}")
    assert [p["ID"] for p in found] == [port["id"]]
    cli.ok("port", "delete", port["id"])
    cli.ok("subnet", "delete", sub["id"])
    cli.ok("network", "delete", net["id"])
    assert cli.run("network", "show", net["id"]).returncode == 1


def test_server_create_on_a_named_network_waits_then_delete_frees_its_port(
        cli: Cli, image_id: str) -> None:
    net, sub = create_network(cli, "10.61.0.0/24")
    server = cli.json("server", "create", "--image", image_id, "--flavor", "m1.tiny",
                      "--network", net["name"], "--wait", unique("cli-vm"))
    assert server["status"] == "ACTIVE"

    # The build gave the server one port on the network, with an address of the subnet.
    ports = cli.json("port", "list", "--server", server["id"])
    assert len(ports) == 1, f"server {server['id']} has ports {ports}"
    [port] = ports
    [address] = port["Fixed IP Addresses"]
    assert address["subnet_id"] == sub["id"]
    ip = address["ip_address"]
    # ... and the server shows that address under the network's name.
    assert server["addresses"] == {net["name"]: [ip]}
    assert cli.json("server", "show", server["id"])["addresses"] == {net["name"]: [ip]}
    shown = cli.json("port", "show", port["ID"])
    assert (shown["device_id"], shown["network_id"]) == (server["id"], net["id"])
    assert shown["device_owner"].startswith("compute:")

    cli.ok("server", "delete", "--wait", server["id"])
    assert cli.run("server", "show", server["id"]).returncode == 1
    # Deleting the server deleted the port it was given (so the subnet can go).
    assert cli.run("port", "show", port["ID"]).returncode == 1
    assert cli.json("port", "list", "--network", net["id"]) == []
    cli.ok("subnet", "delete", sub["id"])
    cli.ok("network", "delete", net["id"])
