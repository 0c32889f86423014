"""Brute-force brake on password guessing, per user name and per client address.

After `slow_after` failures in the window each attempt is delayed; after `block_after` the
user (or address) is refused with 429 and `Retry-After` until the lockout ends. Only a wrong
secret counts: unauthenticated `/v2/` pings and anonymous token requests never do (gitlab#35617),
and the same wrong secret retried at once by one client (containerd's POST then GET fallback,
docs/client-compat.md §5) counts once. State is per process; replicas each keep their own.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import deque
from dataclasses import dataclass, field


class TooManyAttempts(Exception):
    def __init__(self, retry_after: int, first: bool = True) -> None:
        super().__init__(f"too many failed logins; retry after {retry_after} s")
        self.retry_after = retry_after
        #: The first refusal of this lockout: worth an audit event. Later ones are not, or an
        #: unauthenticated client could grow the audit log without bound.
        self.first = first


@dataclass
class _Counter:
    failures: deque[float] = field(default_factory=deque)
    locked_until: float = 0.0
    refusal_reported: bool = False


class LoginLimiter:
    def __init__(
        self,
        slow_after: int = 5,
        block_after: int = 10,
        window: float = 900.0,
        lockout: float = 300.0,
        address_factor: int = 3,
        delay: float = 1.0,
        dedupe_seconds: float = 30.0,
        max_entries: int = 100_000,
    ) -> None:
        self.slow_after = slow_after
        self.block_after = block_after
        self.window = window
        self.lockout = lockout
        #: Addresses may be NAT gateways for many people: they get a larger allowance.
        self.address_factor = address_factor
        self.delay = delay
        self.dedupe_seconds = dedupe_seconds
        self.max_entries = max_entries
        self._counters: dict[str, _Counter] = {}
        self._recent: dict[bytes, float] = {}
        self._key = secrets.token_bytes(32)

    def _keys(self, username: str, address: str | None) -> list[tuple[str, int]]:
        keys = [(f"u:{username}", 1)] if username else []
        if address:
            keys.append((f"a:{address}", self.address_factor))
        return keys

    def _prune(self, counter: _Counter, now: float) -> None:
        while counter.failures and counter.failures[0] < now - self.window:
            counter.failures.popleft()

    def check(self, username: str, address: str | None, now: float | None = None) -> float:
        """Seconds to wait before checking the password; raises `TooManyAttempts` when locked out."""
        moment = time.monotonic() if now is None else now
        delay = 0.0
        for key, factor in self._keys(username, address):
            counter = self._counters.get(key)
            if counter is None:
                continue
            if counter.locked_until > moment:
                first, counter.refusal_reported = not counter.refusal_reported, True
                raise TooManyAttempts(max(1, math.ceil(counter.locked_until - moment)), first)
            self._prune(counter, moment)
            if len(counter.failures) >= self.slow_after * factor:
                delay = self.delay
        return delay

    def failure(self, username: str, address: str | None, secret: str, now: float | None = None) -> None:
        moment = time.monotonic() if now is None else now
        fingerprint = hmac.new(self._key, f"{address}\0{username}\0{secret}".encode(), hashlib.sha256).digest()
        seen = self._recent.get(fingerprint)
        self._recent[fingerprint] = moment
        if seen is not None and moment - seen < self.dedupe_seconds:
            return
        for key, factor in self._keys(username, address):
            counter = self._counters.setdefault(key, _Counter())
            self._prune(counter, moment)
            counter.failures.append(moment)
            if len(counter.failures) >= self.block_after * factor:
                counter.locked_until = moment + self.lockout
                counter.refusal_reported = False
                counter.failures.clear()
        self._bound(moment)

    def success(self, username: str) -> None:
        self._counters.pop(f"u:{username}", None)

    def _bound(self, now: float) -> None:
        if len(self._recent) > self.max_entries:
            self._recent = {k: t for k, t in self._recent.items() if now - t < self.dedupe_seconds}
        if len(self._counters) > self.max_entries:
            for counter in self._counters.values():
                self._prune(counter, now)
            for key in [k for k, c in self._counters.items() if c.locked_until < now and not c.failures]:
                del self._counters[key]
