"""`CachedAccounts`: the accounts a request needs, from memory, never older than one second.

Why: a `docker pull` of an up-to-date image, every layer `HEAD` of a push and every CI job's
`/token` ask the same few accounts again and again; a database round trip for each made the
database (and aiosqlite's worker thread) the bottleneck of every small request.

The promise kept: disabling a user, changing a password, removing a team member, disabling a robot
or revoking a refresh token stops the next request within one second, wherever the change was made.
How: every account change bumps the `accounts` counter in its own transaction; the process's one
`VersionWatch` (authgate.db.versions) reads all counters every 0.25 s and this cache drops
everything when that one moved (changes made through this process's own database handle drop it at
once). And the cache answers only while the watch is `fresh` (its last successful poll *started*
less than 0.9 s ago): a poll that started before a change cannot vouch for anything after it, so
if polling stalls or the database is unreachable, a lookup first asks the watch to poll now (one
poll shared by every waiting lookup) and, if that fails too, goes to the database instead of
answering from a cache that may be stale.

A load that races a drop is not stored (the epoch check), so a row read just before a change
cannot land in the cache just after it was emptied.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from authgate.auth.account_store import TOUCH_INTERVAL, DatabaseAccounts, RefreshRecord, RobotRecord, UserRecord
from authgate.db import versions
from authgate.db.versions import VersionWatch

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
    """An `AccountSource` in front of `DatabaseAccounts`, kept fresh by `watch` (which the lifespan
    starts); `start()` and `stop()` add and remove the in-process shortcut."""

    def __init__(self, source: DatabaseAccounts, watch: VersionWatch) -> None:
        self.source = source
        self.watch = watch
        self._users: _Lru[UserRecord | None] = _Lru()
        self._robots: _Lru[RobotRecord | None] = _Lru()
        self._refresh: _Lru[RefreshRecord | None] = _Lru()
        self._epoch = 0
        self._used: dict[int, datetime] = {}
        self._last_touch: dict[int, datetime] = {}
        self._unlisten: Callable[[], None] | None = None
        #: Answers from memory and from the database, for tests and `/metrics`.
        self.hits = 0
        self.misses = 0
        watch.watch(versions.ACCOUNTS, self._changed)
        watch.every(self._touch)

    # -- AccountSource ----------------------------------------------------------------------------
    async def user(self, name: str) -> UserRecord | None:
        return await self._lookup(self._users, name, self.source.user)

    async def robot(self, name: str) -> RobotRecord | None:
        return await self._lookup(self._robots, name, self.source.robot)

    async def refresh_token(self, token_hash: str) -> RefreshRecord | None:
        return await self._lookup(self._refresh, token_hash, self.source.refresh_token)

    async def refresh_token_used(self, record: RefreshRecord, when: datetime) -> None:
        """Written by the watch's background writes at most once per `TOUCH_INTERVAL` and token: the refresh grant stays free of database writes."""
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
        return self.watch.fresh

    async def _lookup(self, table: _Lru[_V | None], key: str,
                      load: Callable[[str], Awaitable[_V | None]]) -> _V | None:
        if not self.trusted:
            await self.watch.refresh()
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

    async def _changed(self) -> None:
        self.invalidate()

    async def _touch(self) -> None:
        """Write the queued `last_used_at` times (one statement per batch)."""
        if self._used:
            used, self._used = self._used, {}
            await self.source.touch_refresh_tokens(used)

    # -- lifecycle --------------------------------------------------------------------------------
    async def start(self) -> None:
        self._unlisten = versions.on_account_change(self.source.db, self.invalidate)

    async def stop(self) -> None:
        if self._unlisten is not None:
            self._unlisten()
            self._unlisten = None
