"""The scheduler issue: host aggregates (availability zones), server groups, and what
the scheduler's host-state cache needs from compute nodes (a generation bumped by every
change, an index on ``updated_at`` for "what changed since", the guest types a node
runs, and its count of recent build failures).

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("compute_nodes", sa.Column("generation", sa.Integer, nullable=False,
                                             server_default="0"))
    op.add_column("compute_nodes", sa.Column("supported_instances", sa.JSON))
    op.add_column("compute_nodes", sa.Column("failed_builds", sa.Integer, nullable=False,
                                             server_default="0"))
    op.create_index("ix_compute_nodes_updated_at", "compute_nodes", ["updated_at"])
    op.create_index("ix_services_updated_at", "services", ["updated_at"])
    op.create_table(
        "aggregates",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS),
        sa.PrimaryKeyConstraint("id", name="pk_aggregates"),
        sa.UniqueConstraint("uuid", name="uq_aggregates_uuid"),
        sa.UniqueConstraint("name", name="uq_aggregates_name"),
    )
    op.create_table(
        "aggregate_hosts",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("aggregate_id", sa.Integer, nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aggregate_hosts"),
        sa.ForeignKeyConstraint(["aggregate_id"], ["aggregates.id"], ondelete="CASCADE",
                                name="fk_aggregate_hosts_aggregate_id_aggregates"),
        sa.UniqueConstraint("aggregate_id", "host", name="uq_aggregate_hosts_aggregate_id_host"),
        sa.Index("ix_aggregate_hosts_host", "host"),
    )
    op.create_table(
        "aggregate_metadata",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("aggregate_id", sa.Integer, nullable=False),
        sa.Column("key", sa.String(255), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_aggregate_metadata"),
        sa.ForeignKeyConstraint(["aggregate_id"], ["aggregates.id"], ondelete="CASCADE",
                                name="fk_aggregate_metadata_aggregate_id_aggregates"),
        sa.UniqueConstraint("aggregate_id", "key", name="uq_aggregate_metadata_aggregate_id_key"),
    )
    op.create_table(
        "server_groups",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("uuid", sa.String(36), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("project_id", sa.String(255), nullable=False),
        sa.Column("user_id", sa.String(255), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("rules", sa.JSON, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS),
        sa.PrimaryKeyConstraint("id", name="pk_server_groups"),
        sa.UniqueConstraint("uuid", name="uq_server_groups_uuid"),
        sa.Index("ix_server_groups_project_id", "project_id"),
    )
    op.create_table(
        "server_group_members",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("group_id", sa.Integer, nullable=False),
        sa.Column("instance_uuid", sa.String(36), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_server_group_members"),
        sa.ForeignKeyConstraint(["group_id"], ["server_groups.id"], ondelete="CASCADE",
                                name="fk_server_group_members_group_id_server_groups"),
        sa.UniqueConstraint("group_id", "instance_uuid",
                            name="uq_server_group_members_group_id_instance_uuid"),
        sa.Index("ix_server_group_members_instance_uuid", "instance_uuid"),
    )


def downgrade() -> None:
    op.drop_table("server_group_members")
    op.drop_table("server_groups")
    op.drop_table("aggregate_metadata")
    op.drop_table("aggregate_hosts")
    op.drop_table("aggregates")
    op.drop_index("ix_services_updated_at", "services")
    op.drop_index("ix_compute_nodes_updated_at", "compute_nodes")
    with op.batch_alter_table("compute_nodes") as batch:
        batch.drop_column("failed_builds")
        batch.drop_column("supported_instances")
        batch.drop_column("generation")
