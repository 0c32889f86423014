"""limiter counters, signing keys and their change counters, shared by every process and replica

Revision ID: 0010_scale13
Revises: 0009_gwsessions
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_scale13"
down_revision: str | None = "0009_gwsessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "limiter_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_limiter_events")),
    )
    op.create_index("ix_limiter_events_key_at", "limiter_events", ["key", "at"])
    op.create_table(
        "limiter_marks",
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_limiter_marks")),
    )
    versions = op.create_table(
        "shared_versions",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_shared_versions")),
    )
    op.bulk_insert(versions, [{"name": "limiter_locks", "version": 0}, {"name": "signing_keys", "version": 0}])
    op.create_table(
        "signing_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kid", sa.String(length=64), nullable=False),
        sa.Column("algorithm", sa.String(length=8), nullable=False),
        sa.Column("sealed_private_key", sa.Text(), nullable=False),
        sa.Column("certificate_pem", sa.Text(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_signing_keys")),
        sa.UniqueConstraint("kid", name=op.f("uq_signing_keys_kid")),
    )


def downgrade() -> None:
    op.drop_table("signing_keys")
    op.drop_table("shared_versions")
    op.drop_table("limiter_marks")
    op.drop_index("ix_limiter_events_key_at", table_name="limiter_events")
    op.drop_table("limiter_events")
