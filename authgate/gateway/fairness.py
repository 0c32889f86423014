"""One user cannot take the upstream from everyone else.

The connection pool to the upstream (`upstream_max_connections`) is shared by every client. Without
a bound per user, one user trickling a hundred upload bodies into their own namespace held every
connection, and everyone else waited and got 503. Each user (each address, for anonymous callers)
may have `upstream_max_per_user` upstream requests in flight; one more waits briefly for a slot,
then gets 429 `TOOMANYREQUESTS` — an answer about *their* load, which docker and containerd retry.

Bodies that stop arriving are the other half: an upload whose client has sent nothing for
`upstream_timeout` is cancelled (`within`), so a silent client cannot hold a slot forever.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass, field

from authgate.errors import ErrorCode, RegistryError

Release = Callable[[], None]


@dataclass(eq=False)
class _Slots:
    semaphore: asyncio.Semaphore
    #: Requests holding or waiting for a slot; the entry is dropped at zero, so idle users cost nothing.
    holders: int = 0


@dataclass
class PerUserSlots:
    limit: int
    #: Seconds one more request waits for a slot before 429.
    wait: float
    _users: dict[str, _Slots] = field(default_factory=dict)

    async def acquire(self, user: str) -> Release:
        """A slot for `user`, or 429 after `wait`; the returned callable gives it back (once)."""
        slots = self._users.get(user)
        if slots is None:
            slots = self._users[user] = _Slots(asyncio.Semaphore(self.limit))
        slots.holders += 1
        try:
            async with asyncio.timeout(self.wait):
                await slots.semaphore.acquire()
        except BaseException as exc:
            self._leave(user, slots)
            if isinstance(exc, TimeoutError):
                raise RegistryError(
                    ErrorCode.TOOMANYREQUESTS, f"you already have {self.limit} requests to the registry in "
                    "progress; wait for them to finish", headers={"Retry-After": "5"}) from None
            raise
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                slots.semaphore.release()
                self._leave(user, slots)

        return release

    def in_flight(self, user: str) -> int:
        slots = self._users.get(user)
        return slots.holders if slots else 0

    def _leave(self, user: str, slots: _Slots) -> None:
        slots.holders -= 1
        if slots.holders == 0 and self._users.get(user) is slots:
            del self._users[user]


class BodyIdle(Exception):
    """The client sent nothing for the idle timeout; raised inside the body stream to stop it."""


async def within(body: AsyncIterable[bytes], idle: float) -> AsyncIterator[bytes]:
    """`body`'s chunks, each of which must arrive within `idle` seconds of the previous one."""
    chunks = aiter(body)
    while True:
        try:
            async with asyncio.timeout(idle):
                chunk = await anext(chunks)
        except StopAsyncIteration:
            return
        except TimeoutError:
            raise BodyIdle() from None
        yield chunk
