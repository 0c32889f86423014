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

The counters live in a store (auth/limiter_store.py); `authgate serve` uses the database's
(auth/limiter_db.py), shared by every process and replica, so guesses spread over them count together. A login whose
secret costs no hash (a robot, a password this process checked a moment ago: `cheap=True`) is not
reserved: it asks the store's memory whether its pair or address is locked and goes on, so the hot
`/token` path pays no database round trip; when it fails it is counted afterwards, when a lock is
known it is decided on the counters like any other. Any login about to pay a hash reserves first.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio

from authgate.auth.hash_slots import HashesBusy, HashSlots
from authgate.auth.limiter_store import LimiterStore, MemoryLimiterStore, bound
from authgate.auth.limiter_unlocks import UnlockSource, UnlockTimes

__all__ = ["Attempt", "LoginLimiter", "TooManyAttempts", "UnlockSource"]



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
    at: float
    fingerprint: str
    trusted: bool = False
    delay: float = 0.0
    #: Decided on the counters and reserved (`prepare`); a cheap attempt may skip it.
    prepared: bool = False
    reserved: list[str] = field(default_factory=list)
    #: Where the reservation stands among all events (`LimiterStore.add`).
    place: int = 0
    ok: bool = False

    def succeeded(self) -> None:
        self.ok = True

    async def prepare(self) -> None:
        """Reserve, then decide on the counters (which include the reservation, so parallel attempts
        on any process see each other): the delay, or `TooManyAttempts` with the reservation given back."""
        if self.prepared:
            return
        self.prepared = True
        await self.limiter.prepare(self)

    @asynccontextmanager
    async def hashing(self) -> AsyncIterator[None]:
        """A hash slot (users only: robots cost a SHA-256), then the brake's delay, inside the slot so
        that a slowed name's attempts are slowed one after another, not all at once."""
        if self.robot:
            if self.delay:
                await anyio.sleep(self.delay)
            yield
            return
        await self.prepare()
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
        self.unlocks = UnlockTimes(unlocks) if unlocks is not None else None
        self.slow_after, self.block_after = slow_after, block_after
        self.user_slow_after = user_slow_after
        self.address_slow_after, self.address_block_after = address_slow_after, address_block_after
        self.window, self.lockout = window, lockout
        self.delay, self.max_delay = delay, max_delay
        self.dedupe_seconds = dedupe_seconds
        self.trust_seconds = trust_days * 86400
        self.clock = clock
        self._key = secrets.token_bytes(32)
        #: Failures this process counted, by fingerprint (when), and pairs it trusted (until when).
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._trusted: OrderedDict[str, float] = OrderedDict()

    @staticmethod
    def _pair(name: str, address: str) -> str:
        return f"pair\0{name}\0{address}\0"

    @staticmethod
    def _user(name: str) -> str:
        return f"user\0{name}\0"

    @staticmethod
    def _address(address: str) -> str:
        return f"addr\0{address}\0"

    @staticmethod
    def _trust_key(name: str, address: str) -> str:
        """Hashed, so the shared store does not list who logs in from where; unkeyed, so every process
        finds the same key."""
        return "trust\0" + hashlib.sha256(f"{name}\0{address}".encode()).hexdigest()

    def fingerprint(self, name: str, address: str | None, secret: str) -> str:
        """Keyed per process and never stored: a wrong password's fingerprint stays in this process."""
        where = address or "unknown"
        return hmac.new(self._key, f"{where}\0{name}\0{secret}".encode(), hashlib.sha256).hexdigest()

    @asynccontextmanager
    async def attempt(self, name: str, address: str | None, secret: str, robot: bool = False,
                      cheap: bool = False) -> AsyncIterator[Attempt]:
        """Decide, reserve, and on exit count the attempt as failed unless `succeeded()` was called.

        Raises `TooManyAttempts` before anything is checked when the pair or address is locked.
        `cheap`: the secret costs no hash, so nothing is reserved unless a lock is known.
        """
        where = address or "unknown"
        attempt = Attempt(self, name, where, robot, self.clock(), self.fingerprint(name, address, secret))
        if not (cheap and self._clear(name, where, robot, attempt.at)):
            await attempt.prepare()
        try:
            yield attempt
        except BaseException:
            await self._release(attempt)  # not a failed login: refused as busy, or the client went away
            raise
        if attempt.ok:
            await self._release(attempt)
            await self._succeeded(attempt)
        else:
            await self._failed(attempt)

    def _clear(self, name: str, address: str, robot: bool, now: float) -> bool:
        """Whether the store's memory vouches that neither the pair nor the address is locked."""
        for key in [self._address(address)] + ([] if robot else [self._pair(name, address)]):
            until = self.store.peek(key)
            if until is None or until > now:
                return False
        return True

    async def prepare(self, attempt: Attempt) -> None:
        name, where, now = attempt.name, attempt.address, attempt.at
        if not self._seen_recently(attempt.fingerprint, now):
            attempt.reserved = [self._address(where)] if attempt.robot else [
                self._pair(name, where), self._user(name), self._address(where)]
            attempt.place = await self.store.add(attempt.reserved, now)
        try:
            attempt.trusted = (await self.store.marks([self._trust_key(name, where)]))[0] > now
            attempt.delay = await self._decide(attempt, now)
            if attempt.delay and await self._apply_unlocks(name, where):
                attempt.delay = await self._decide(attempt, now)
        except BaseException:
            await self._release(attempt)
            raise

    def _seen_recently(self, fingerprint: str, now: float) -> bool:
        """The same wrong secret from the same client within `dedupe_seconds` counts once."""
        return self._seen.get(fingerprint, float("-inf")) > now - self.dedupe_seconds

    async def _release(self, attempt: Attempt) -> None:
        if attempt.reserved:
            await self.store.discard(attempt.reserved, attempt.at)
            attempt.reserved = []

    async def _succeeded(self, attempt: Attempt) -> None:
        """A right secret resets its pair's failures and trusts the pair. After a hash, at once; a cheap
        login leaves both to the background (within about a second), and refreshes trust at most
        hourly per pair, so a busy client costs the database nothing per login."""
        now = self.clock()
        if attempt.prepared:
            trust = self._trust_key(attempt.name, attempt.address)
            self._renew_trust(trust, now)
            if not attempt.robot:
                await self.store.drop(self._pair(attempt.name, attempt.address))
            await self.store.set_mark(trust, now + self.trust_seconds)
            return
        self._defer_success(attempt.name, attempt.address, attempt.robot, attempt.at, now)

    def _renew_trust(self, trust: str, now: float) -> bool:
        """Remember the pair trusted until `trust_seconds` from now; True when that is worth writing
        (at most hourly per pair)."""
        renew = self._trusted.get(trust, 0.0) < now + self.trust_seconds - 3600
        if renew:
            self._trusted[trust] = now + self.trust_seconds
            bound(self._trusted, 10_000)
        return renew

    def _defer_success(self, name: str, address: str, robot: bool, at: float, now: float) -> None:
        """A cheap success's bookkeeping, left to the store's background writes."""
        trust = self._trust_key(name, address)
        if not robot:
            self.store.defer_drop(self._pair(name, address), at)
        if self._renew_trust(trust, now):
            self.store.defer_mark(trust, now + self.trust_seconds)

    def repeat_success(self, name: str, address: str | None, robot: bool) -> bool:
        """A cheap login answered again from memory (`/token`'s stored answers): False when the store's
        memory does not vouch that neither the pair nor the address is locked (the caller then takes
        the full path), else True after the bookkeeping a cheap success does (`_succeeded`)."""
        where = address or "unknown"
        now = self.clock()
        if not self._clear(name, where, robot, now):
            return False
        self._defer_success(name, where, robot, now, now)
        return True

    async def _failed(self, attempt: Attempt) -> None:
        now = self.clock()
        if not attempt.reserved:
            if attempt.prepared or self._seen_recently(attempt.fingerprint, now):
                return  # a repeat of a failure already counted
            attempt.reserved = [self._address(attempt.address)] if attempt.robot else [
                self._pair(attempt.name, attempt.address), self._user(attempt.name), self._address(attempt.address)]
            attempt.place = await self.store.add(attempt.reserved, attempt.at)
        self._seen[attempt.fingerprint] = now
        self._seen.move_to_end(attempt.fingerprint)
        bound(self._seen, 10_000)
        checks = [(self._address(attempt.address), self.address_block_after)]
        if not attempt.robot:
            checks.append((self._pair(attempt.name, attempt.address), self.block_after))
        # Up to this attempt's place: reservations after it may yet be refused and given back.
        counts = await self.store.counts([key for key, _ in checks], now - self.window, attempt.place)
        for (key, limit), count in zip(checks, counts):
            if count >= limit:  # its refusals are reported once per `lockout` (`first`), however many processes refuse
                await self.store.lock(key, now + self.lockout)

    async def _decide(self, attempt: Attempt, now: float) -> float:
        """The delay to apply, or `TooManyAttempts`. The counts include this attempt's reservation."""
        name, address, robot, trusted = attempt.name, attempt.address, attempt.robot, attempt.trusted
        own = 1 if attempt.reserved else 0
        pair, address_key = self._pair(name, address), self._address(address)
        pair_count, user_count, address_count = (
            count - own for count in await self.store.counts([pair, self._user(name), address_key], now - self.window,
                                                             attempt.place))
        pair_until, address_until = await self.store.marks([pair, address_key])
        delay = 0.0
        if not robot:
            if await self._refuse_if(pair, pair_until, pair_count >= self.block_after, now,
                                     f"too many failed logins for {name} from this address",
                                     f"`authgate user unlock {name}`", name, address):
                return await self._decide(attempt, now)  # unlocked: on the counters as they are now
            if pair_count >= self.slow_after:
                delay = self.delay
            if not trusted and user_count >= self.user_slow_after:
                delay = max(delay, min(self.max_delay, self.delay * (user_count // self.user_slow_after)))
        if not trusted:
            if await self._refuse_if(address_key, address_until, address_count >= self.address_block_after, now,
                                     "too many failed logins from this address; logging in from where you logged "
                                     "in before still works",
                                     f"`authgate user unlock --address {address}`", name, address):
                return await self._decide(attempt, now)
            if address_count >= self.address_slow_after:
                delay = max(delay, self.delay)
        return delay

    async def _refuse_if(self, key: str, until: float, over: bool, now: float, what: str, remedy: str,
                         name: str, address: str) -> bool:
        """Raises `TooManyAttempts` when locked; True when an administrator's unlock just cleared the
        counters (this attempt's own reservation with them: one failure may go uncounted then)."""
        if until <= now and not over:
            return False
        if await self._apply_unlocks(name, address):
            return True
        left = until - self.clock()  # now: the lock may have been set while this attempt waited on the store
        retry_after = min(int(self.lockout), max(1, math.ceil(left))) if until > now else int(self.lockout)
        first = await self.store.first(key + "reported", now, self.lockout)
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
            unlocked = await self.unlocks.latest(target)
            if unlocked > (await self.store.marks(["unlocked\0" + target]))[0]:
                for prefix in prefixes:
                    await self.store.clear(prefix)
                await self.store.set_mark("unlocked\0" + target, unlocked)
                cleared = True
        return cleared
