"""Where the login limiter keeps its counters: a small async interface and the in-memory store.

The limiter (auth/limiter.py) decides; a store only remembers two kinds of thing, by string key:
*events* (timestamps of failed or in-progress logins, counted over a window) and *marks* (one
timestamp per key: a lockout's end, a trusted pair's expiry). The interface is async and this
small so that a store in the database can replace the in-memory one when several replicas must
share counters; until then each process keeps its own.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Protocol, TypeVar

T = TypeVar("T")


class LimiterStore(Protocol):
    async def add(self, key: str, at: float) -> None:
        """Record one event at `at`."""

    async def discard(self, key: str, at: float) -> None:
        """Forget the event recorded at `at` (a reserved attempt that turned out to succeed)."""

    async def count(self, key: str, since: float) -> int:
        """Events of `key` at or after `since`."""

    async def set_mark(self, key: str, value: float) -> None: ...

    async def mark(self, key: str) -> float:
        """The mark of `key`, 0.0 when there is none."""

    async def drop(self, key: str) -> None:
        """Forget the events and the mark of exactly `key`."""

    async def clear(self, prefix: str) -> None:
        """Forget the events and marks of every key starting with `prefix` (an administrator's unlock:
        rare, so it may scan)."""


class MemoryLimiterStore:
    """Per-process store, bounded: past `max_keys` keys the least recently touched are dropped."""

    def __init__(self, max_keys: int = 100_000, max_events: int = 1000) -> None:
        self.max_keys = max_keys
        self.max_events = max_events
        self._events: OrderedDict[str, deque[float]] = OrderedDict()
        self._marks: OrderedDict[str, float] = OrderedDict()

    async def add(self, key: str, at: float) -> None:
        events = self._events.get(key)
        if events is None:
            events = self._events[key] = deque(maxlen=self.max_events)
        events.append(at)
        self._events.move_to_end(key)
        _bound(self._events, self.max_keys)

    async def discard(self, key: str, at: float) -> None:
        events = self._events.get(key)
        if events is not None and at in events:
            events.remove(at)

    async def count(self, key: str, since: float) -> int:
        events = self._events.get(key)
        if events is None:
            return 0
        while events and events[0] < since:
            events.popleft()
        if not events:
            del self._events[key]
            return 0
        return len(events)

    async def set_mark(self, key: str, value: float) -> None:
        self._marks[key] = value
        self._marks.move_to_end(key)
        _bound(self._marks, self.max_keys)

    async def mark(self, key: str) -> float:
        return self._marks.get(key, 0.0)

    async def drop(self, key: str) -> None:
        self._events.pop(key, None)
        self._marks.pop(key, None)

    async def clear(self, prefix: str) -> None:
        for table in (self._events, self._marks):
            for key in [k for k in table if k.startswith(prefix)]:
                del table[key]

    def __len__(self) -> int:
        return len(self._events) + len(self._marks)


def _bound(table: OrderedDict[str, T], limit: int) -> None:
    while len(table) > limit:
        table.popitem(last=False)
