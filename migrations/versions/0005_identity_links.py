"""identity: links between users and the OpenID provider that vouches for them (device login)

Revision ID: 0005_identity
Revises: 0004_harden_core
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0005_identity"
down_revision: str | None = "0004_harden_core"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "identity_links",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=64), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=False),
        sa.Column("sealed_refresh_token", sa.Text(), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_identity_links_user_id_users"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_identity_links")),
        sa.UniqueConstraint("source", "subject", name=op.f("uq_identity_links_source")),
        sa.UniqueConstraint("user_id", name=op.f("uq_identity_links_user_id")),
    )


def downgrade() -> None:
    op.drop_table("identity_links")
