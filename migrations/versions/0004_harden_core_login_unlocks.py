"""login_unlocks: `authgate user unlock` reaches the login limiter of every running process

Revision ID: 0004_harden_core
Revises: 0003_console_sessions
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = "0004_harden_core"
down_revision: str | None = "0003_console_sessions"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "login_unlocks",
        sa.Column("target", sa.String(length=320), nullable=False),
        sa.Column("unlocked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("target", name=op.f("pk_login_unlocks")),
    )


def downgrade() -> None:
    op.drop_table("login_unlocks")
