"""Identity for Keystone v3 tokens: domains (with ``default``), password hashes, roles,
role assignments and revoked tokens. Existing projects and users join the default
domain; an existing ``admin`` user gets every default role on the ``admin`` project.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)
_ROLES = ("admin", "member", "reader")


def upgrade() -> None:
    _create_tables()
    for table in ("projects", "users"):
        op.add_column(table, sa.Column("domain_id", sa.String(64), nullable=False,
                                       server_default="default"))
    op.add_column("users", sa.Column("password_hash", sa.String(255)))
    _backfill()


def _create_tables() -> None:
    op.create_table(
        "domains",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_domains"),
        sa.UniqueConstraint("name", name="uq_domains_name"),
    )
    op.create_table(
        "roles",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_roles"),
        sa.UniqueConstraint("name", name="uq_roles_name"),
    )
    op.create_table(
        "role_assignments",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("role_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "project_id", "role_id",
                                name="pk_role_assignments"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_role_assignments_user_id_users"),
        sa.ForeignKeyConstraint(["project_id"], ["projects.id"], ondelete="CASCADE",
                                name="fk_role_assignments_project_id_projects"),
        sa.ForeignKeyConstraint(["role_id"], ["roles.id"], ondelete="CASCADE",
                                name="fk_role_assignments_role_id_roles"),
        sa.Index("ix_role_assignments_project_id", "project_id"),
    )
    op.create_table(
        "revoked_tokens",
        sa.Column("audit_id", sa.String(64), nullable=False),
        sa.Column("expires_at", _TS, nullable=False),
        sa.PrimaryKeyConstraint("audit_id", name="pk_revoked_tokens"),
    )


def _backfill() -> None:
    now = datetime.now(UTC)
    if op.get_bind().dialect.name == "sqlite":  # as strato.db.tables.UtcDateTime stores it
        now = now.replace(tzinfo=None)
    domains = sa.table("domains", sa.column("id"), sa.column("name"),
                       sa.column("description"), sa.column("enabled"),
                       sa.column("created_at", _TS))
    op.bulk_insert(domains, [{"id": "default", "name": "Default", "enabled": True,
                              "description": "The default domain", "created_at": now}])
    roles = sa.table("roles", sa.column("id"), sa.column("name"),
                     sa.column("created_at", _TS))
    op.bulk_insert(roles, [{"id": uuid.uuid4().hex, "name": name, "created_at": now}
                           for name in _ROLES])
    op.execute(
        "INSERT INTO role_assignments (user_id, project_id, role_id) "
        "SELECT u.id, p.id, r.id FROM users u, projects p, roles r "
        "WHERE u.name = 'admin' AND p.name = 'admin'")


def downgrade() -> None:
    op.drop_column("users", "password_hash")
    for table in ("users", "projects"):
        op.drop_column(table, "domain_id")
    for table in ("revoked_tokens", "role_assignments", "roles", "domains"):
        op.drop_table(table)
