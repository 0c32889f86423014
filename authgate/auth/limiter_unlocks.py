"""When an administrator last unlocked a target, as the login limiter asks it: at most once a second
per target, because a locked name is hammered and each question is a database read."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

#: The wall-clock time of the latest administrator unlock of a target (`user:NAME`, `address:ADDR`).
UnlockSource = Callable[[str], Awaitable[float]]


class UnlockTimes:
    def __init__(self, source: UnlockSource, max_targets: int = 10_000) -> None:
        self.source = source
        self.max_targets = max_targets
        #: target -> (monotonic time asked, answer)
        self.cache: dict[str, tuple[float, float]] = {}

    async def latest(self, target: str) -> float:
        now = time.monotonic()
        cached = self.cache.get(target)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        value = await self.source(target)
        if len(self.cache) > self.max_targets:
            self.cache.clear()
        self.cache[target] = (now, value)
        return value
