"""Where the login limiter keeps its counters: a small async interface and the in-memory store.

The limiter (auth/limiter.py) decides; a store only remembers two kinds of thing, by string key:
*events* (timestamps of failed or in-progress logins, counted over a window) and *marks* (one
timestamp per key: a lockout's end, a trusted pair's expiry). Reads and writes come in batches
because the shared store (auth/limiter_db.py) pays a database round trip for each call.

Two parts exist for the hot path, where a login needs no password hash (a robot, a password this
process checked a moment ago): `peek` answers from memory whether a key is locked, or None when
only the database knows; `defer_drop` and `defer_mark` are a success's bookkeeping, which a shared
store writes in the background instead of during the request.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Protocol, TypeVar

T = TypeVar("T")


class LimiterStore(Protocol):
    async def add(self, keys: Sequence[str], at: float) -> int:
        """Record one event at `at` for each of `keys`; returns their place in the order of all events
        (for `counts(upto=)`), or 0 where events are recorded one decision at a time."""

    async def discard(self, keys: Sequence[str], at: float) -> None:
        """Forget the events recorded at `at` (a reserved attempt that turned out to succeed)."""

    async def counts(self, keys: Sequence[str], since: float, upto: int = 0) -> list[int]:
        """Events of each key at or after `since`; with `upto`, only those recorded up to that place, so
        parallel attempts on several processes are told apart by who reserved first."""

    async def marks(self, keys: Sequence[str]) -> list[float]:
        """The mark of each key, 0.0 where there is none."""

    async def set_mark(self, key: str, value: float) -> None: ...

    async def drop(self, key: str) -> None:
        """Forget the events and the mark of exactly `key`."""

    async def first(self, key: str, now: float, every: float) -> bool:
        """Whether this caller is the first in `every` seconds to ask for `key` (marks it `now` if so):
        one audit event per lockout however many processes refuse at the same moment."""

    async def lock(self, key: str, until: float) -> None:
        """At once (one transaction): forget `key`'s events and mark it `until`."""

    async def clear(self, prefix: str) -> None:
        """Forget the events and marks of every key starting with `prefix` (an administrator's unlock:
        rare, so it may scan)."""

    def peek(self, key: str) -> float | None:
        """The mark of a lock key from memory, or None when the store cannot vouch for it without
        asking the database (not a lock key, or its view is stale)."""

    def defer_drop(self, key: str, at: float) -> None:
        """A success's reset of its pair, soon (kept off the request): the events of `key` up to `at`,
        the moment of the success, and its mark unless a lock is in force. Guesses counted after the
        success (by this or another process, before the reset is written) stay counted."""

    def defer_mark(self, key: str, value: float) -> None:
        """`set_mark`, soon."""


class MemoryLimiterStore:
    """Per-process store, bounded: past `max_keys` keys the least recently touched are dropped."""

    def __init__(self, max_keys: int = 100_000, max_events: int = 1000) -> None:
        self.max_keys = max_keys
        self.max_events = max_events
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._marks: OrderedDict[str, float] = OrderedDict()

    async def add(self, keys: Sequence[str], at: float) -> int:
        for key in keys:
            events = self._events.get(key)
            if events is None:
                events = self._events[key] = deque(maxlen=self.max_events)
            events.append(at)
            self._events.move_to_end(key)
        bound(self._events, self.max_keys)
        return 0  # decisions here never wait between reserving and counting

    async def discard(self, keys: Sequence[str], at: float) -> None:
        for key in keys:
            events = self._events.get(key)
            if events is not None and at in events:
                events.remove(at)

    async def counts(self, keys: Sequence[str], since: float, upto: int = 0) -> list[int]:
        return [self._count(key, since) for key in keys]

    def _count(self, key: str, since: float) -> int:
        events = self._events.get(key)
        if events is None:
            return 0
        while events and events[0] < since:
            events.popleft()
        if not events:
            del self._events[key]
            return 0
        return len(events)

    async def marks(self, keys: Sequence[str]) -> list[float]:
        return [self._marks.get(key, 0.0) for key in keys]

    async def set_mark(self, key: str, value: float) -> None:
        self._marks[key] = value
        self._marks.move_to_end(key)
        bound(self._marks, self.max_keys)

    async def drop(self, key: str) -> None:
        self._events.pop(key, None)
        self._marks.pop(key, None)

    async def first(self, key: str, now: float, every: float) -> bool:
        if now - self._marks.get(key, 0.0) < every:
            return False
        await self.set_mark(key, now)
        return True

    async def lock(self, key: str, until: float) -> None:
        self._events.pop(key, None)
        await self.set_mark(key, until)

    async def clear(self, prefix: str) -> None:
        for table in (self._events, self._marks):
            for key in [k for k in table if k.startswith(prefix)]:
                del table[key]

    def peek(self, key: str) -> float | None:
        return self._marks.get(key, 0.0)

    def defer_drop(self, key: str, at: float) -> None:
        events = self._events.get(key)
        if events is not None:
            later = [t for t in events if t > at]
            events.clear()
            events.extend(later)
        self._marks.pop(key, None)

    def defer_mark(self, key: str, value: float) -> None:
        self._marks[key] = value
        self._marks.move_to_end(key)
        bound(self._marks, self.max_keys)

    def __len__(self) -> int:
        return len(self._events) + len(self._marks)


def bound(table: OrderedDict[str, T], limit: int) -> None:
    """Drop the least recently touched entries past `limit`."""
    while len(table) > limit:
        table.popitem(last=False)
