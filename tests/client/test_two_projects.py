"""Two projects on one strato, driven by the real clients as their users would drive them:
the ``openstack`` CLI (python-openstackclient, pinned) and openstacksdk, both logging in
with a password through the Identity API and finding every other service in the catalog.

The admin uses the clouds.yaml ``strato up`` wrote. The other users hold only the
``member`` role, each on a project of their own (written into the database by the
fixture: see :func:`~tests.client.server_fixtures.add_member`). A member works in their
own project as the admin does in theirs, and sees nothing of another project: its servers
answer 404, its images (shared, Glance's default) and its key pairs are not listed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openstack
import pytest
from openstack import exceptions as sdk_exceptions
from openstack.connection import Connection

from tests.client.server_fixtures import (
    MIB,
    Account,
    Cli,
    RunningApi,
    add_member,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
    build_qcow2,
    write_clouds_yaml,
)

# openstacksdk 4.22 warns against itself on every call (see test_openstacksdk_images.py).
pytestmark = [
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK50Warning"),
    pytest.mark.filterwarnings("ignore::openstack.warnings.RemovedInSDK60Warning"),
]

SERVICES = {"identity": "/identity", "compute": "/v2.1", "image": "/image",
            "network": "/networking"}
# What the CLI prints for a server the caller cannot see: openstacksdk's find_server got
# a 404 for the id, then found no server of that name either.
NO_SUCH_SERVER = "No Server found for {}"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def member(api: RunningApi) -> Account:
    return add_member(api, "project-two", "user-two", "password of user two")


@pytest.fixture(scope="module")
def admin_cli(api: RunningApi, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The admin, through the clouds.yaml ``strato up`` wrote."""
    return Cli.for_cloud(api.clouds_yaml, tmp_path_factory.mktemp("admin-home"))


@pytest.fixture(scope="module")
def member_cli(api: RunningApi, member: Account,
               tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The member, through a clouds.yaml of the same shape: password auth, no endpoint
    but the Identity API's."""
    home = tmp_path_factory.mktemp("member-home")
    clouds = write_clouds_yaml(home / "clouds.yaml", api.url, {"two": member})
    return Cli.for_cloud(clouds, home, cloud="two")


@pytest.fixture(scope="module")
def qcow2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("image") / "tiny.qcow2"
    path.write_bytes(build_qcow2(16 * MIB))
    return path


def create_image(cli: Cli, path: Path, name: str) -> dict[str, Any]:
    image: dict[str, Any] = cli.json("image", "create", "--file", str(path), "--disk-format",
                                     "qcow2", "--container-format", "bare", name)
    # Glance's default since Image API 2.5: "shared", seen by no other project until
    # it is made a member of the image.
    assert (image["status"], image["visibility"]) == ("active", "shared"), image
    return image


def create_keypair(cli: Cli, name: str) -> str:
    """``openstack keypair create NAME``: the server makes the key, the CLI prints the
    private half."""
    private_key = cli.ok("keypair", "create", name).stdout
    assert "PRIVATE KEY-----" in private_key, private_key
    return name


def create_server(cli: Cli, image_id: str, key_name: str, name: str) -> dict[str, Any]:
    server: dict[str, Any] = cli.json(
        "server", "create", "--flavor", "m1.tiny", "--image", image_id, "--key-name",
        key_name, "--wait", name)
    assert server["status"] == "ACTIVE", server
    return server


def connect(api: RunningApi, account: Account) -> Connection:
    """openstacksdk with password auth; no clouds.yaml, no ``OS_*`` variables."""
    connection: Connection = openstack.connect(
        auth_type="password", auth=account.auth(api.url), region_name="RegionOne",
        load_yaml_config=False, load_envvars=False)
    return connection


@pytest.fixture(scope="module")
def admin_sdk(api: RunningApi) -> Iterator[Connection]:
    """The admin through openstacksdk: cleans up after the CLI fixtures (at no CLI's
    start-up cost)."""
    with connect(api, api.admin) as conn:
        yield conn


@pytest.fixture(scope="module")
def admin_image(admin_cli: Cli, admin_sdk: Connection,
                qcow2: Path) -> Iterator[dict[str, Any]]:
    image = create_image(admin_cli, qcow2, unique("admin-image"))
    yield image
    admin_sdk.image.delete_image(image["id"], ignore_missing=True)


@pytest.fixture(scope="module")
def admin_keypair(admin_cli: Cli, admin_sdk: Connection) -> Iterator[str]:
    name = create_keypair(admin_cli, unique("admin-key"))
    yield name
    admin_sdk.compute.delete_keypair(name, ignore_missing=True)


@pytest.fixture(scope="module")
def admin_server(admin_cli: Cli, admin_sdk: Connection, admin_image: dict[str, Any],
                 admin_keypair: str) -> Iterator[dict[str, Any]]:
    """The admin's server (the last test deletes it; if not, this does)."""
    server = create_server(admin_cli, admin_image["id"], admin_keypair, unique("admin-vm"))
    yield server
    left = admin_sdk.compute.find_server(server["id"])
    if left is not None:
        admin_sdk.compute.delete_server(left)
        admin_sdk.compute.wait_for_delete(left, wait=60)


def test_the_catalog_names_every_service_at_its_url(api: RunningApi,
                                                      admin_cli: Cli) -> None:
    catalog = {entry["Type"]: entry for entry in admin_cli.json("catalog", "list")}
    assert set(catalog) >= set(SERVICES)
    for kind, path in SERVICES.items():
        endpoints = catalog[kind]["Endpoints"]
        assert {(e["interface"], e["url"]) for e in endpoints} == {
            (interface, api.url + path) for interface in ("public", "internal", "admin")}
    flavors = {f["Name"]: f for f in admin_cli.json("flavor", "list")}
    assert (flavors["m1.tiny"]["VCPUs"], flavors["m1.tiny"]["RAM"],
            flavors["m1.tiny"]["Disk"]) == (1, 512, 1)


def test_the_admin_boots_a_server_from_its_image_with_its_keypair(
        admin_cli: Cli, admin_image: dict[str, Any], admin_keypair: str,
        admin_server: dict[str, Any]) -> None:
    assert admin_image["id"] in {i["ID"] for i in admin_cli.json("image", "list")}
    listed = {s["ID"]: s for s in admin_cli.json("server", "list")}
    assert listed[admin_server["id"]]["Status"] == "ACTIVE"
    shown = admin_cli.json("server", "show", admin_server["id"])
    assert (shown["status"], shown["key_name"], shown["name"]) == (
        "ACTIVE", admin_keypair, admin_server["name"])


def test_a_member_works_in_their_project_and_sees_none_of_the_admins(
        member_cli: Cli, qcow2: Path, admin_image: dict[str, Any], admin_keypair: str,
        admin_server: dict[str, Any]) -> None:
    image = create_image(member_cli, qcow2, unique("member-image"))
    images = {i["ID"] for i in member_cli.json("image", "list")}
    assert image["id"] in images
    assert admin_image["id"] not in images  # shared with no other project
    key = create_keypair(member_cli, unique("member-key"))
    assert [k["Name"] for k in member_cli.json("keypair", "list")] == [key]

    server = create_server(member_cli, image["id"], key, unique("member-vm"))
    assert server["project_id"] != admin_server["project_id"]
    assert [s["ID"] for s in member_cli.json("server", "list")] == [server["id"]]
    assert member_cli.json("server", "show", server["id"])["status"] == "ACTIVE"
    member_cli.ok("server", "delete", "--wait", server["id"])
    assert NO_SUCH_SERVER.format(server["id"]) in member_cli.fails(
        "server", "show", server["id"])


def test_a_member_gets_404_on_the_admins_server(member_cli: Cli, admin_cli: Cli,
                                                admin_server: dict[str, Any]) -> None:
    server_id = admin_server["id"]
    assert NO_SUCH_SERVER.format(server_id) in member_cli.fails("server", "show", server_id)
    assert NO_SUCH_SERVER.format(server_id) in member_cli.fails("server", "delete", server_id)
    assert admin_cli.json("server", "show", server_id)["status"] == "ACTIVE"


@pytest.fixture(scope="module")
def sdk_image(admin_sdk: Connection) -> Iterator[str]:
    """A public image (only an admin may publish one) every project can boot from."""
    image = admin_sdk.image.create_image(
        unique("sdk-public"), data=build_qcow2(16 * MIB), disk_format="qcow2",
        container_format="bare", visibility="public")
    yield image.id
    admin_sdk.image.delete_image(image.id, ignore_missing=True)


def sdk_server(conn: Connection, image_id: str) -> Any:
    flavor = conn.compute.find_flavor("m1.tiny", ignore_missing=False)
    server = conn.compute.create_server(name=unique("sdk-vm"), image_id=image_id,
                                        flavor_id=flavor.id, networks="none")
    return conn.compute.wait_for_server(server, status="ACTIVE", wait=120)


def test_openstacksdk_users_see_only_their_own_projects_servers(
        api: RunningApi, admin_sdk: Connection, member: Account, sdk_image: str,
        admin_server: dict[str, Any]) -> None:
    three = add_member(api, "project-three", "user-three", "password of user three")
    admin = admin_sdk
    with connect(api, member) as two, connect(api, three) as other:
        assert (two.current_project.name, other.current_project.name) == (
            "project-two", "project-three")
        mine, theirs = sdk_server(two, sdk_image), sdk_server(other, sdk_image)
        try:
            assert [s.id for s in two.compute.servers()] == [mine.id]
            assert [s.id for s in other.compute.servers()] == [theirs.id]
            for conn, foreign in ((two, theirs.id), (other, mine.id),
                                  (two, admin_server["id"])):
                with pytest.raises(sdk_exceptions.NotFoundException):
                    conn.compute.get_server(foreign)
                with pytest.raises(sdk_exceptions.NotFoundException):
                    conn.compute.delete_server(foreign, ignore_missing=False)
            # The admin lists its own project's servers unless it asks for all of them,
            # and may look at any server by id (Nova's admin-or-owner rule).
            assert {s.id for s in admin.compute.servers()} == {admin_server["id"]}
            assert {mine.id, theirs.id, admin_server["id"]} <= {
                s.id for s in admin.compute.servers(all_projects=True)}
            assert admin.compute.get_server(mine.id).status == "ACTIVE"
        finally:
            for conn, server in ((two, mine), (other, theirs)):
                conn.compute.delete_server(server)
                conn.compute.wait_for_delete(server, wait=120)
        assert admin.compute.get_server(admin_server["id"]).status == "ACTIVE"


def test_the_admin_deletes_its_server(admin_cli: Cli, admin_server: dict[str, Any]) -> None:
    admin_cli.ok("server", "delete", "--wait", admin_server["id"])
    assert NO_SUCH_SERVER.format(admin_server["id"]) in admin_cli.fails(
        "server", "show", admin_server["id"])
    assert admin_server["id"] not in {s["ID"] for s in admin_cli.json("server", "list")}
