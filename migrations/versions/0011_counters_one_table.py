"""one table of change counters: the account counter moves into shared_versions as `accounts`

One poller per process reads every counter in one query (authgate.db.versions). The value is carried
over: a counter never goes back to a number a process may already have seen.

Revision ID: 0011_counters
Revises: 0010_scale13
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_counters"
down_revision: str | None = "0010_scale13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(sa.text(
        "INSERT INTO shared_versions (name, version) "
        "SELECT 'accounts', COALESCE((SELECT version FROM account_version WHERE id = 1), 0)"
    ))
    op.drop_table("account_version")


def downgrade() -> None:
    table = op.create_table(
        "account_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_account_version")),
    )
    op.bulk_insert(table, [{"id": 1, "version": 0}])
    op.execute(sa.text(
        "UPDATE account_version SET version = "
        "COALESCE((SELECT version FROM shared_versions WHERE name = 'accounts'), 0)"
    ))
    op.execute(sa.text("DELETE FROM shared_versions WHERE name = 'accounts'"))
