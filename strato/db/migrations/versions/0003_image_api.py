"""The Glance v2 subset: image hashes and hidden flag, tags, members.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("images", sa.Column("os_hash_algo", sa.String(64)))
    op.add_column("images", sa.Column("os_hash_value", sa.String(128)))
    op.add_column("images", sa.Column("os_hidden", sa.Boolean, nullable=False,
                                      server_default=sa.false()))
    op.create_table(
        "image_tags",
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.PrimaryKeyConstraint("image_id", "value", name="pk_image_tags"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE",
                                name="fk_image_tags_image_id_images"),
    )
    op.create_index("ix_image_tags_value", "image_tags", ["value"])
    op.create_table(
        "image_members",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("image_id", sa.String(36), nullable=False),
        sa.Column("member", sa.String(255), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("created_at", _TS, nullable=False),
        sa.Column("updated_at", _TS),
        sa.PrimaryKeyConstraint("id", name="pk_image_members"),
        sa.ForeignKeyConstraint(["image_id"], ["images.id"], ondelete="CASCADE",
                                name="fk_image_members_image_id_images"),
        sa.UniqueConstraint("image_id", "member", name="uq_image_members_image_id_member"),
    )
    op.create_index("ix_image_members_member", "image_members", ["member"])


def downgrade() -> None:
    op.drop_table("image_members")
    op.drop_table("image_tags")
    # SQLite drops columns only by recreating the table: batch mode does that.
    with op.batch_alter_table("images") as batch:
        batch.drop_column("os_hidden")
        batch.drop_column("os_hash_value")
        batch.drop_column("os_hash_algo")
