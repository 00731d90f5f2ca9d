"""Instance-action events say what they decided: ``details`` (plain words, no host
names, for everyone) and ``alternates`` (a scheduling step's alternate hosts, a JSON
list, for admins).

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-23
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision: str | None = "0011"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("instance_actions_events", sa.Column("details", sa.Text))
    op.add_column("instance_actions_events", sa.Column("alternates", sa.JSON))


def downgrade() -> None:
    # SQLite drops columns only by recreating the table: batch mode does that.
    with op.batch_alter_table("instance_actions_events") as batch:
        batch.drop_column("alternates")
        batch.drop_column("details")
