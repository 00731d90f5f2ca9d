"""The Network API (a Neutron v2 subset): networks, subnets, ports with their fixed IPs,
security groups and their rules.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def _timestamps() -> list[sa.Column[object]]:
    return [sa.Column("created_at", _TS, nullable=False), sa.Column("updated_at", _TS)]


def upgrade() -> None:
    op.create_table(
        "networks",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("shared", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("admin_state_up", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("mtu", sa.Integer, nullable=False, server_default="1500"),
        sa.Column("status", sa.String(16), nullable=False, server_default="ACTIVE"),
        sa.Column("description", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_networks"),
        sa.Index("ix_networks_project_id", "project_id"),
    )
    op.create_table(
        "subnets",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("network_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("ip_version", sa.Integer, nullable=False),
        sa.Column("cidr", sa.String(64), nullable=False),
        sa.Column("gateway_ip", sa.String(64)),
        sa.Column("allocation_pools", sa.JSON, nullable=False),
        sa.Column("dns_nameservers", sa.JSON, nullable=False),
        sa.Column("host_routes", sa.JSON, nullable=False),
        sa.Column("enable_dhcp", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("description", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_subnets"),
        sa.ForeignKeyConstraint(["network_id"], ["networks.id"], ondelete="CASCADE",
                                name="fk_subnets_network_id_networks"),
        sa.Index("ix_subnets_network_id", "network_id"),
    )
    op.create_table(
        "ports",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("network_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("mac_address", sa.String(32), nullable=False),
        sa.Column("admin_state_up", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("status", sa.String(16), nullable=False, server_default="DOWN"),
        sa.Column("device_id", sa.String(255), nullable=False),
        sa.Column("device_owner", sa.String(255), nullable=False),
        sa.Column("binding_host_id", sa.String(255), nullable=False),
        sa.Column("binding_vif_type", sa.String(64), nullable=False, server_default="unbound"),
        sa.Column("binding_vif_details", sa.JSON, nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("auto_delete", sa.Boolean, nullable=False, server_default=sa.false()),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_ports"),
        sa.ForeignKeyConstraint(["network_id"], ["networks.id"],
                                name="fk_ports_network_id_networks"),
        sa.UniqueConstraint("network_id", "mac_address",
                            name="uq_ports_network_id_mac_address"),
        sa.Index("ix_ports_device_id", "device_id"),
        sa.Index("ix_ports_project_id", "project_id"),
        sa.Index("ix_ports_binding_host_id", "binding_host_id"),
    )
    op.create_table(
        "ip_allocations",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("port_id", sa.String(36), nullable=False),
        sa.Column("subnet_id", sa.String(36), nullable=False),
        sa.Column("ip_address", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_ip_allocations"),
        sa.ForeignKeyConstraint(["port_id"], ["ports.id"], ondelete="CASCADE",
                                name="fk_ip_allocations_port_id_ports"),
        sa.ForeignKeyConstraint(["subnet_id"], ["subnets.id"],
                                name="fk_ip_allocations_subnet_id_subnets"),
        sa.UniqueConstraint("subnet_id", "ip_address",
                            name="uq_ip_allocations_subnet_id_ip_address"),
        sa.Index("ix_ip_allocations_port_id", "port_id"),
    )
    op.create_table(
        "security_groups",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        *_timestamps(),
        sa.PrimaryKeyConstraint("id", name="pk_security_groups"),
        sa.Index("ix_security_groups_project_id", "project_id"),
    )
    op.create_table(
        "security_group_rules",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("security_group_id", sa.String(36), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("ethertype", sa.String(8), nullable=False),
        sa.Column("protocol", sa.String(40)),
        sa.Column("port_range_min", sa.Integer),
        sa.Column("port_range_max", sa.Integer),
        sa.Column("remote_ip_prefix", sa.String(64)),
        sa.Column("remote_group_id", sa.String(36)),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_security_group_rules"),
        sa.ForeignKeyConstraint(
            ["security_group_id"], ["security_groups.id"], ondelete="CASCADE",
            name="fk_security_group_rules_security_group_id_security_groups"),
        sa.ForeignKeyConstraint(
            ["remote_group_id"], ["security_groups.id"], ondelete="CASCADE",
            name="fk_security_group_rules_remote_group_id_security_groups"),
        sa.Index("ix_security_group_rules_security_group_id", "security_group_id"),
    )
    op.create_table(
        "port_security_groups",
        sa.Column("port_id", sa.String(36), nullable=False),
        sa.Column("security_group_id", sa.String(36), nullable=False),
        sa.PrimaryKeyConstraint("port_id", "security_group_id",
                                name="pk_port_security_groups"),
        sa.ForeignKeyConstraint(["port_id"], ["ports.id"], ondelete="CASCADE",
                                name="fk_port_security_groups_port_id_ports"),
        sa.ForeignKeyConstraint(
            ["security_group_id"], ["security_groups.id"],
            name="fk_port_security_groups_security_group_id_security_groups"),
        sa.Index("ix_port_security_groups_security_group_id", "security_group_id"),
    )


def downgrade() -> None:
    for table in ("port_security_groups", "security_group_rules", "security_groups",
                  "ip_allocations", "ports", "subnets", "networks"):
        op.drop_table(table)
