"""The schema, as SQLAlchemy Core tables: the one description both backends share.

Portable across SQLite and PostgreSQL: only generic types, JSON for nested values, and
:class:`UtcDateTime` for every timestamp. ``migrations/versions`` must create exactly this
schema; ``tests/integration/test_db.py`` compares the two after ``upgrade()``.
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

__all__ = ["UtcDateTime", "aggregate_hosts", "aggregate_metadata", "aggregates", "allocations",
           "compute_nodes", "flavor_extra_specs", "flavors", "image_members", "image_tags",
           "images", "instance_actions", "instance_actions_events", "instances",
           "ip_allocations", "metadata", "networks", "port_security_groups", "ports",
           "projects", "quota_classes", "quotas", "security_group_rules", "security_groups",
           "server_group_members", "server_groups", "services", "subnets", "users"]

# Named constraints, so a later migration can drop or alter them by name on both backends
# (SQLite batch mode needs names to recreate a table).
metadata = sa.MetaData(naming_convention={
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
})


class UtcDateTime(sa.TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores ``timestamptz``. SQLite has no time zones: it stores the UTC wall
    time as text (fixed width, so text order is time order) and loses the offset, so
    values read back are tagged UTC again here. Naive values are taken as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        # SQLite's DATETIME would drop the offset silently; drop it on purpose instead.
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None,
                             dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _name() -> sa.String:
    return sa.String(255)


def _timestamps() -> list[sa.Column[datetime]]:
    return [sa.Column("created_at", UtcDateTime, nullable=False),
            sa.Column("updated_at", UtcDateTime)]


instances = sa.Table(
    "instances", metadata,
    sa.Column("uuid", sa.String(36), primary_key=True),
    sa.Column("display_name", _name(), nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("user_id", _name(), nullable=False),
    sa.Column("image_ref", _name(), nullable=False),
    # The flavor as it was at boot (all Flavor fields, extra_specs included): later
    # edits or deletion of the flavor must not change existing instances.
    sa.Column("flavorid", _name(), nullable=False),
    sa.Column("flavor", sa.JSON, nullable=False),
    sa.Column("vm_state", sa.String(32), nullable=False),
    sa.Column("task_state", sa.String(32)),
    sa.Column("power_state", sa.Integer, nullable=False, server_default="0"),
    sa.Column("host", _name()),
    sa.Column("node", _name()),
    sa.Column("availability_zone", _name()),
    sa.Column("key_name", _name()),
    sa.Column("metadata", sa.JSON, nullable=False),
    sa.Column("user_data", sa.Text),
    sa.Column("config_drive", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("reservation_id", _name(), nullable=False),
    sa.Column("launch_index", sa.Integer, nullable=False, server_default="0"),
    *_timestamps(),
    sa.Column("launched_at", UtcDateTime),
    sa.Column("terminated_at", UtcDateTime),
    sa.Column("deleted", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("deleted_at", UtcDateTime),
    # {code, message, details, created}: only the latest fault is kept (the API shows one).
    sa.Column("fault", sa.JSON),
    # Nova's lock: locked_by is "owner" or "admin" (who may unlock without the override).
    sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("locked_by", sa.String(16)),
    sa.Column("locked_reason", _name()),
    # Nova's access IPs (accessIPv4/accessIPv6), as the user set them.
    sa.Column("access_ip_v4", sa.String(39)),
    sa.Column("access_ip_v6", sa.String(39)),
    # The list query: a project's servers, newest first.
    sa.Index(None, "project_id", "created_at"),
    sa.Index(None, "host"),
    sa.Index(None, "reservation_id"),
    sa.Index(None, "deleted"),
)

flavors = sa.Table(
    "flavors", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flavorid", _name(), nullable=False, unique=True),
    sa.Column("name", _name(), nullable=False, unique=True),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("root_gb", sa.Integer, nullable=False),
    sa.Column("ephemeral_gb", sa.Integer, nullable=False, server_default="0"),
    sa.Column("swap_mb", sa.Integer, nullable=False, server_default="0"),
    sa.Column("is_public", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("rxtx_factor", sa.Float, nullable=False, server_default="1.0"),
    sa.Column("description", sa.Text),
    *_timestamps(),
)

flavor_extra_specs = sa.Table(
    "flavor_extra_specs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("flavor_id", sa.Integer, sa.ForeignKey("flavors.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("key", _name(), nullable=False),
    sa.Column("value", _name(), nullable=False),
    sa.UniqueConstraint("flavor_id", "key"),
)

images = sa.Table(
    "images", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", _name()),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("disk_format", sa.String(32)),
    sa.Column("container_format", sa.String(32)),
    sa.Column("size", sa.BigInteger),
    sa.Column("virtual_size", sa.BigInteger),
    sa.Column("checksum", sa.String(128)),
    sa.Column("min_disk", sa.Integer, nullable=False, server_default="0"),
    sa.Column("min_ram", sa.Integer, nullable=False, server_default="0"),
    sa.Column("visibility", sa.String(32), nullable=False),
    sa.Column("protected", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("owner", _name()),
    sa.Column("properties", sa.JSON, nullable=False),
    *_timestamps(),
    sa.Column("os_hash_algo", sa.String(64)),
    sa.Column("os_hash_value", sa.String(128)),
    sa.Column("os_hidden", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Index(None, "owner"),
)

# A tag is a row (not a JSON list) so "has every one of these tags" is an indexed query.
image_tags = sa.Table(
    "image_tags", metadata,
    sa.Column("image_id", sa.String(36), sa.ForeignKey("images.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("value", _name(), primary_key=True),
    sa.Index(None, "value"),
)

image_members = sa.Table(
    "image_members", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("image_id", sa.String(36), sa.ForeignKey("images.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("member", _name(), nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("image_id", "member"),
    # The list query: the images shared with a project.
    sa.Index(None, "member"),
)

compute_nodes = sa.Table(
    "compute_nodes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("host", _name(), nullable=False),
    sa.Column("node", _name(), nullable=False),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("local_gb", sa.Integer, nullable=False),
    # Usage is only ever changed by claim/release, in SQL (x_used = x_used + n), so
    # concurrent claims cannot lose each other's updates.
    sa.Column("vcpus_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("memory_mb_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("local_gb_used", sa.Integer, nullable=False, server_default="0"),
    sa.Column("running_vms", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cpu_allocation_ratio", sa.Float, nullable=False),
    sa.Column("ram_allocation_ratio", sa.Float, nullable=False),
    sa.Column("disk_allocation_ratio", sa.Float, nullable=False),
    sa.Column("reserved_vcpus", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reserved_memory_mb", sa.Integer, nullable=False, server_default="0"),
    sa.Column("reserved_disk_gb", sa.Integer, nullable=False, server_default="0"),
    sa.Column("hypervisor_type", sa.String(64), nullable=False, server_default="fake"),
    sa.Column("hypervisor_version", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cpu_info", sa.Text),
    # Bumped by every change to the row (claim, release, report): the scheduler's host
    # state cache keeps, per node, the newest generation it has seen.
    sa.Column("generation", sa.Integer, nullable=False, server_default="0"),
    # The guest types the node runs: [[arch, hypervisor type, vm mode], ...].
    sa.Column("supported_instances", sa.JSON),
    # Builds that failed here since the last one that succeeded (the build-failure weigher).
    sa.Column("failed_builds", sa.Integer, nullable=False, server_default="0"),
    *_timestamps(),
    sa.UniqueConstraint("host", "node"),
    sa.Index(None, "updated_at"),
)

services = sa.Table(
    "services", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("binary", _name(), nullable=False),
    sa.Column("host", _name(), nullable=False),
    sa.Column("topic", _name(), nullable=False),
    sa.Column("last_seen", UtcDateTime),
    sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("disabled_reason", _name()),
    *_timestamps(),
    sa.UniqueConstraint("binary", "host"),
    sa.Index(None, "updated_at"),
)

instance_actions = sa.Table(
    "instance_actions", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("instance_uuid", sa.String(36), sa.ForeignKey("instances.uuid"),
              nullable=False),
    sa.Column("action", _name(), nullable=False),
    sa.Column("request_id", _name(), nullable=False),
    sa.Column("user_id", _name(), nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("start_time", UtcDateTime, nullable=False),
    sa.Column("finish_time", UtcDateTime),
    sa.Column("message", _name()),
    # Every lookup is "this request's action on this instance" or "this instance's actions".
    sa.Index(None, "instance_uuid", "request_id"),
)

instance_actions_events = sa.Table(
    "instance_actions_events", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("action_id", sa.Integer,
              sa.ForeignKey("instance_actions.id", ondelete="CASCADE"), nullable=False),
    sa.Column("event", _name(), nullable=False),
    sa.Column("start_time", UtcDateTime, nullable=False),
    sa.Column("finish_time", UtcDateTime),
    sa.Column("result", sa.String(32)),
    sa.Column("traceback", sa.Text),
    sa.Column("host", _name()),
    # What the step decided, in plain words without host names (shown to everyone).
    sa.Column("details", sa.Text),
    # A scheduling step's alternate hosts, a JSON list of names (shown to admins).
    sa.Column("alternates", sa.JSON),
    sa.Index(None, "action_id"),
)

allocations = sa.Table(
    "allocations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    # No foreign key to instances: like placement's consumers, an allocation may be made
    # for an instance record another service has not written yet.
    sa.Column("instance_uuid", sa.String(36), nullable=False),
    sa.Column("compute_node_id", sa.Integer, sa.ForeignKey("compute_nodes.id"),
              nullable=False),
    sa.Column("vcpus", sa.Integer, nullable=False),
    sa.Column("memory_mb", sa.Integer, nullable=False),
    sa.Column("disk_gb", sa.Integer, nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("instance_uuid", "compute_node_id"),
    sa.Index(None, "compute_node_id"),
)


projects = sa.Table(
    "projects", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", _name(), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    *_timestamps(),
    sa.Column("domain_id", sa.String(64), nullable=False, server_default="default"),
)

users = sa.Table(
    "users", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", _name(), nullable=False, unique=True),
    sa.Column("default_project_id", sa.String(64), sa.ForeignKey("projects.id")),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    *_timestamps(),
    sa.Column("domain_id", sa.String(64), nullable=False, server_default="default"),
    sa.Column("password_hash", sa.String(255)),  # Argon2id, see strato.identity.passwords
    sa.Column("extra", sa.JSON),  # description, email, ...: Keystone's user extra
)

# Per-project quota limits (os-quota-sets): only the values set for the project; the
# others come from the default quota class or the configured defaults. Usage is never
# stored here: it is counted from the instances each time.
quotas = sa.Table(
    "quotas", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("resource", _name(), nullable=False),
    sa.Column("hard_limit", sa.Integer, nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("project_id", "resource"),
)

# Quota class limits (os-quota-class-sets); the "default" class replaces the configured
# defaults for every project.
quota_classes = sa.Table(
    "quota_classes", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("class_name", _name(), nullable=False),
    sa.Column("resource", _name(), nullable=False),
    sa.Column("hard_limit", sa.Integer, nullable=False),
    *_timestamps(),
    sa.UniqueConstraint("class_name", "resource"),
)

# Host aggregates (os-aggregates): named sets of hosts with metadata; the metadata key
# ``availability_zone`` puts the aggregate's hosts in that zone.
aggregates = sa.Table(
    "aggregates", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    sa.Column("name", _name(), nullable=False, unique=True),
    *_timestamps(),
)

aggregate_hosts = sa.Table(
    "aggregate_hosts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("aggregate_id", sa.Integer,
              sa.ForeignKey("aggregates.id", ondelete="CASCADE"), nullable=False),
    sa.Column("host", _name(), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("aggregate_id", "host"),
    sa.Index(None, "host"),
)

aggregate_metadata = sa.Table(
    "aggregate_metadata", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("aggregate_id", sa.Integer,
              sa.ForeignKey("aggregates.id", ondelete="CASCADE"), nullable=False),
    sa.Column("key", _name(), nullable=False),
    sa.Column("value", _name(), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("aggregate_id", "key"),
)

# Server groups (os-server-groups): a placement policy over their member instances.
server_groups = sa.Table(
    "server_groups", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("uuid", sa.String(36), nullable=False, unique=True),
    sa.Column("name", _name(), nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("user_id", _name(), nullable=False),
    sa.Column("policy", sa.String(32), nullable=False),
    sa.Column("rules", sa.JSON, nullable=False),
    *_timestamps(),
    sa.Index(None, "project_id"),
)

server_group_members = sa.Table(
    "server_group_members", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("group_id", sa.Integer,
              sa.ForeignKey("server_groups.id", ondelete="CASCADE"), nullable=False),
    # No foreign key to instances: members are added in the instances' own transaction,
    # and a deleted instance's membership goes with its soft delete.
    sa.Column("instance_uuid", sa.String(36), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.UniqueConstraint("group_id", "instance_uuid"),
    sa.Index(None, "instance_uuid"),
)

# --- the Network API (a Neutron v2 subset) -------------------------------------------

networks = sa.Table(
    "networks", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("name", _name(), nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("admin_state_up", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("mtu", sa.Integer, nullable=False, server_default="1500"),
    sa.Column("status", sa.String(16), nullable=False, server_default="ACTIVE"),
    sa.Column("description", _name(), nullable=False),
    *_timestamps(),
    sa.Index(None, "project_id"),
)

subnets = sa.Table(
    "subnets", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("network_id", sa.String(36), sa.ForeignKey("networks.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("name", _name(), nullable=False),
    sa.Column("ip_version", sa.Integer, nullable=False),
    sa.Column("cidr", sa.String(64), nullable=False),
    sa.Column("gateway_ip", sa.String(64)),
    # [{"start": ..., "end": ...}], [ip, ...], [{"destination": ..., "nexthop": ...}]
    sa.Column("allocation_pools", sa.JSON, nullable=False),
    sa.Column("dns_nameservers", sa.JSON, nullable=False),
    sa.Column("host_routes", sa.JSON, nullable=False),
    sa.Column("enable_dhcp", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("description", _name(), nullable=False),
    *_timestamps(),
    sa.Index(None, "network_id"),
)

ports = sa.Table(
    "ports", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("network_id", sa.String(36), sa.ForeignKey("networks.id"), nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("name", _name(), nullable=False),
    # Unique per network, as in Neutron.
    sa.Column("mac_address", sa.String(32), nullable=False),
    sa.Column("admin_state_up", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("status", sa.String(16), nullable=False, server_default="DOWN"),
    sa.Column("device_id", _name(), nullable=False),
    sa.Column("device_owner", _name(), nullable=False),
    sa.Column("binding_host_id", _name(), nullable=False),
    sa.Column("binding_vif_type", sa.String(64), nullable=False, server_default="unbound"),
    sa.Column("binding_vif_details", sa.JSON, nullable=False),
    sa.Column("description", _name(), nullable=False),
    # Made by a build for its instance, so deleted with it (a user's port is unbound).
    sa.Column("auto_delete", sa.Boolean, nullable=False, server_default=sa.false()),
    *_timestamps(),
    sa.UniqueConstraint("network_id", "mac_address"),
    sa.Index(None, "device_id"),
    sa.Index(None, "project_id"),
    sa.Index(None, "binding_host_id"),
)

# One row per fixed IP of a port. The unique constraint is IPAM's guarantee: two
# concurrent allocations of one address cannot both commit.
ip_allocations = sa.Table(
    "ip_allocations", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("port_id", sa.String(36), sa.ForeignKey("ports.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("subnet_id", sa.String(36), sa.ForeignKey("subnets.id"), nullable=False),
    sa.Column("ip_address", sa.String(64), nullable=False),
    sa.UniqueConstraint("subnet_id", "ip_address"),
    sa.Index(None, "port_id"),
)

security_groups = sa.Table(
    "security_groups", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("name", _name(), nullable=False),
    sa.Column("description", _name(), nullable=False),
    *_timestamps(),
    sa.Index(None, "project_id"),
)

security_group_rules = sa.Table(
    "security_group_rules", metadata,
    sa.Column("id", sa.String(36), primary_key=True),
    sa.Column("security_group_id", sa.String(36),
              sa.ForeignKey("security_groups.id", ondelete="CASCADE"), nullable=False),
    sa.Column("project_id", _name(), nullable=False),
    sa.Column("direction", sa.String(16), nullable=False),
    sa.Column("ethertype", sa.String(8), nullable=False),
    sa.Column("protocol", sa.String(40)),
    sa.Column("port_range_min", sa.Integer),
    sa.Column("port_range_max", sa.Integer),
    sa.Column("remote_ip_prefix", sa.String(64)),
    sa.Column("remote_group_id", sa.String(36),
              sa.ForeignKey("security_groups.id", ondelete="CASCADE")),
    sa.Column("description", _name(), nullable=False),
    sa.Column("created_at", UtcDateTime, nullable=False),
    sa.Index(None, "security_group_id"),
)

port_security_groups = sa.Table(
    "port_security_groups", metadata,
    sa.Column("port_id", sa.String(36), sa.ForeignKey("ports.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("security_group_id", sa.String(36), sa.ForeignKey("security_groups.id"),
              primary_key=True),
    sa.Index(None, "security_group_id"),
)

# A user's named SSH public keys (Nova's os-keypairs); names are unique per user.
key_pairs = sa.Table(
    "key_pairs", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("user_id", _name(), nullable=False),
    sa.Column("name", _name(), nullable=False),
    sa.Column("fingerprint", _name(), nullable=False),
    sa.Column("public_key", sa.Text, nullable=False),
    sa.Column("type", sa.String(16), nullable=False, server_default="ssh"),
    *_timestamps(),
    sa.UniqueConstraint("user_id", "name"),
)

# Identity (Keystone v3 subset): domains, roles, role assignments on projects, and the
# audit ids of revoked tokens (kept until the token would have expired anyway).
domains = sa.Table(
    "domains", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", _name(), nullable=False, unique=True),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

roles = sa.Table(
    "roles", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("name", _name(), nullable=False, unique=True),
    sa.Column("created_at", UtcDateTime, nullable=False),
)

role_assignments = sa.Table(
    "role_assignments", metadata,
    sa.Column("user_id", sa.String(64), sa.ForeignKey("users.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Column("role_id", sa.String(64), sa.ForeignKey("roles.id", ondelete="CASCADE"),
              primary_key=True),
    sa.Index(None, "project_id"),
)

revoked_tokens = sa.Table(
    "revoked_tokens", metadata,
    sa.Column("audit_id", sa.String(64), primary_key=True),
    sa.Column("expires_at", UtcDateTime, nullable=False),
)
