"""Migrations apply cleanly on both databases and match the models."""

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext

from authgate.db.base import Base
from authgate.db.session import MIGRATIONS_DIR, sync_url, upgrade_schema


def test_upgrade_is_idempotent_and_matches_models(database_url: str) -> None:
    upgrade_schema(database_url)
    upgrade_schema(database_url)
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    engine.dispose()
    assert diff == []


def _counters(database_url: str) -> tuple[dict[str, int], list[str]]:
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT name, version FROM shared_versions")).all()
        tables = sa.inspect(connection).get_table_names()
    engine.dispose()
    return {name: int(version) for name, version in rows}, tables


def test_the_account_counter_moves_into_the_one_counter_table_and_back(database_url: str) -> None:
    """0011 carries the account counter's value into `shared_versions` (and its downgrade back)."""
    upgrade_schema(database_url, "0010_scale13")
    engine = sa.create_engine(sync_url(database_url))
    with engine.begin() as connection:
        connection.execute(sa.text("UPDATE account_version SET version = 7 WHERE id = 1"))
    engine.dispose()
    upgrade_schema(database_url, "0011_counters")
    counters, tables = _counters(database_url)
    assert counters == {"accounts": 7, "limiter_locks": 0, "signing_keys": 0}
    assert "account_version" not in tables

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    command.downgrade(config, "0010_scale13")
    counters, tables = _counters(database_url)
    assert counters == {"limiter_locks": 0, "signing_keys": 0}
    engine = sa.create_engine(sync_url(database_url))
    with engine.connect() as connection:
        assert connection.scalar(sa.text("SELECT version FROM account_version WHERE id = 1")) == 7
    engine.dispose()



def test_the_policy_counter_comes_and_goes_with_the_policy_table(database_url: str) -> None:
    upgrade_schema(database_url)
    counters, tables = _counters(database_url)
    assert counters["policy"] == 0 and "policy_sets" in tables
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", sync_url(database_url).replace("%", "%%"))
    command.downgrade(config, "0011_counters")
    counters, tables = _counters(database_url)
    assert "policy" not in counters and "policy_sets" not in tables
