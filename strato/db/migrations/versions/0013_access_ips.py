"""Nova's access IPs: the ``accessIPv4``/``accessIPv6`` a server was created (or updated)
with, shown in its view.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-08
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision: str | None = "0012"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    # Nova's IPAddress columns: String(39), long enough for any IPv6 address.
    op.add_column("instances", sa.Column("access_ip_v4", sa.String(39)))
    op.add_column("instances", sa.Column("access_ip_v6", sa.String(39)))


def downgrade() -> None:
    # SQLite drops columns only by recreating the table: batch mode does that.
    with op.batch_alter_table("instances") as batch:
        batch.drop_column("access_ip_v6")
        batch.drop_column("access_ip_v4")
