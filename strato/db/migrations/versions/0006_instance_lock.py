"""Nova's server lock: whether an instance is locked, by whom, and why.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("instances", sa.Column("locked", sa.Boolean, nullable=False,
                                         server_default=sa.false()))
    op.add_column("instances", sa.Column("locked_by", sa.String(16)))
    op.add_column("instances", sa.Column("locked_reason", sa.String(255)))


def downgrade() -> None:
    # SQLite drops columns only by recreating the table: batch mode does that.
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("locked_reason")
        batch.drop_column("locked_by")
        batch.drop_column("locked")
