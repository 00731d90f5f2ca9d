"""The default policy: every API action strato serves, with its rule and what it does.

The names are the upstream services' own (Nova's ``os_compute_api:*``, Glance's action
names under ``image:``, Neutron's bare ``create_network`` ..., Keystone's
``identity:*``), so an operator's policy file for those services reads the same here.
The base rules follow the upstream "secure RBAC" defaults: ``reader`` may look, ``member``
may change, ``admin`` may do anything, each within its own project unless admin.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from strato.api.identity.policies import IDENTITY_RULES
from strato.api.policy import Policy, RuleDefault

__all__ = ["DEFAULT_RULES", "SERVER_ACTIONS", "aggregate_rule", "default_policy",
           "load_policy"]

_ADMIN = "rule:admin_api"
_MEMBER = "rule:project_member_api"
_READER = "rule:project_reader_api"
_MEMBER_OR_ADMIN = "rule:project_member_or_admin"
_READER_OR_ADMIN = "rule:project_reader_or_admin"
_ANYONE = "@"  # any authenticated caller

_BASE = [
    RuleDefault("context_is_admin", "role:admin", "Who counts as a cloud administrator."),
    RuleDefault("admin_api", "role:admin", "Administrator APIs."),
    RuleDefault("project_member_api", "role:member and project_id:%(project_id)s",
                "A member of the project the action is on."),
    RuleDefault("project_reader_api", "role:reader and project_id:%(project_id)s",
                "A reader (or member) of the project the action is on."),
    RuleDefault("project_member_or_admin", "rule:project_member_api or rule:context_is_admin",
                "A member of the project, or an administrator."),
    RuleDefault("project_reader_or_admin", "rule:project_reader_api or rule:context_is_admin",
                "A reader of the project, or an administrator."),
    RuleDefault("service_api", "role:service",
                "The services' own token (computes reading and downloading images)."),
]


def _compute() -> Iterator[RuleDefault]:
    c = "os_compute_api:"
    yield from (
        RuleDefault(f"{c}servers:index", _READER_OR_ADMIN, "List servers."),
        RuleDefault(f"{c}servers:detail", _READER_OR_ADMIN, "List servers with details."),
        RuleDefault(f"{c}servers:show", _READER_OR_ADMIN, "Show a server."),
        RuleDefault(f"{c}servers:create", _MEMBER, "Create servers."),
        RuleDefault(f"{c}servers:delete", _MEMBER_OR_ADMIN, "Delete a server."),
        RuleDefault(f"{c}servers:update", _MEMBER_OR_ADMIN,
                    "Rename a server or set its access IPs."),
        RuleDefault(f"{c}server-metadata:index", _READER_OR_ADMIN,
                    "List a server's metadata."),
        RuleDefault(f"{c}server-metadata:show", _READER_OR_ADMIN,
                    "Show one metadata item of a server."),
        RuleDefault(f"{c}server-metadata:create", _MEMBER_OR_ADMIN,
                    "Add or change metadata items of a server."),
        RuleDefault(f"{c}server-metadata:update_all", _MEMBER_OR_ADMIN,
                    "Replace all metadata of a server."),
        RuleDefault(f"{c}server-metadata:update", _MEMBER_OR_ADMIN,
                    "Set one metadata item of a server."),
        RuleDefault(f"{c}server-metadata:delete", _MEMBER_OR_ADMIN,
                    "Delete one metadata item of a server."),
        RuleDefault(f"{c}servers:reboot", _MEMBER_OR_ADMIN, "Reboot a server."),
        RuleDefault(f"{c}servers:rebuild", _MEMBER_OR_ADMIN, "Rebuild a server."),
        RuleDefault(f"{c}servers:start", _MEMBER_OR_ADMIN, "Start a server."),
        RuleDefault(f"{c}servers:stop", _MEMBER_OR_ADMIN, "Stop a server."),
        RuleDefault(f"{c}os-pause-server:pause", _MEMBER_OR_ADMIN, "Pause a server."),
        RuleDefault(f"{c}os-pause-server:unpause", _MEMBER_OR_ADMIN, "Unpause a server."),
        RuleDefault(f"{c}os-suspend-server:suspend", _MEMBER_OR_ADMIN, "Suspend a server."),
        RuleDefault(f"{c}os-suspend-server:resume", _MEMBER_OR_ADMIN, "Resume a server."),
        RuleDefault(f"{c}os-deferred-delete:restore", _MEMBER_OR_ADMIN,
                    "Restore a soft-deleted server."),
        RuleDefault(f"{c}os-deferred-delete:force", _MEMBER_OR_ADMIN,
                    "Delete a soft-deleted server at once."),
        RuleDefault(f"{c}os-lock-server:lock", _MEMBER_OR_ADMIN, "Lock a server."),
        RuleDefault(f"{c}os-lock-server:unlock", _MEMBER_OR_ADMIN, "Unlock a server."),
        RuleDefault(f"{c}os-console-output", _MEMBER_OR_ADMIN,
                    "Read a server's console log."),
        RuleDefault(f"{c}ips:index", _READER_OR_ADMIN, "List a server's addresses."),
        RuleDefault(f"{c}ips:show", _READER_OR_ADMIN,
                    "Show a server's addresses on one network."),
        RuleDefault(f"{c}os-instance-actions:list", _READER_OR_ADMIN,
                    "List a server's actions."),
        RuleDefault(f"{c}os-instance-actions:show", _READER_OR_ADMIN,
                    "Show one action of a server with its events."),
        RuleDefault(f"{c}flavors:index", _ANYONE, "List flavors."),
        RuleDefault(f"{c}flavors:show", _ANYONE, "Show a flavor."),
        RuleDefault(f"{c}os-flavor-extra-specs:index", _ANYONE,
                    "List a flavor's extra specs."),
        RuleDefault(f"{c}os-flavor-extra-specs:show", _ANYONE,
                    "Show one extra spec of a flavor."),
        RuleDefault(f"{c}os-flavor-manage:create", _ADMIN, "Create a flavor."),
        RuleDefault(f"{c}os-flavor-manage:delete", _ADMIN, "Delete a flavor."),
        RuleDefault(f"{c}limits", _ANYONE, "Show the caller's project's limits."),
        RuleDefault(f"{c}limits:other_project", _ADMIN,
                    "Show another project's limits (``tenant_id``)."),
        RuleDefault(f"{c}os-quota-sets:show", _READER_OR_ADMIN, "Show a project's quotas."),
        RuleDefault(f"{c}os-quota-sets:detail", _READER_OR_ADMIN,
                    "Show a project's quotas with their usage."),
        RuleDefault(f"{c}os-quota-sets:defaults", _ANYONE, "Show the default quotas."),
        RuleDefault(f"{c}os-quota-sets:update", _ADMIN, "Change a project's quotas."),
        RuleDefault(f"{c}os-quota-sets:delete", _ADMIN,
                    "Revert a project's quotas to the defaults."),
        RuleDefault(f"{c}os-quota-class-sets:show", _ADMIN, "Show a quota class."),
        RuleDefault(f"{c}os-quota-class-sets:update", _ADMIN, "Change a quota class."),
        RuleDefault(f"{c}os-keypairs:index", f"{_ADMIN} or user_id:%(user_id)s",
                    "List the caller's key pairs."),
        RuleDefault(f"{c}os-keypairs:show", f"{_ADMIN} or user_id:%(user_id)s",
                    "Show a key pair."),
        RuleDefault(f"{c}os-keypairs:create", f"{_ADMIN} or user_id:%(user_id)s",
                    "Create or import a key pair."),
        RuleDefault(f"{c}os-keypairs:delete", f"{_ADMIN} or user_id:%(user_id)s",
                    "Delete a key pair."),
        RuleDefault(f"{c}os-server-groups:index", _READER_OR_ADMIN, "List server groups."),
        RuleDefault(f"{c}os-server-groups:show", _READER_OR_ADMIN, "Show a server group."),
        RuleDefault(f"{c}os-server-groups:create", _MEMBER, "Create a server group."),
        RuleDefault(f"{c}os-server-groups:delete", _MEMBER_OR_ADMIN,
                    "Delete a server group."),
        RuleDefault(f"{c}os-aggregates:index", _ADMIN, "List host aggregates."),
        RuleDefault(f"{c}os-aggregates:show", _ADMIN, "Show a host aggregate."),
        RuleDefault(f"{c}os-aggregates:create", _ADMIN, "Create a host aggregate."),
        RuleDefault(f"{c}os-aggregates:update", _ADMIN, "Rename or re-zone an aggregate."),
        RuleDefault(f"{c}os-aggregates:delete", _ADMIN, "Delete a host aggregate."),
        RuleDefault(f"{c}os-aggregates:add_host", _ADMIN, "Add a host to an aggregate."),
        RuleDefault(f"{c}os-aggregates:remove_host", _ADMIN,
                    "Remove a host from an aggregate."),
        RuleDefault(f"{c}os-aggregates:set_metadata", _ADMIN,
                    "Set an aggregate's metadata."),
        RuleDefault(f"{c}os-availability-zone:list", _ANYONE,
                    "List the availability zones."),
        RuleDefault(f"{c}os-availability-zone:detail", _ADMIN,
                    "List the availability zones with their hosts and services."),
        RuleDefault(f"{c}os-hypervisors:list", _ADMIN, "List hypervisors."),
        RuleDefault(f"{c}os-hypervisors:list-detail", _ADMIN,
                    "List hypervisors with their capacity."),
        RuleDefault(f"{c}os-services:list", _ADMIN, "List services."),
        RuleDefault(f"{c}os-services:update", _ADMIN,
                    "Enable, disable or force down a service."),
    )


def _image() -> Iterator[RuleDefault]:
    yield RuleDefault("image:reader", _READER_OR_ADMIN, "Base rule: reading images.")
    yield RuleDefault("image:member", _MEMBER_OR_ADMIN, "Base rule: changing images.")
    for name, base, what in (
            ("get_images", "reader", "List images."),
            ("get_image", "reader", "Show an image."),
            ("download_image", "reader", "Download an image's data."),
            ("get_schemas", "reader", "Read the image JSON schemas."),
            ("add_image", "member", "Create an image."),
            ("modify_image", "member", "Change an image's properties or tags."),
            ("upload_image", "member", "Upload an image's data."),
            ("delete_image", "member", "Delete an image."),
            ("deactivate", "member", "Deactivate an image."),
            ("reactivate", "member", "Reactivate an image."),
            ("get_members", "reader", "List an image's members."),
            ("get_member", "reader", "Show an image member."),
            ("add_member", "member", "Share an image with a project."),
            ("modify_member", "member", "Accept or reject a shared image."),
            ("delete_member", "member", "Stop sharing an image with a project.")):
        rule = f"rule:image:{base}"
        if name in _SERVICE_READS:
            rule += " or rule:service_api"
        yield RuleDefault(f"image:{name}", rule, what)


# What the service token may do besides the ``@`` rules: what a compute needs to boot.
_SERVICE_READS = frozenset({"get_image", "download_image"})


def _network() -> Iterator[RuleDefault]:
    yield RuleDefault("get_api_resources", _ANYONE,
                      "Read the Network API's resources and extensions.")
    for resource in ("network", "subnet", "port", "security_group", "security_group_rule"):
        words = resource.replace("_", " ")
        yield RuleDefault(f"get_{resource}", _READER_OR_ADMIN, f"List or show {words}s.")
        yield RuleDefault(f"create_{resource}", _MEMBER_OR_ADMIN, f"Create a {words}.")
        if resource != "security_group_rule":
            yield RuleDefault(f"update_{resource}", _MEMBER_OR_ADMIN, f"Change a {words}.")
        yield RuleDefault(f"delete_{resource}", _MEMBER_OR_ADMIN, f"Delete a {words}.")


DEFAULT_RULES: tuple[RuleDefault, ...] = (*_BASE, *_compute(), *_image(), *_network(),
                                          *IDENTITY_RULES)

# ``POST /servers/{id}/action``: the body's action -> its rule.
SERVER_ACTIONS: dict[str, str] = {
    "reboot": "os_compute_api:servers:reboot",
    "rebuild": "os_compute_api:servers:rebuild",
    "os-start": "os_compute_api:servers:start",
    "os-stop": "os_compute_api:servers:stop",
    "pause": "os_compute_api:os-pause-server:pause",
    "unpause": "os_compute_api:os-pause-server:unpause",
    "suspend": "os_compute_api:os-suspend-server:suspend",
    "resume": "os_compute_api:os-suspend-server:resume",
    "restore": "os_compute_api:os-deferred-delete:restore",
    "forceDelete": "os_compute_api:os-deferred-delete:force",
    "lock": "os_compute_api:os-lock-server:lock",
    "unlock": "os_compute_api:os-lock-server:unlock",
    "os-getConsoleOutput": "os_compute_api:os-console-output",
}


def aggregate_rule(name: str) -> str:
    """``POST /os-aggregates/{id}/action``: the body's action -> its rule."""
    return f"os_compute_api:os-aggregates:{name}"


def default_policy() -> Policy:
    """The defaults, with no operator file."""
    return Policy(DEFAULT_RULES)


def load_policy(path: Path | None) -> Policy:
    """The defaults overridden by the operator's file at ``path`` (``None``: none);
    ``Invalid`` naming the problem when the file cannot be used."""
    return Policy.from_file(DEFAULT_RULES, path)
