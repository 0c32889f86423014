"""How many password hashes may run at once: in total, per user name and per client address.

A bcrypt check costs ~0.3 s of one core. Without a bound, 60 parallel logins with made-up names
cost 60 hashes at once and a real login waited behind all of them (the hardening issue measured
0.3 s → 8.7 s). Here a login waits for a slot; a slot is free when the total, its user's and its
address's hashes in flight are all under their bounds. An owner logging in from where they logged in
before ("trusted") skips the per-user and per-address bounds and is served before everyone else,
so a guesser queueing attempts for a name does not keep its owner out. Waiting is bounded too: past
`max_waiting` waiters (an eighth of them from one address), or after `wait` seconds, the login is
refused as busy (429, retry in 1 s); an owner is never refused a place in the queue.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio


class HashesBusy(Exception):
    """No slot within the wait: the caller answers 429 with a short Retry-After."""


@dataclass(eq=False)
class _Waiter:
    user: str
    address: str
    trusted: bool
    event: anyio.Event = field(default_factory=anyio.Event)
    granted: bool = False


class HashSlots:
    def __init__(self, total: int | None = None, per_user: int = 1, per_address: int | None = None,
                 max_waiting: int = 64, wait: float = 10.0) -> None:
        self.total = total or max(2, os.cpu_count() or 2)
        self.per_user = per_user
        #: Half the total (at least one): one address never holds every slot.
        self.per_address = per_address or max(1, self.total // 2)
        self.max_waiting = max_waiting
        self.wait = wait
        self.in_flight = 0
        self._users: Counter[str] = Counter()
        self._addresses: Counter[str] = Counter()
        self._waiting: list[_Waiter] = []

    def _fits(self, waiter: _Waiter) -> bool:
        if self.in_flight >= self.total:
            return False
        return waiter.trusted or (self._users[waiter.user] < self.per_user
                                  and self._addresses[waiter.address] < self.per_address)

    def _grant(self, waiter: _Waiter) -> None:
        waiter.granted = True
        self.in_flight += 1
        self._users[waiter.user] += 1
        self._addresses[waiter.address] += 1

    def _release(self, waiter: _Waiter) -> None:
        self.in_flight -= 1
        for counter, key in ((self._users, waiter.user), (self._addresses, waiter.address)):
            counter[key] -= 1
            if counter[key] <= 0:
                del counter[key]
        for queued in list(self._waiting):
            if self._fits(queued):
                self._waiting.remove(queued)
                self._grant(queued)
                queued.event.set()

    @asynccontextmanager
    async def take(self, user: str, address: str, trusted: bool) -> AsyncIterator[None]:
        """Hold one slot for the body; raises `HashesBusy` when none comes in time."""
        waiter = _Waiter(user, address, trusted)
        if self._fits(waiter):  # nobody waiting fits now (each release grants all that do): no queue jumping
            self._grant(waiter)
        else:
            # One address cannot fill the queue for everyone; an owner (trusted) always gets a place.
            from_address = sum(1 for w in self._waiting if w.address == address)
            if not trusted and (len(self._waiting) >= self.max_waiting or from_address >= max(1, self.max_waiting // 8)):
                raise HashesBusy()
            # Trusted waiters go ahead of every untrusted one, in arrival order among themselves.
            position = len(self._waiting) if not trusted else next(
                (i for i, w in enumerate(self._waiting) if not w.trusted), len(self._waiting))
            self._waiting.insert(position, waiter)
            try:
                with anyio.move_on_after(self.wait):
                    await waiter.event.wait()
            except BaseException:  # cancelled (the client went away): give back what was given
                if waiter.granted:
                    self._release(waiter)
                else:
                    self._waiting.remove(waiter)
                raise
            if not waiter.granted:
                self._waiting.remove(waiter)
                raise HashesBusy()
        try:
            yield
        finally:
            self._release(waiter)
