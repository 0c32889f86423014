"""robots.generation: a robot disabled and enabled again does not get its old tokens back

Existing robots start at 0, the value their tokens' epoch was computed with, so an upgrade does not
log any robot out.

Revision ID: 0006_robot_generation
Revises: 0005_identity
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_robot_generation"
down_revision: str | None = "0005_identity"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("robots") as batch:
        batch.add_column(sa.Column("generation", sa.Integer(), nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("robots") as batch:
        batch.drop_column("generation")
