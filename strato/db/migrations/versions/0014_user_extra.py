"""Users keep what else they were given (``description``, ``email``, any other
property), as Keystone keeps a user's ``extra``: one JSON column.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision: str | None = "0013"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("users", sa.Column("extra", sa.JSON))


def downgrade() -> None:
    # SQLite drops columns only by recreating the table: batch mode does that.
    with op.batch_alter_table("users") as batch:
        batch.drop_column("extra")
