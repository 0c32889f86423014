"""The login limiter's counters shared through the database, seen from two apps on one database
(in-process; tests/e2e/test_shared_state.py does the same with two `authgate serve` processes), and
what the hot path pays for them: nothing, when a login costs no hash."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest
from sqlalchemy import event

from authgate.auth import accounts
from authgate.auth.services import auth_of
from authgate.db.session import Database
from tests.api.token_support import add_user, basic, token_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@contextmanager
def limiter_statements(db: Database) -> Iterator[list[str]]:
    """SQL statements on the limiter's tables while the block runs."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if "limiter_" in statement:
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)


async def test_a_login_that_costs_no_hash_costs_the_limiter_no_database_round_trip(
        tmp_path: Path, database_url: str) -> None:
    async with token_app(tmp_path, database_url) as (client, resources, _):
        await add_user(resources, "alice", "alice-pw")
        secret = await accounts.create_robot(resources.db, "ci", None)
        assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200  # the hash
        await anyio.sleep(1.5)  # the first success's background writes are done
        with limiter_statements(resources.db) as statements:
            for _ in range(20):
                assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200
                assert (await client.get("/token", headers=basic("robot+ci", secret))).status_code == 200
        assert statements == [], "cached logins and robots asked the limiter's tables"
        with limiter_statements(resources.db) as statements:
            assert (await client.get("/token", headers=basic("alice", "wrong"))).status_code == 401
        assert any("INSERT INTO limiter_events" in s for s in statements), "a failure is counted in the database"


async def test_a_lock_made_by_one_app_refuses_a_cached_login_on_the_other(tmp_path: Path, database_url: str) -> None:
    async with token_app(tmp_path, database_url) as (first, resources, _), \
            token_app(tmp_path, database_url) as (second, _, _):
        await add_user(resources, "alice", "alice-pw")
        # The second app checks alice's password once: from now on it answers from memory, no hash.
        assert (await second.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200
        for i in range(10):
            assert (await first.get("/token", headers=basic("alice", f"guess-{i}"))).status_code == 401
        await anyio.sleep(1.0)  # the lock reaches every process within a second (a poll every 0.25 s)
        for client in (second, first):
            refused = await client.get("/token", headers=basic("alice", "alice-pw"))
            assert refused.status_code == 429, "the lock holds on both apps, the cached password too"
            assert "authgate user unlock alice" in refused.json()["errors"][0]["message"]


async def test_guesses_alternating_between_two_apps_are_counted_together(tmp_path: Path, database_url: str) -> None:
    async with token_app(tmp_path, database_url) as (first, resources, _), \
            token_app(tmp_path, database_url) as (second, _, _):
        await add_user(resources, "alice", "alice-pw")
        for i in range(10):  # five on each: each app alone would have allowed ten
            client = first if i % 2 else second
            assert (await client.get("/token", headers=basic("alice", f"guess-{i}"))).status_code == 401
        for client in (first, second):
            assert (await client.get("/token", headers=basic("alice", "alice-pw"))).status_code == 429


async def test_a_success_resets_only_the_failures_counted_before_it(tmp_path: Path, database_url: str) -> None:
    # A cached login's reset of its pair is written in the background, up to a second later: it used to
    # delete every failure of the pair, guesses the other app counted after the success among them.
    async with token_app(tmp_path, database_url) as (first, resources, _), \
            token_app(tmp_path, database_url) as (second, second_resources, _):
        await add_user(resources, "alice", "alice-pw")
        assert (await second.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200  # hashed
        assert (await second.get("/token", headers=basic("alice", "alice-pw"))).status_code == 200  # cached
        for i in range(6):
            assert (await first.get("/token", headers=basic("alice", f"guess-{i}"))).status_code == 401
        await auth_of(second_resources).limiter.store.flush()  # the cached login's reset, written now
        statuses = [(await first.get("/token", headers=basic("alice", f"guess-{i}"))).status_code
                    for i in range(6, 11)]
        assert statuses == [401, 401, 401, 401, 429], "the six guesses after the success still count"
