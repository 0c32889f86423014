"""Change counters of shared state other than accounts, and the one poller every process runs.

The login limiter's locks and the signing keys change rarely and must reach every process and
replica quickly. Each has a row in `shared_versions`, bumped in the transaction that changes it
(`bump`); `VersionWatch` reads every row in one primary-key scan each `interval` and calls the
listeners of the names whose counter moved. The same choice as the account counter
(authgate.db.changes), and for the same reasons: one mechanism for SQLite and PostgreSQL and any
number of replicas, no connection kept open for LISTEN.

A listener's view is trusted only while the last poll that succeeded *started* less than
`trust_window` ago (`fresh`): a poll that began before a change cannot vouch for anything after it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.db.models import SharedVersion
from authgate.db.session import Database
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

LIMITER_LOCKS = "limiter_locks"
SIGNING_KEYS = "signing_keys"

#: Seconds between two polls, and how old the last good poll may be for the views to be trusted.
POLL_INTERVAL = 0.25
TRUST_WINDOW = 0.9

Listener = Callable[[], Awaitable[None]]


async def bump(session: AsyncSession, name: str) -> None:
    await session.execute(update(SharedVersion).where(SharedVersion.name == name)
                          .values(version=SharedVersion.version + 1))


async def read_versions(db: Database) -> dict[str, int]:
    async with db.engine.connect() as connection:
        rows = await connection.execute(select(SharedVersion.name, SharedVersion.version))
        return {name: int(version) for name, version in rows}


class VersionWatch:
    """Polls the counters; `watch(name, reload)` calls `reload` at start and whenever `name` moved;
    `every(tick)` runs `tick` after each poll (background writes that ride on the same loop)."""

    def __init__(self, db: Database, interval: float = POLL_INTERVAL, trust_window: float = TRUST_WINDOW) -> None:
        self.db = db
        self.interval = interval
        self.trust_window = trust_window
        self._listeners: dict[str, list[Listener]] = {}
        self._ticks: list[Listener] = []
        self._seen: dict[str, int] = {}
        self._checked_at = float("-inf")
        self._task: asyncio.Task[None] | None = None
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
        self._checked_at = started

    async def start(self) -> None:
        await self.poll_once()
        self._task = asyncio.create_task(self._loop(), name="shared-versions-poller")

    async def stop(self) -> None:
        if self._task is not None:
            await cancel_and_wait(self._task)
            self._task = None
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
            except Exception as exc:  # a success's reset or trust lost: the limiter only brakes more
                if not self._tick_failing:
                    log.warning("shared state: a background write failed (%s); said once until one succeeds", exc)
                self._tick_failing = True
            else:
                self._tick_failing = False

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            await self._ticks_once()
            try:
                await self.poll_once()
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
