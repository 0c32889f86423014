"""The one poller of the change counters (authgate.db.versions): every counter in one query, and
background writes that never hold a poll back. Changes come through a second database handle, as
from the CLI or another replica. On SQLite and on PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest
from sqlalchemy import event

from authgate.auth import accounts
from authgate.db import versions
from authgate.db.session import Database
from authgate.db.versions import VersionWatch

pytestmark = pytest.mark.anyio

#: Every counter's change reaches its listeners within this many seconds.
PROMISE = 1.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def dbs(database_url: str) -> AsyncIterator[tuple[Database, Database]]:
    db, other = Database(database_url), Database(database_url)
    await db.upgrade()
    try:
        yield db, other
    finally:
        await db.close()
        await other.close()


def _recorder(watch: VersionWatch, name: str) -> list[str]:
    calls: list[str] = []

    async def reload() -> None:
        calls.append(name)

    watch.watch(name, reload)
    return calls


async def test_one_query_reads_every_counter(dbs: tuple[Database, Database]) -> None:
    db, other = dbs
    watch = VersionWatch(db)
    seen = {name: _recorder(watch, name) for name in (versions.ACCOUNTS, versions.LIMITER_LOCKS, versions.SIGNING_KEYS)}
    await watch.poll_once()
    assert all(len(calls) == 1 for calls in seen.values()), "every listener loads once at start"
    await accounts.create_user(other, "alice", "x" * 60)
    async with other.session() as session:
        await versions.bump(session, versions.LIMITER_LOCKS)
    async with other.session() as session:
        await versions.bump(session, versions.SIGNING_KEYS)
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", record)
    try:
        await watch.poll_once()
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", record)
    assert len(statements) == 1 and "shared_versions" in statements[0]
    assert all(len(calls) == 2 for calls in seen.values()), "each moved counter reached its listener"
    await watch.poll_once()
    assert all(len(calls) == 2 for calls in seen.values()), "nothing moved, nothing reloaded"


async def test_a_stuck_background_write_does_not_hold_the_polls_back(dbs: tuple[Database, Database]) -> None:
    """A background write waiting on the database (a SQLite writer lock, a slow PostgreSQL) must not
    make the account cache, the locks and the keys stale: the promise rides on the polls."""
    db, other = dbs
    watch = VersionWatch(db)
    moved = _recorder(watch, versions.ACCOUNTS)
    stuck = anyio.Event()
    started = anyio.Event()

    async def blocked_write() -> None:
        started.set()
        await stuck.wait()

    watch.every(blocked_write)
    await watch.start()
    try:
        await started.wait()
        await accounts.create_user(other, "alice", "x" * 60)
        await anyio.sleep(PROMISE)
        assert watch.fresh
        assert len(moved) == 2, "the change reached the listener while the write was stuck"
    finally:
        stuck.set()
        await watch.stop()
