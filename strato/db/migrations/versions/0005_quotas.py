"""Per-project quota limits and quota class limits (Nova's os-quota-sets and
os-quota-class-sets). Usage is not stored: it is counted from the instances.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def _limits_table(name: str, owner: str) -> None:
    op.create_table(
        name,
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column(owner, sa.String(255), nullable=False),
        sa.Column("resource", sa.String(255), nullable=False),
        sa.Column("hard_limit", sa.Integer, nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS),
        sa.PrimaryKeyConstraint("id", name=f"pk_{name}"),
        sa.UniqueConstraint(owner, "resource", name=f"uq_{name}_{owner}_resource"),
    )


def upgrade() -> None:
    _limits_table("quotas", "project_id")
    _limits_table("quota_classes", "class_name")


def downgrade() -> None:
    op.drop_table("quota_classes")
    op.drop_table("quotas")
