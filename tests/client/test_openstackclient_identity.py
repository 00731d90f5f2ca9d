"""The real ``openstack`` CLI (python-openstackclient, pinned) administering strato's
Identity API as an admin does: ``project``, ``user`` and ``role`` create, show, set,
list and delete, role grants and ``role assignment list`` (``strato up`` as an OS
process; each command its own process, see :class:`~tests.client.server_fixtures.Cli`).

The pinned client has no ``role list --user --project`` (``role assignment list`` took
its place), so that is not exercised.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.client.server_fixtures import (
    Cli,
    RunningApi,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)


@pytest.fixture(scope="module")
def cli(api: RunningApi, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    return Cli.for_cloud(api.clouds_yaml, tmp_path_factory.mktemp("home"))


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def rows(cli: Cli, *args: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = cli.json(*args)
    return listed


def test_project_lifecycle(cli: Cli) -> None:
    name = unique("cli-project")
    created = cli.json("project", "create", "--domain", "default", "--description", "demo",
                       name)
    assert (created["name"], created["description"], created["enabled"]) == (
        name, "demo", True)
    assert created["domain_id"] == created["parent_id"] == "default"
    cli.ok("project", "set", "--description", "changed", "--disable", name)
    shown = cli.json("project", "show", name)
    assert (shown["id"], shown["description"], shown["enabled"]) == (
        created["id"], "changed", False)
    assert name in {p["Name"] for p in rows(cli, "project", "list", "--domain", "default")}
    renamed = unique("cli-renamed")
    cli.ok("project", "set", "--enable", "--name", renamed, created["id"])
    assert cli.json("project", "show", created["id"])["name"] == renamed
    cli.ok("project", "delete", renamed)
    assert "No Project found" in cli.fails("project", "show", created["id"])


def test_user_lifecycle_with_email_and_description(cli: Cli) -> None:
    project = cli.json("project", "create", unique("cli-home"))
    name = unique("cli-user")
    created = cli.json("user", "create", "--project", project["id"], "--password", "pw-1",
                       "--email", "u@example.com", "--description", "a user", name)
    assert (created["name"], created["email"], created["description"]) == (
        name, "u@example.com", "a user")
    assert created["default_project_id"] == project["id"]
    assert "password" not in created
    cli.ok("user", "set", "--email", "v@example.com", "--disable", name)
    shown = cli.json("user", "show", name)
    assert (shown["email"], shown["description"], shown["enabled"]) == (
        "v@example.com", "a user", False)
    listed = rows(cli, "user", "list", "--domain", "default", "--long")
    [row] = [u for u in listed if u["Name"] == name]
    assert (row["Email"], row["Enabled"]) == ("v@example.com", False)
    cli.ok("user", "delete", name)
    assert "No User found" in cli.fails("user", "show", created["id"])
    cli.ok("project", "delete", project["id"])


def test_role_grants_and_assignments(cli: Cli) -> None:
    project = cli.json("project", "create", unique("cli-roles"))
    user = cli.json("user", "create", "--password", "pw-2", unique("cli-granted"))
    role = cli.json("role", "create", unique("cli-role"))
    assert role["name"] in {r["Name"] for r in rows(cli, "role", "list")}
    for granted in (role["name"], "member"):
        cli.ok("role", "add", "--user", user["name"], "--project", project["name"], granted)
    named = rows(cli, "role", "assignment", "list", "--user", user["name"], "--project",
                 project["name"], "--names")
    assert {(a["Role"], a["User"], a["Project"]) for a in named} == {
        (r, f"{user['name']}@Default", f"{project['name']}@Default")
        for r in (role["name"], "member")}
    by_role = rows(cli, "role", "assignment", "list", "--role", role["name"])
    assert [(a["User"], a["Project"]) for a in by_role] == [(user["id"], project["id"])]
    effective = rows(cli, "role", "assignment", "list", "--user", user["id"], "--effective")
    assert len(effective) == 2
    cli.ok("role", "remove", "--user", user["name"], "--project", project["name"],
           role["name"])
    left = rows(cli, "role", "assignment", "list", "--user", user["id"], "--project",
                project["id"], "--names")
    assert [a["Role"] for a in left] == ["member"]
    members = rows(cli, "user", "list", "--project", project["name"])
    assert [u["Name"] for u in members] == [user["name"]]
    cli.ok("role", "delete", role["name"])
    cli.ok("user", "delete", user["id"])
    cli.ok("project", "delete", project["id"])
