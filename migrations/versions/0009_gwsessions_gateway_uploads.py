"""gateway_uploads: gateway upload sessions any replica or worker can continue

Revision ID: 0009_gwsessions
Revises: 0008_gwindex
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_gwsessions"
down_revision: str | None = "0008_gwindex"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "gateway_uploads",
        sa.Column("upload_id", sa.String(length=128), nullable=False),
        sa.Column("repository", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=320), nullable=False),
        sa.Column("location", sa.Text(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("algorithm", sa.String(length=16), nullable=False),
        sa.Column("digest", sa.String(length=160), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("upload_id", name=op.f("pk_gateway_uploads")),
    )
    op.create_index(op.f("ix_gateway_uploads_owner"), "gateway_uploads", ["owner"])
    op.create_index(op.f("ix_gateway_uploads_updated_at"), "gateway_uploads", ["updated_at"])


def downgrade() -> None:
    op.drop_index(op.f("ix_gateway_uploads_updated_at"), table_name="gateway_uploads")
    op.drop_index(op.f("ix_gateway_uploads_owner"), table_name="gateway_uploads")
    op.drop_table("gateway_uploads")
