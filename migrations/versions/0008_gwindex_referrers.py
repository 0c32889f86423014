"""gateway_referrers: the referrers index the gateway keeps for an upstream without a referrers API

Revision ID: 0008_gwindex
Revises: 0007_hotpath
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_gwindex"
down_revision: str | None = "0007_hotpath"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_referrers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=False),
        sa.Column("subject", sa.String(length=160), nullable=False),
        sa.Column("media_type", sa.String(length=255), nullable=False),
        sa.Column("artifact_type", sa.Text(), nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("annotations", sa.JSON(), nullable=True),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_referrers")),
        sa.UniqueConstraint("repository", "digest", name=op.f("uq_gateway_referrers_repository")),
    )
    op.create_index("ix_gateway_referrers_subject", "gateway_referrers", ["repository", "subject"])


def downgrade() -> None:
    op.drop_index("ix_gateway_referrers_subject", table_name="gateway_referrers")
    op.drop_table("gateway_referrers")
