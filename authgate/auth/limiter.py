"""Brute-force brake on password guessing that a guesser cannot turn against the account's owner.

What is counted, over `window` seconds, is failed logins, per (name, address) *pair*, per name
(any address) and per address (any name). Each attempt is *reserved* before its secret is checked
and stays counted unless it succeeds, so parallel guesses are counted while they run: the 40
parallel tries of the hardening issue (39 wrong, the right one last) now get 10 checks and 30
refusals, not 39 × 401 and a 200.

- The pair is locked (429) after `block_after` failures, for `lockout` seconds: the guesser at that
  address, not the owner elsewhere.
- A name failing from anywhere is slowed (`delay`, growing to `max_delay`; its hashes run one at a
  time), never locked: no one can lock a named user out.
- An address failing for many names is slowed, then locked for names it never logged in with.
- A pair that logged in successfully is *trusted* for `trust_days`: it skips the per-name and
  per-address brakes (not its own pair lock) and jumps the hash queue, so the owner gets in.
- Robots' secrets are 256 random bits: guessing them is hopeless and locking them would only let
  anyone stop a CI job, so robot names are never slowed or locked; their failures count against
  the address.
- The same wrong secret retried by one client (containerd POSTs then GETs, gitlab#35617) counts
  once; a missing or anonymous login never counts.

An administrator lifts a lock at once with `authgate user unlock NAME` (or `--address ADDR`),
which every process reads from the database the next time the lock would apply.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from authgate.auth.hash_slots import HashesBusy, HashSlots
from authgate.auth.limiter_store import LimiterStore, MemoryLimiterStore

#: The wall-clock time of the latest administrator unlock of a target (`user:NAME`, `address:ADDR`).
UnlockSource = Callable[[str], Awaitable[float]]


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int, message: str, first: bool = True) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.message = message
        #: The first refusal of this lockout: worth an audit event. Later ones are not, or an
        #: unauthenticated client could grow the audit log without bound.
        self.first = first


def _for_humans(seconds: int) -> str:
    if seconds < 120:
        return f"{seconds} s"
    return f"{math.ceil(seconds / 60)} minutes"


@dataclass
class Attempt:
    """One login in progress: call `succeeded()` when the secret was right; wrap hashing in `hashing()`."""

    limiter: LoginLimiter
    name: str
    address: str
    robot: bool
    trusted: bool
    delay: float
    at: float
    fingerprint: str
    reserved: list[str] = field(default_factory=list)
    ok: bool = False

    def succeeded(self) -> None:
        self.ok = True

    @asynccontextmanager
    async def hashing(self) -> AsyncIterator[None]:
        """A hash slot (users only: robots cost a SHA-256), then the brake's delay, inside the slot so
        that a slowed name's attempts are slowed one after another, not all at once."""
        if self.robot:
            if self.delay:
                await anyio.sleep(self.delay)
            yield
            return
        try:
            async with self.limiter.slots.take(self.name, self.address, self.trusted):
                if self.delay:
                    await anyio.sleep(self.delay)
                yield
        except HashesBusy:
            raise TooManyAttempts(1, "too many logins in progress; try again in 1 s", first=False) from None


class LoginLimiter:
    def __init__(
        self,
        store: LimiterStore | None = None,
        slots: HashSlots | None = None,
        unlocks: UnlockSource | None = None,
        *,
        slow_after: int = 5,
        block_after: int = 10,
        user_slow_after: int = 10,
        address_slow_after: int = 15,
        address_block_after: int = 30,
        window: float = 900.0,
        lockout: float = 300.0,
        delay: float = 1.0,
        max_delay: float = 10.0,
        dedupe_seconds: float = 30.0,
        trust_days: float = 30.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store: LimiterStore = store or MemoryLimiterStore()
        self.slots = slots or HashSlots()
        self.unlocks = unlocks
        self.slow_after, self.block_after = slow_after, block_after
        self.user_slow_after = user_slow_after
        self.address_slow_after, self.address_block_after = address_slow_after, address_block_after
        self.window, self.lockout = window, lockout
        self.delay, self.max_delay = delay, max_delay
        self.dedupe_seconds = dedupe_seconds
        self.trust_seconds = trust_days * 86400
        self.clock = clock
        self._key = secrets.token_bytes(32)
        self._unlock_cache: dict[str, tuple[float, float]] = {}

    @staticmethod
    def _pair(name: str, address: str) -> str:
        return f"pair\0{name}\0{address}\0"

    @staticmethod
    def _user(name: str) -> str:
        return f"user\0{name}\0"

    @staticmethod
    def _address(address: str) -> str:
        return f"addr\0{address}\0"

    def _trust_key(self, name: str, address: str) -> str:
        return "trust\0" + hmac.new(self._key, f"{name}\0{address}".encode(), hashlib.sha256).hexdigest()

    @asynccontextmanager
    async def attempt(self, name: str, address: str | None, secret: str, robot: bool = False
                      ) -> AsyncIterator[Attempt]:
        """Decide, reserve, and on exit count the attempt as failed unless `succeeded()` was called.

        Raises `TooManyAttempts` before anything is checked when the pair or address is locked.
        """
        now = self.clock()
        where = address or "unknown"
        trusted = await self.store.mark(self._trust_key(name, where)) > now
        delay = await self._decide(name, where, robot, trusted, now)
        if delay:
            # The unlock check may wait on the database while parallel attempts reserve: decide again
            # on what they reserved, with no await between this decision and the reservation below.
            await self._apply_unlocks(name, where)
            delay = await self._decide(name, where, robot, trusted, now)
        fingerprint = "seen\0" + hmac.new(self._key, f"{where}\0{name}\0{secret}".encode(), hashlib.sha256).hexdigest()
        attempt = Attempt(self, name, where, robot, trusted, delay, now, fingerprint)
        if await self.store.mark(fingerprint) <= now - self.dedupe_seconds:
            attempt.reserved = [self._address(where)] if robot else [
                self._pair(name, where), self._user(name), self._address(where)]
            for key in attempt.reserved:
                await self.store.add(key, now)
        try:
            yield attempt
        except BaseException:
            await self._release(attempt)  # not a failed login: refused as busy, or the client went away
            raise
        if attempt.ok:
            await self._release(attempt)
            await self.store.drop(self._pair(name, where))
            await self.store.set_mark(self._trust_key(name, where), self.clock() + self.trust_seconds)
        else:
            await self._failed(attempt)

    async def _release(self, attempt: Attempt) -> None:
        for key in attempt.reserved:
            await self.store.discard(key, attempt.at)

    async def _failed(self, attempt: Attempt) -> None:
        now = self.clock()
        await self.store.set_mark(attempt.fingerprint, now)
        checks = [(self._address(attempt.address), self.address_block_after)]
        if not attempt.robot:
            checks.append((self._pair(attempt.name, attempt.address), self.block_after))
        for key, limit in checks:
            if attempt.reserved and await self.store.count(key, now - self.window) >= limit:
                await self.store.drop(key)
                await self.store.drop(key + "reported")  # the first refusal of this lock is reported
                await self.store.set_mark(key, now + self.lockout)

    async def _decide(self, name: str, address: str, robot: bool, trusted: bool, now: float) -> float:
        """The delay to apply, or `TooManyAttempts`."""
        since = now - self.window
        address_key = self._address(address)
        delay = 0.0
        if not robot:
            pair = self._pair(name, address)
            await self._refuse_if(pair, await self.store.count(pair, since) >= self.block_after, now,
                                  f"too many failed logins for {name} from this address",
                                  f"`authgate user unlock {name}`", name, address)
            if await self.store.count(pair, since) >= self.slow_after:
                delay = self.delay
            if not trusted:
                failures = await self.store.count(self._user(name), since)
                if failures >= self.user_slow_after:
                    delay = max(delay, min(self.max_delay, self.delay * (failures // self.user_slow_after)))
        if not trusted:
            count = await self.store.count(address_key, since)
            await self._refuse_if(address_key, count >= self.address_block_after, now,
                                  "too many failed logins from this address; logging in from where you logged "
                                  "in before still works",
                                  f"`authgate user unlock --address {address}`", name, address)
            if count >= self.address_slow_after:
                delay = max(delay, self.delay)
        return delay

    async def _refuse_if(self, key: str, over: bool, now: float, what: str, remedy: str,
                         name: str, address: str) -> None:
        until = await self.store.mark(key)
        if until <= now and not over:
            return
        if await self._apply_unlocks(name, address):
            return
        retry_after = max(1, math.ceil(until - now)) if until > now else int(self.lockout)
        reported = await self.store.mark(key + "reported")
        first = now - reported >= self.lockout
        if first:
            await self.store.set_mark(key + "reported", now)
        raise TooManyAttempts(
            retry_after,
            f"{what}; try again in {_for_humans(retry_after)} (an administrator can lift this now with {remedy})",
            first,
        )

    async def _apply_unlocks(self, name: str, address: str) -> bool:
        """Forget what an administrator unlocked since this process last looked; True if anything was."""
        if self.unlocks is None:
            return False
        cleared = False
        for target, prefixes in ((f"user:{name}", (self._pair(name, "")[:-1], self._user(name))),
                                 (f"address:{address}", (self._address(address),))):
            unlocked = await self._unlock_time(target)
            if unlocked > await self.store.mark("unlocked\0" + target):
                for prefix in prefixes:
                    await self.store.clear(prefix)
                await self.store.set_mark("unlocked\0" + target, unlocked)
                cleared = True
        return cleared

    async def _unlock_time(self, target: str) -> float:
        """Asked of the database at most once a second per target (a locked name is hammered)."""
        now = time.monotonic()
        cached = self._unlock_cache.get(target)
        if cached is not None and now - cached[0] < 1.0:
            return cached[1]
        assert self.unlocks is not None
        value = await self.unlocks(target)
        if len(self._unlock_cache) > 10_000:
            self._unlock_cache.clear()
        self._unlock_cache[target] = (now, value)
        return value
