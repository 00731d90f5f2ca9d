"""The real ``openstack`` CLI's server commands (python-openstackclient, pinned) against a
real strato API (``strato up`` as an OS process, fake virt driver), at the microversion
the client negotiates with strato.

One server is created in the module and walked through create, show, list (and its
filters), set/unset, the event list and delete: each CLI call is a process start (about
1-2 s), so the tests share it and run in order.
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

IMAGE_NAME = f"cli-img-{uuid.uuid4().hex[:8]}"
SERVER_NAME = f"cli-srv-{uuid.uuid4().hex[:8]}"
NEW_NAME = f"{SERVER_NAME}-renamed"


@pytest.fixture(scope="module")
def cli(api: RunningApi, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli.for_cloud(api.clouds_yaml, tmp_path_factory.mktemp("home"))


@pytest.fixture(scope="module")
def image_id(cli: Cli, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A small qcow2 image uploaded with ``openstack image create``."""
    path = tmp_path_factory.mktemp("image") / "tiny.qcow2"
    path.write_bytes(build_qcow2(16 * MIB))
    image = cli.json("image", "create", "--disk-format", "qcow2", "--container-format",
                     "bare", "--file", str(path), IMAGE_NAME)
    assert image["status"] == "active"
    yield image["id"]
    cli.run("image", "delete", image["id"])


@pytest.fixture(scope="module")
def server(cli: Cli, image_id: str) -> dict[str, Any]:
    """``openstack server create --wait --property``: one server for the module."""
    created = cli.json("server", "create", "--image", IMAGE_NAME, "--flavor", "m1.tiny",
                       "--property", "color=blue", "--property", "tier=web", "--wait",
                       SERVER_NAME)
    assert created["status"] == "ACTIVE"
    return dict(created)


def names(rows: list[dict[str, Any]]) -> list[str]:
    return [row["Name"] for row in rows]


def test_create_then_show_has_properties_image_and_flavor(
        cli: Cli, server: dict[str, Any], image_id: str) -> None:
    shown = cli.json("server", "show", server["id"])
    assert (shown["id"], shown["name"], shown["status"]) == (
        server["id"], SERVER_NAME, "ACTIVE")
    assert shown["properties"] == {"color": "blue", "tier": "web"}
    assert shown["image"] == f"{IMAGE_NAME} ({image_id})"
    assert shown["flavor"].startswith("m1.tiny")


def test_list_shows_image_and_flavor_names(
        cli: Cli, server: dict[str, Any], image_id: str) -> None:
    rows = cli.json("server", "list")
    [row] = [r for r in rows if r["ID"] == server["id"]]
    assert (row["Name"], row["Status"], row["Image"], row["Flavor"]) == (
        SERVER_NAME, "ACTIVE", IMAGE_NAME, "m1.tiny")

    [long_row] = [r for r in cli.json("server", "list", "--long") if r["ID"] == server["id"]]
    assert (long_row["Image Name"], long_row["Image ID"]) == (IMAGE_NAME, image_id)
    # Before 2.47 the server names its flavor by id: --long shows its name and id.
    assert long_row["Flavor Name"] == "m1.tiny"
    assert server["flavor"] == f"m1.tiny ({long_row['Flavor ID']})"
    assert long_row["Power State"] == 1  # RUNNING: -f json prints the raw power_state
    assert long_row["Properties"] == {"color": "blue", "tier": "web"}


def test_flavor_show_reads_the_extra_specs(cli: Cli, server: dict[str, Any]) -> None:
    """``openstack flavor show`` also asks for ``os-extra_specs``."""
    flavor = cli.json("flavor", "show", "m1.tiny")
    assert flavor["name"] == "m1.tiny"
    assert server["flavor"] == f"m1.tiny ({flavor['id']})"


def test_list_filters(cli: Cli, server: dict[str, Any], image_id: str) -> None:
    assert names(cli.json("server", "list", "--name", SERVER_NAME)) == [SERVER_NAME]
    assert cli.json("server", "list", "--name", f"{SERVER_NAME}-nope") == []
    assert SERVER_NAME in names(cli.json("server", "list", "--image", IMAGE_NAME))
    assert SERVER_NAME in names(cli.json("server", "list", "--flavor", "m1.tiny"))
    assert SERVER_NAME not in names(cli.json("server", "list", "--flavor", "m1.small"))


def test_set_name_and_property_then_unset_property(
        cli: Cli, server: dict[str, Any]) -> None:
    cli.ok("server", "set", "--name", NEW_NAME, "--property", "a=b", server["id"])
    shown = cli.json("server", "show", server["id"])
    assert shown["name"] == NEW_NAME
    assert shown["properties"] == {"a": "b", "color": "blue", "tier": "web"}

    cli.ok("server", "unset", "--property", "a", "--property", "tier", NEW_NAME)
    shown = cli.json("server", "show", NEW_NAME)
    assert shown["properties"] == {"color": "blue"}


def test_event_list_and_show(cli: Cli, server: dict[str, Any]) -> None:
    events = cli.json("server", "event", "list", server["id"])
    [create] = [e for e in events if e["Action"] == "create"]
    assert create["Server ID"] == server["id"]
    shown = cli.json("server", "event", "show", server["id"], create["Request ID"])
    assert (shown["action"], shown["request_id"]) == ("create", create["Request ID"])
    # The admin sees the action's events (before 2.51 only the admin does).
    assert shown["events"], shown
    assert all(event["event"] and event["start_time"] for event in shown["events"]), shown


def test_delete_waits_until_gone(cli: Cli, server: dict[str, Any]) -> None:
    cli.ok("server", "delete", "--wait", server["id"])
    assert cli.run("server", "show", server["id"]).returncode == 1
    assert server["id"] not in [r["ID"] for r in cli.json("server", "list")]
