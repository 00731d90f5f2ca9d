"""What each compute node's hypervisor is: type, version and CPU/acceleration facts.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.add_column("compute_nodes", sa.Column("hypervisor_type", sa.String(64), nullable=False,
                                             server_default="fake"))
    op.add_column("compute_nodes", sa.Column("hypervisor_version", sa.Integer,
                                             nullable=False, server_default="0"))
    op.add_column("compute_nodes", sa.Column("cpu_info", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("compute_nodes") as batch:
        batch.drop_column("cpu_info")
        batch.drop_column("hypervisor_version")
        batch.drop_column("hypervisor_type")
