"""Fixtures shared by several e2e files."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.pair import start_pair
from tests.support.processes import AuthgateServer

Pair = tuple[AuthgateServer, AuthgateServer]


@pytest.fixture(scope="session")
def _pairs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Pair]]:
    """The pairs started so far, one per database, stopped when the session ends."""
    started: dict[str, Pair] = {}
    yield started
    for servers in started.values():
        for server in servers:
            server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def pair(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, _pairs: dict[str, Pair]) -> Pair:
    """Two processes on one database (tests/support/pair.py), started on first use; each test runs
    once on SQLite and once on PostgreSQL."""
    database: str = request.param
    if database not in _pairs:
        url = request.getfixturevalue("postgres").create_database() if database == "postgresql" else None
        _pairs[database] = start_pair(tmp_path_factory, database, url)
    return _pairs[database]
