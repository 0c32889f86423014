"""The account change counter: how every authgate process learns that users, teams, robots or
refresh tokens changed, whoever changed them (this process, the CLI, another replica).

Each change runs in `account_change(db)`, which bumps the single `account_version` row in the same
transaction, so the counter moves exactly when the change becomes visible. Processes poll the row
(`read_version`, one primary-key read; see authgate.auth.account_cache) instead of LISTEN/NOTIFY or
SQLite's `data_version`: one mechanism for both databases and any number of replicas, no dedicated
connection to keep alive, and audit writes (which change `data_version` many times a second) do not
count as account changes. Listeners in the same process are also told at once after the commit.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.db.models import AccountVersion
from authgate.db.session import Database

log = logging.getLogger(__name__)

_ROW = 1
_listeners: weakref.WeakKeyDictionary[Database, list[Callable[[], None]]] = weakref.WeakKeyDictionary()


def on_change(db: Database, listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every account change committed through `db` in this process.
    Returns a function that removes it again."""
    listeners = _listeners.setdefault(db, [])
    listeners.append(listener)
    return lambda: listeners.remove(listener) if listener in listeners else None


async def bump(session: AsyncSession) -> None:
    await session.execute(update(AccountVersion).where(AccountVersion.id == _ROW)
                          .values(version=AccountVersion.version + 1))


@asynccontextmanager
async def account_change(db: Database) -> AsyncIterator[AsyncSession]:
    """A session whose commit also bumps the account version; local listeners run after the commit."""
    async with db.session() as session:
        yield session
        await bump(session)
    for listener in list(_listeners.get(db, ())):
        try:
            listener()
        except Exception:  # a listener must not turn a committed change into an error
            log.exception("account change listener failed")


async def read_version(db: Database) -> int:
    """The current version: one primary-key read on a pooled connection."""
    async with db.engine.connect() as connection:
        version = await connection.scalar(select(AccountVersion.version).where(AccountVersion.id == _ROW))
        return int(version or 0)
