"""policy in the database: `authgate policy push` stores the checked files, every server follows the newest

Revision ID: 0012_policydb
Revises: 0011_counters
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012_policydb"
down_revision: str | None = "0011_counters"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "policy_sets",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("digest", sa.String(length=71), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("rules", sa.Integer(), nullable=False),
        sa.Column("pushed_by", sa.String(length=255), nullable=False),
        sa.Column("pushed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_sets")),
    )
    op.execute(sa.text("INSERT INTO shared_versions (name, version) VALUES ('policy', 0)"))


def downgrade() -> None:
    op.execute(sa.text("DELETE FROM shared_versions WHERE name = 'policy'"))
    op.drop_table("policy_sets")
