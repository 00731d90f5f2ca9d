"""Identity administration: the identity revision (one row every identity write moves
on, so API processes can cache validated tokens and still see every change at once) and
per-user token revocations (a password change or a disable refuses the user's tokens
issued before it).

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

_TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "identity_revision",
        sa.Column("id", sa.Integer, autoincrement=False, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_identity_revision"),
    )
    op.create_table(
        "user_token_revocations",
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("issued_before", _TS, nullable=False),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_token_revocations"),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE",
                                name="fk_user_token_revocations_user_id_users"),
    )
    revisions = sa.table("identity_revision", sa.column("id"), sa.column("revision"))
    op.bulk_insert(revisions, [{"id": 1, "revision": 1}])


def downgrade() -> None:
    op.drop_table("user_token_revocations")
    op.drop_table("identity_revision")
