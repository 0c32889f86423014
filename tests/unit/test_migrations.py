"""Migrations apply cleanly on both databases and match the models."""

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from authgate.db.base import Base
from authgate.db.session import sync_url, upgrade_schema


def test_upgrade_is_idempotent_and_matches_models(database_url: str) -> None:
    upgrade_schema(database_url)
    upgrade_schema(database_url)
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []
