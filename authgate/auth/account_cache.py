"""`CachedAccounts`: the accounts a request needs, from memory, never older than one second.

Why: a `docker pull` of an up-to-date image, every layer `HEAD` of a push and every CI job's
`/token` ask the same few accounts again and again; a database round trip for each made the
database (and aiosqlite's worker thread) the bottleneck of every small request.

The promise kept: disabling a user, changing a password, removing a team member, disabling a robot
or revoking a refresh token stops the next request within one second, wherever the change was made.
How: every account change bumps a counter row in its own transaction (authgate.db.changes); this
process polls that row every `POLL_INTERVAL` and drops everything it cached when the counter moved
(changes made through this process's own database handle drop it at once). And the cache is only
trusted while its last successful poll *started* less than `TRUST_WINDOW` ago: a poll that started
before a change cannot vouch for anything after it, so if polling stalls or the database is
unreachable, lookups go to the database instead of answering from a cache that may be stale.

A load that races a drop is not stored (the epoch check), so a row read just before a change
cannot land in the cache just after it was emptied.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from authgate.auth.account_store import TOUCH_INTERVAL, DatabaseAccounts, RefreshRecord, RobotRecord, UserRecord
from authgate.db import changes
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

#: Seconds between two reads of the change counter (one primary-key read each).
POLL_INTERVAL = 0.25
#: The cache answers only while its last successful poll started less than this many seconds ago.
TRUST_WINDOW = 0.9
#: Entries per kind (users, robots, refresh tokens); the least recently used go first.
MAX_ENTRIES = 50_000

_V = TypeVar("_V")
_MISSING = object()


class _Lru(OrderedDict[str, _V]):
    def put(self, key: str, value: _V) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > MAX_ENTRIES:
            self.popitem(last=False)


class CachedAccounts:
    """An `AccountSource` in front of `DatabaseAccounts`; `start()` begins polling, `stop()` ends it."""

    def __init__(self, source: DatabaseAccounts, poll_interval: float = POLL_INTERVAL,
                 trust_window: float = TRUST_WINDOW) -> None:
        self.source = source
        self.poll_interval = poll_interval
        self.trust_window = trust_window
        self._users: _Lru[UserRecord | None] = _Lru()
        self._robots: _Lru[RobotRecord | None] = _Lru()
        self._refresh: _Lru[RefreshRecord | None] = _Lru()
        self._epoch = 0
        self._version: int | None = None
        self._checked_at = float("-inf")
        self._used: dict[int, datetime] = {}
        self._last_touch: dict[int, datetime] = {}
        self._task: asyncio.Task[None] | None = None
        self._polling: asyncio.Task[None] | None = None
        self._unlisten: Callable[[], None] | None = None
        self._poll_failing = False
        #: Answers from memory and from the database, for tests and `/metrics`.
        self.hits = 0
        self.misses = 0

    # -- AccountSource ----------------------------------------------------------------------------
    async def user(self, name: str) -> UserRecord | None:
        return await self._lookup(self._users, name, self.source.user)

    async def robot(self, name: str) -> RobotRecord | None:
        return await self._lookup(self._robots, name, self.source.robot)

    async def refresh_token(self, token_hash: str) -> RefreshRecord | None:
        return await self._lookup(self._refresh, token_hash, self.source.refresh_token)

    async def refresh_token_used(self, record: RefreshRecord, when: datetime) -> None:
        """Written by the poller at most once per `TOUCH_INTERVAL` and token: the refresh grant stays free of database writes."""
        last = self._last_touch.get(record.id) or record.last_used_at
        if last is not None and when - last <= TOUCH_INTERVAL:
            return
        if len(self._last_touch) > MAX_ENTRIES:
            self._last_touch.clear()
        self._last_touch[record.id] = when
        self._used[record.id] = when

    # -- the cache --------------------------------------------------------------------------------
    @property
    def trusted(self) -> bool:
        return time.monotonic() - self._checked_at < self.trust_window

    async def _lookup(self, table: _Lru[_V | None], key: str,
                      load: Callable[[str], Awaitable[_V | None]]) -> _V | None:
        if not self.trusted:
            await self._poll_now()
            if not self.trusted:
                self.misses += 1
                return await load(key)
        value = table.get(key, _MISSING)
        if value is not _MISSING:
            self.hits += 1
            return value  # type: ignore[return-value]
        self.misses += 1
        epoch = self._epoch
        loaded = await load(key)
        if epoch == self._epoch:
            table.put(key, loaded)
        return loaded

    def invalidate(self) -> None:
        """Forget everything: the next lookups load fresh rows."""
        self._epoch += 1
        self._users.clear()
        self._robots.clear()
        self._refresh.clear()

    async def _poll_now(self) -> None:
        """Read the change counter now, once for all the lookups that found the cache untrusted.

        Why: on a saturated event loop (or a loaded machine) the poller can fall behind its
        trust window; every lookup then went to the database, 16 concurrent ones for the same
        user 16 times, each an ORM query costing ~1 ms of CPU: the slower the loop, the more
        work it was given. One shared read of the counter costs one primary-key read, and if the
        counter did not move, the cache is trusted again (the read *started* after the lookup).
        A failed read leaves it untrusted: the caller asks the database.
        """
        if self._polling is None or self._polling.done():
            self._polling = asyncio.create_task(self.poll_once(), name="account-cache-poll")
            self._polling.add_done_callback(lambda done: done.cancelled() or done.exception())
        try:
            await asyncio.shield(self._polling)
        except asyncio.CancelledError:
            raise
        except Exception:  # logged by the poll loop when it persists; the caller asks the database
            pass

    async def poll_once(self) -> None:
        """Read the change counter; drop the cache if it moved. Also writes queued `last_used_at`."""
        started = time.monotonic()
        version = await changes.read_version(self.source.db)
        if version != self._version:
            self.invalidate()
            self._version = version
        self._checked_at = started
        if self._used:
            used, self._used = self._used, {}
            await self.source.touch_refresh_tokens(used)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._unlisten = changes.on_change(self.source.db, self.invalidate)
        await self.poll_once()
        self._task = asyncio.create_task(self._poll_loop(), name="account-cache-poller")

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
        for task in (self._task, self._polling):
            if task is not None:
                await cancel_and_wait(task)
        self._task = self._polling = None
        if self._used:
            used, self._used = self._used, {}
            try:
                await self.source.touch_refresh_tokens(used)
            except Exception as exc:  # only a "last used" time is lost
                log.warning("could not record when %d refresh tokens were last used: %s", len(used), exc)

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.poll_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self._poll_failing:
                    log.warning("account cache: cannot read the change counter (%s); asking the database "
                                "directly until it answers again", exc)
                self._poll_failing = True
                continue
            if self._poll_failing:
                log.info("account cache: the change counter answers again; caching resumed")
                self._poll_failing = False
