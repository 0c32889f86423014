"""audit: filter indexes ending in seq (pages are by seq), source_id for deduplicating notifications

Revision ID: 0002_audit
Revises: 0001
Create Date: 2026-11-29
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_audit"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source_id", sa.String(length=128), nullable=True))
        batch_op.drop_index("ix_audit_events_action_time")
        batch_op.drop_index("ix_audit_events_actor_time")
        batch_op.drop_index("ix_audit_events_repository_time")
        batch_op.create_index("ix_audit_events_action_seq", ["action", "seq"], unique=False)
        batch_op.create_index("ix_audit_events_actor_seq", ["actor_name", "seq"], unique=False)
        batch_op.create_index("ix_audit_events_repository_seq", ["repository", "seq"], unique=False)
        batch_op.create_index(batch_op.f("ix_audit_events_source_id"), ["source_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_events_source_id"))
        batch_op.drop_index("ix_audit_events_repository_seq")
        batch_op.drop_index("ix_audit_events_actor_seq")
        batch_op.drop_index("ix_audit_events_action_seq")
        batch_op.create_index("ix_audit_events_repository_time", ["repository", "time"], unique=False)
        batch_op.create_index("ix_audit_events_actor_time", ["actor_name", "time"], unique=False)
        batch_op.create_index("ix_audit_events_action_time", ["action", "time"], unique=False)
        batch_op.drop_column("source_id")
