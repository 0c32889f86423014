"""Password hashing and the cost of checking one on every docker request.

Docker sends Basic credentials on every token request and bcrypt at cost 12 takes ~280 ms here,
so: hashes are checked in a worker thread (the event loop keeps serving), a successful check is
remembered briefly under an HMAC of (name, stored hash, password) with a per-process key (the
plaintext is never kept, and any change of the stored hash — new password, rehash — misses the
cache), and unknown users pay a dummy hash so timing does not reveal which names exist. A failure
is remembered the same way: the login limiter counts one wrong secret repeated as one failure
(containerd retries), so without this a client repeating it would cost a full hash every time.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import secrets
import time
from collections import OrderedDict

import anyio.to_thread
from passlib.context import CryptContext

#: bcrypt is the default and what registry htpasswd files hold (`$2y$`); argon2 is accepted;
#: older schemes still verify and are rehashed on the next successful login.
ACCEPTED_SCHEMES = ["bcrypt", "argon2", "sha512_crypt", "sha256_crypt", "md5_crypt", "apr_md5_crypt"]


def make_context(bcrypt_rounds: int = 12) -> CryptContext:
    return CryptContext(schemes=ACCEPTED_SCHEMES, default="bcrypt", deprecated=ACCEPTED_SCHEMES[2:],
                        bcrypt__rounds=bcrypt_rounds)


class PasswordVerifier:
    """Checks passwords off the event loop, with a short cache of successes."""

    def __init__(self, context: CryptContext, cache_ttl: float = 60.0, cache_size: int = 10_000) -> None:
        self.context = context
        self.cache_ttl = cache_ttl
        self.cache_size = cache_size
        self._cache_key = secrets.token_bytes(32)
        self._cache: OrderedDict[bytes, float] = OrderedDict()
        self._failures: OrderedDict[bytes, float] = OrderedDict()
        self._checking: dict[bytes, asyncio.Future[tuple[bool, str | None]]] = {}

    def hash(self, password: str) -> str:
        hashed: str = self.context.hash(password)
        return hashed

    async def hash_async(self, password: str) -> str:
        return await anyio.to_thread.run_sync(self.context.hash, password)

    def _fingerprint(self, name: str, stored_hash: str, password: str) -> bytes:
        message = b"\0".join([name.encode(), stored_hash.encode(), password.encode()])
        return hmac.new(self._cache_key, message, hashlib.sha256).digest()

    def remembered(self, name: str, stored_hash: str | None, password: str) -> bool:
        """Whether `verify` would answer from memory, without a hash (so without a hash slot)."""
        return self.known(name, stored_hash, password) is not None

    def known(self, name: str, stored_hash: str | None, password: str) -> bool | None:
        """`verify`'s answer when it is in memory (a remembered failure or success), else None: one
        HMAC for the cached login that would otherwise ask `remembered` and then `verify`."""
        key = self._fingerprint(name, stored_hash or "", password)
        if self._fresh(self._failures, key):
            return False
        if stored_hash is not None and self._fresh(self._cache, key):
            return True
        return None

    def remembered_until(self, name: str, stored_hash: str, password: str) -> float | None:
        """When (wall-clock seconds) the remembered success of this password ends, or None if none is:
        an answer repeated from memory (`/token`'s stored answers) must not outlive it."""
        expires = self._cache.get(self._fingerprint(name, stored_hash, password))
        now = time.monotonic()
        return None if expires is None or expires <= now else time.time() + (expires - now)

    async def verify(self, name: str, stored_hash: str | None, password: str) -> tuple[bool, str | None]:
        """(ok, new_hash): `new_hash` is set when the stored hash should be upgraded to the default scheme.

        `stored_hash=None` (unknown user) still costs one dummy hash and always fails.
        """
        key = self._fingerprint(name, stored_hash or "", password)
        if self._fresh(self._failures, key):
            return False, None
        if stored_hash is None:
            await anyio.to_thread.run_sync(self.context.dummy_verify)
            self._remember(self._failures, key)
            return False, None
        if self._fresh(self._cache, key):
            return True, None
        # One hash per credential at a time: when a cached success expires under load, the
        # concurrent requests carrying it wait for one check instead of each paying ~280 ms of CPU.
        check = self._checking.get(key)
        if check is None:
            check = self._checking[key] = asyncio.ensure_future(self._check(key, stored_hash, password))
            check.add_done_callback(lambda _: self._checking.pop(key, None))
        return await asyncio.shield(check)

    async def _check(self, key: bytes, stored_hash: str, password: str) -> tuple[bool, str | None]:
        try:
            ok, new_hash = await anyio.to_thread.run_sync(self.context.verify_and_update, password, stored_hash)
        except (ValueError, TypeError):
            # An unrecognised or corrupt stored hash: a failed login, never a 500.
            ok, new_hash = False, None
        self._remember(self._cache if ok else self._failures, key)
        return bool(ok), new_hash

    @staticmethod
    def _fresh(cache: OrderedDict[bytes, float], key: bytes) -> bool:
        expires = cache.get(key)
        return expires is not None and expires > time.monotonic()

    def _remember(self, cache: OrderedDict[bytes, float], key: bytes) -> None:
        if self.cache_ttl <= 0:
            return
        cache[key] = time.monotonic() + self.cache_ttl
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def forget_all(self) -> None:
        """Drop every cached success (a password changed in this process)."""
        self._cache.clear()
        self._failures.clear()
