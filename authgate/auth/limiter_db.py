"""The login limiter's counters in the database, shared by every process and replica.

Without it each of N processes counted its own failures: a guesser spreading attempts over N workers
or replicas got N times the tries before a lock, and `authgate user unlock` had to reach each
process. Here events and marks are rows (`limiter_events`, `limiter_marks`), so a guess on any
process counts against the same pair, user and address, and a lock holds on all of them.

Cost. Logins that pay a password hash (~0.3 s) can afford a few round trips: reserve, count, read
marks. The hot path cannot: a robot's login or a password this process checked a moment ago must
not touch the database (authgate.auth.limiter's `cheap`). For those the store keeps in memory the
locks in force (`peek`), reloaded whenever the `limiter_locks` counter moves (authgate.db.versions:
polled every 0.25 s, trusted for 0.9 s), and a success's bookkeeping (reset the pair, trust it) is
queued and written in the background about once a second.

Keys are stored with NUL escaped (PostgreSQL text cannot hold it); prefixes stay prefixes.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import and_, delete, func, insert, or_, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.sql.elements import ColumnElement

from authgate.db import versions
from authgate.db.models import LimiterEvent, LimiterMark
from authgate.db.session import Database

#: Keys whose marks are locks, kept in memory (authgate.auth.limiter's pair and address keys).
LOCK_PREFIXES = ("pair\0", "addr\0")
#: More locks in force than this and the memory view is partial: unknown keys ask the database.
MAX_LOCKS = 100_000
#: Queued background writes; past it a success's reset or trust is skipped (it only brakes less).
MAX_DEFERRED = 50_000
FLUSH_SECONDS = 1.0
CLEANUP_SECONDS = 60.0
#: Unlock records are kept: forgetting one would make the limiter apply that unlock again.
_KEPT = "unlocked\0"


def _enc(key: str) -> str:
    return key.replace("\\", "\\\\").replace("\0", "\\0")


def _dec(stored: str) -> str:
    return re.sub(r"\\(.)", lambda m: "\0" if m.group(1) == "0" else m.group(1), stored, flags=re.S)


def _starts(column: Any, prefix: str) -> ColumnElement[bool]:
    encoded = _enc(prefix)
    return func.substr(column, 1, len(encoded)) == encoded


class DatabaseLimiterStore:
    def __init__(self, db: Database, watch: versions.VersionWatch, horizon: float = 900.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.db = db
        self.watch = watch
        #: Events and expired marks older than this are deleted (the limiter's longest window).
        self.horizon = horizon
        self.clock = clock
        self._locks: dict[str, float] = {}
        self._partial = False
        #: Pairs to reset, each with the moment of its latest success (events after it stay).
        self._drops: dict[str, float] = {}
        self._due: dict[str, float] = {}
        self._flushed = self._cleaned = time.monotonic()
        watch.watch(versions.LIMITER_LOCKS, self._reload_locks)
        watch.every(self._background)

    # -- LimiterStore -----------------------------------------------------------------------------
    async def add(self, keys: Sequence[str], at: float) -> int:
        async with self.db.session() as session:
            ids = await session.scalars(insert(LimiterEvent).values([{"key": _enc(k), "at": at} for k in keys])
                                        .returning(LimiterEvent.id))
            return max(ids, default=0)

    async def discard(self, keys: Sequence[str], at: float) -> None:
        async with self.db.session() as session:
            await session.execute(delete(LimiterEvent).where(
                LimiterEvent.key.in_([_enc(k) for k in keys]), LimiterEvent.at == at))

    async def counts(self, keys: Sequence[str], since: float, upto: int = 0) -> list[int]:
        encoded = [_enc(k) for k in keys]
        query = select(LimiterEvent.key, func.count()).where(LimiterEvent.key.in_(encoded), LimiterEvent.at >= since)
        if upto:
            query = query.where(LimiterEvent.id <= upto)
        async with self.db.engine.connect() as connection:
            rows = await connection.execute(query.group_by(LimiterEvent.key))
            found = {key: int(count) for key, count in rows}
        return [found.get(k, 0) for k in encoded]

    async def marks(self, keys: Sequence[str]) -> list[float]:
        encoded = [_enc(k) for k in keys]
        async with self.db.engine.connect() as connection:
            rows = await connection.execute(select(LimiterMark.key, LimiterMark.value).where(LimiterMark.key.in_(encoded)))
            found = {key: float(value) for key, value in rows}
        return [found.get(k, 0.0) for k in encoded]

    async def set_mark(self, key: str, value: float) -> None:
        lock = key.startswith(LOCK_PREFIXES) and value > self.clock()
        async with self.db.session() as session:
            await session.execute(self._upsert([{"key": _enc(key), "value": value}]))
            if lock:
                await versions.bump(session, versions.LIMITER_LOCKS)
        if lock:
            self._locks[key] = value

    async def drop(self, key: str) -> None:
        async with self.db.session() as session:
            await session.execute(delete(LimiterEvent).where(LimiterEvent.key == _enc(key)))
            removed = await session.execute(delete(LimiterMark).where(LimiterMark.key == _enc(key)))
            if key in self._locks or (key.startswith(LOCK_PREFIXES) and removed.rowcount):  # type: ignore[attr-defined]
                await versions.bump(session, versions.LIMITER_LOCKS)
        self._locks.pop(key, None)

    async def first(self, key: str, now: float, every: float) -> bool:
        dialect = postgresql if not self.db.is_sqlite else sqlite
        statement = dialect.insert(LimiterMark).values(key=_enc(key), value=now)
        statement = statement.on_conflict_do_update(index_elements=["key"], set_={"value": statement.excluded.value},
                                                    where=LimiterMark.value <= now - every)
        async with self.db.session() as session:
            return (await session.execute(statement.returning(LimiterMark.key))).first() is not None

    async def lock(self, key: str, until: float) -> None:
        async with self.db.session() as session:
            await session.execute(delete(LimiterEvent).where(LimiterEvent.key == _enc(key)))
            await session.execute(self._upsert([{"key": _enc(key), "value": until}]))
            await versions.bump(session, versions.LIMITER_LOCKS)
        self._locks[key] = until

    async def clear(self, prefix: str) -> None:
        async with self.db.session() as session:
            await session.execute(delete(LimiterEvent).where(_starts(LimiterEvent.key, prefix)))
            await session.execute(delete(LimiterMark).where(_starts(LimiterMark.key, prefix)))
            await versions.bump(session, versions.LIMITER_LOCKS)
        for key in [k for k in self._locks if k.startswith(prefix)]:
            del self._locks[key]

    def peek(self, key: str) -> float | None:
        if not self.watch.fresh or not key.startswith(LOCK_PREFIXES):
            return None
        until = self._locks.get(key)
        if until is None:
            return None if self._partial else 0.0
        return until

    def defer_drop(self, key: str, at: float) -> None:
        if len(self._drops) < MAX_DEFERRED or key in self._drops:
            self._drops[key] = max(at, self._drops.get(key, at))

    def defer_mark(self, key: str, value: float) -> None:
        if len(self._due) < MAX_DEFERRED or key in self._due:
            self._due[key] = value

    # -- background -------------------------------------------------------------------------------
    def _upsert(self, rows: list[dict[str, Any]]) -> Any:
        dialect = postgresql if not self.db.is_sqlite else sqlite
        statement = dialect.insert(LimiterMark).values(rows)
        return statement.on_conflict_do_update(index_elements=["key"], set_={"value": statement.excluded.value})

    async def _reload_locks(self) -> None:
        now = self.clock()
        async with self.db.engine.connect() as connection:
            rows = (await connection.execute(
                select(LimiterMark.key, LimiterMark.value)
                .where(LimiterMark.value > now, or_(*(_starts(LimiterMark.key, p) for p in LOCK_PREFIXES)))
                .limit(MAX_LOCKS + 1))).all()
        self._partial = len(rows) > MAX_LOCKS
        self._locks = {_dec(key): float(value) for key, value in rows[:MAX_LOCKS]}

    async def _background(self) -> None:
        moment = time.monotonic()
        if (self._drops or self._due) and moment - self._flushed >= FLUSH_SECONDS:
            self._flushed = moment
            await self.flush()
        if moment - self._cleaned >= CLEANUP_SECONDS:
            self._cleaned = moment
            await self.cleanup()

    async def flush(self) -> None:
        """Write the queued resets and trust marks (a reset leaves a lock in force alone)."""
        drops, self._drops = sorted(self._drops.items()), {}
        due, self._due = self._due, {}
        now = self.clock()
        async with self.db.session() as session:
            for start in range(0, len(drops), 500):
                batch = drops[start:start + 500]
                await session.execute(delete(LimiterEvent).where(or_(*(
                    and_(LimiterEvent.key == _enc(key), LimiterEvent.at <= at) for key, at in batch))))
                await session.execute(delete(LimiterMark).where(LimiterMark.key.in_([_enc(k) for k, _ in batch]),
                                                                LimiterMark.value <= now))
            rows = [{"key": _enc(k), "value": v} for k, v in due.items()]
            for start in range(0, len(rows), 500):
                await session.execute(self._upsert(rows[start:start + 500]))

    async def cleanup(self) -> None:
        """Delete what no decision reads any more: events past the window, marks long expired."""
        cutoff = self.clock() - self.horizon
        async with self.db.session() as session:
            await session.execute(delete(LimiterEvent).where(LimiterEvent.at < cutoff))
            await session.execute(delete(LimiterMark).where(
                and_(LimiterMark.value < cutoff, ~_starts(LimiterMark.key, _KEPT))))
