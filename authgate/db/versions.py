"""The change counters of shared state, and the one poller every process runs to learn of changes.

Accounts (users, teams, robots, refresh tokens), the login limiter's locks and the signing keys live
in the database and change rarely, whoever changes them: this process, the CLI, another worker or
replica. Each has a row in `shared_versions`, bumped in the transaction that changes it (`bump`,
or `account_change` for accounts), so a counter moves exactly when its change becomes visible.
Every process runs one `VersionWatch`: each `interval` it reads every row in one query and calls
the listeners of the names whose counter moved (the account cache, the limiter's locks, the key
ring). Account changes made through this process's own database handle also reach their listeners
at once, after the commit (`on_account_change`).

Why polled counters rather than PostgreSQL LISTEN/NOTIFY or SQLite's `data_version`: one mechanism
for both databases and any number of replicas, no connection kept open for LISTEN, and audit writes
(which move `data_version` many times a second) do not count as changes.

A listener's view is trusted only while the last poll that succeeded *started* less than
`trust_window` ago (`fresh`): a poll that began before a change cannot vouch for anything after it.
A reader that finds the view stale calls `refresh()`: one poll shared by every reader waiting at
that moment (and by the loop), not one database query per reader.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.db.models import SharedVersion
from authgate.db.session import Database
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

ACCOUNTS = "accounts"
LIMITER_LOCKS = "limiter_locks"
SIGNING_KEYS = "signing_keys"
POLICY = "policy"

#: Seconds between two polls, and how old the last good poll may be for the views to be trusted.
POLL_INTERVAL = 0.25
TRUST_WINDOW = 0.9

Listener = Callable[[], Awaitable[None]]

_local: weakref.WeakKeyDictionary[Database, list[Callable[[], None]]] = weakref.WeakKeyDictionary()


async def bump(session: AsyncSession, name: str) -> None:
    await session.execute(update(SharedVersion).where(SharedVersion.name == name)
                          .values(version=SharedVersion.version + 1))


def on_account_change(db: Database, listener: Callable[[], None]) -> Callable[[], None]:
    """Call `listener` after every account change committed through `db` in this process.
    Returns a function that removes it again."""
    listeners = _local.setdefault(db, [])
    listeners.append(listener)
    return lambda: listeners.remove(listener) if listener in listeners else None


@asynccontextmanager
async def account_change(db: Database) -> AsyncIterator[AsyncSession]:
    """A session whose commit also bumps the `accounts` counter; local listeners run after the commit."""
    async with db.session() as session:
        yield session
        await bump(session, ACCOUNTS)
    for listener in list(_local.get(db, ())):
        try:
            listener()
        except Exception:  # a listener must not turn a committed change into an error
            log.exception("account change listener failed")


async def read_versions(db: Database) -> dict[str, int]:
    """Every counter: one scan of a three-row table on a pooled connection."""
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(SharedVersion.name, SharedVersion.version))
        return {name: int(version) for name, version in rows}


class VersionWatch:
    """Polls the counters; `watch(name, reload)` calls `reload` at start and whenever `name` moved;
    `every(tick)` runs `tick` once per interval (background writes that ride on the same loop, in a
    task of their own so that a slow write never delays a poll)."""

    def __init__(self, db: Database, interval: float = POLL_INTERVAL, trust_window: float = TRUST_WINDOW) -> None:
        self.db = db
        self.interval = interval
        self.trust_window = trust_window
        self._listeners: dict[str, list[Listener]] = {}
        self._ticks: list[Listener] = []
        self._seen: dict[str, int] = {}
        self._checked_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[None] | None = None
        self._ticking: asyncio.Task[None] | None = None
        self._failing = False
        self._tick_failing = False

    def watch(self, name: str, reload: Listener) -> None:
        self._listeners.setdefault(name, []).append(reload)

    def every(self, tick: Listener) -> None:
        self._ticks.append(tick)

    @property
    def fresh(self) -> bool:
        return time.monotonic() - self._checked_at < self.trust_window

    async def poll_once(self) -> None:
        started = time.monotonic()
        versions = await read_versions(self.db)
        for name, listeners in self._listeners.items():
            if versions.get(name) != self._seen.get(name):
                for reload in listeners:
                    await reload()
                self._seen[name] = versions.get(name, 0)
        self._checked_at = max(self._checked_at, started)

    def _poll(self) -> asyncio.Task[None]:
        """The poll in flight, or a new one: never two at once, so listeners never run twice for one move."""
        if self._polling is None or self._polling.done():
            self._polling = asyncio.create_task(self.poll_once(), name="shared-versions-poll")
            self._polling.add_done_callback(lambda done: done.cancelled() or done.exception())
        return self._polling

    async def refresh(self) -> None:
        """Poll now, sharing the poll in flight if there is one; for readers that found the view stale.

        Why: on a saturated event loop (or a loaded machine) the loop can fall behind its trust
        window; every lookup then went to the database, 16 concurrent logins of one user 16 times,
        each an ORM query costing ~1 ms of CPU: the slower the loop, the more work it was given.
        One shared read of the counters costs one small scan, and if nothing moved, the views are
        trusted again. A failed read leaves them stale: the caller asks the database.
        """
        try:
            await asyncio.shield(self._poll())
        except asyncio.CancelledError:
            raise
        except Exception:  # logged by the loop when it persists; the caller asks the database
            pass

    async def start(self) -> None:
        await self.poll_once()
        self._task = asyncio.create_task(self._loop(), name="shared-versions-poller")

    async def stop(self) -> None:
        for task in (self._task, self._polling, self._ticking):
            if task is not None:
                await cancel_and_wait(task)
        self._task = self._polling = self._ticking = None
        for tick in self._ticks:  # the last background writes
            try:
                await tick()
            except Exception as exc:
                log.warning("shared state: a last background write failed: %s", exc)

    async def _ticks_once(self) -> None:
        for tick in self._ticks:
            try:
                await tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a success's reset, a "last used" time: only bookkeeping is late
                if not self._tick_failing:
                    log.warning("shared state: a background write failed (%s); said once until one succeeds", exc)
                self._tick_failing = True
            else:
                self._tick_failing = False

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._ticks and (self._ticking is None or self._ticking.done()):
                self._ticking = asyncio.create_task(self._ticks_once(), name="shared-versions-ticks")
            try:
                await asyncio.shield(self._poll())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._failing:
                    log.warning("shared state: cannot read the change counters (%s); asking the database "
                                "directly until it answers again", exc)
                self._failing = True
                continue
            if self._failing:
                log.info("shared state: the change counters answer again")
                self._failing = False
