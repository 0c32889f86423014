"""Authenticate Basic credentials: users (bcrypt/argon2) and robots (SHA-256 of a random secret).

Each backend answers a subject or None; anything else ends in "no". The login limiter wraps both,
so guessing is slowed and then refused whoever the name belongs to.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field

from authgate.auth import accounts
from authgate.auth.account_store import AccountSource, UserRecord
from authgate.auth.credentials import BasicCredentials
from authgate.auth.limiter import Attempt, LoginLimiter
from authgate.auth.passwords import PasswordVerifier
from authgate.db.base import utcnow
from authgate.db.session import Database
from authgate.subject import Subject

log = logging.getLogger(__name__)

#: The login in progress, so the local password check (reached directly or through the identity
#: chain) takes its hash slot from the limiter's attempt.
_attempt: ContextVar[Attempt | None] = ContextVar("authgate_login_attempt", default=None)


class IdentityUnavailable(Exception):
    """No identity source answered and at least one was down: the client must hear "try again
    later", not "wrong password" (a person would otherwise reset a password that was right).
    Raised by the identity chain (authgate.identity), answered as a 503 by auth's endpoints."""

    def __init__(self, sources: list[str]) -> None:
        self.sources = sources
        super().__init__(
            f"the identity source{'s' if len(sources) > 1 else ''} {', '.join(sources)} "
            "that could check this account cannot be reached; try again later"
        )


@dataclass(frozen=True)
class LoginResult:
    """`subject` on success; `user` is the row for users (refresh tokens bind to it)."""

    subject: Subject | None
    user: UserRecord | None = None
    reason: str = ""
    #: `accounts.account_epoch` of the account, for the token's epoch claim.
    epoch: str = ""
    #: The identity source that decided (`local`, an LDAP source's name); "" when none knew the name.
    source: str = "local"
    #: For the audit event: what the source said about the identity (a CI job's claims).
    details: dict[str, str] = field(default_factory=dict)
    #: What counted this login in the metrics (the identity chain's per-source series): an answer
    #: repeated from memory (`/token`'s stored answers) counts again through it.
    counted: Callable[[], None] | None = None


class Authenticator:
    def __init__(self, db: Database, accounts: AccountSource, verifier: PasswordVerifier, limiter: LoginLimiter
                 ) -> None:
        self.db = db
        self.accounts = accounts
        self.verifier = verifier
        self.limiter = limiter
        #: Who checks user names and passwords: the local database, or the identity chain
        #: (authgate.identity) that wraps it; robots always stay local.
        self.check_user: Callable[[str, BasicCredentials], Awaitable[LoginResult]] = self._user
        #: Login names many clients share (CI workload tokens: `oidc`): the limiter counts their
        #: failures per address only, so one bad job cannot lock every job out.
        self.shared_logins: frozenset[str] = frozenset()
        #: Logins needing a hash, by limiter fingerprint (name, address, secret), while one is checked.
        self._in_flight: dict[str, asyncio.Future[None]] = {}

    async def login(self, credentials: BasicCredentials, address: str | None) -> LoginResult:
        """Raises `TooManyAttempts` when the pair or address is locked out, or hashing is saturated.

        Identical logins arriving together (CI jobs of one user starting at once) wait for the first
        one's hash instead of each reserving an attempt: reservations count as possible failures, so
        forty of them would lock the pair although every password was right. After the wait the
        password is remembered (one bcrypt for all) or a known failure (counted once)."""
        username = credentials.username
        # Robots and shared logins (CI workload tokens) are counted per address only: a robot's
        # secret cannot be guessed, and one bad job must not lock every job out.
        per_address_only = username.startswith(accounts.ROBOT_LOGIN_PREFIX) or username in self.shared_logins
        # Costing no hash (a robot's SHA-256, a password this process checked moments ago), a login
        # is not reserved in the shared limiter: the hot path pays no database round trip for it.
        if per_address_only or await self._remembered(username, credentials):
            return await self._login(credentials, address, per_address_only, cheap=True)
        key = self.limiter.fingerprint(username, address, credentials.password.reveal())
        first = self._in_flight.get(key)
        if first is not None:
            await asyncio.shield(first)
            cheap = await self._remembered(username, credentials)
            return await self._login(credentials, address, per_address_only, cheap)
        self._in_flight[key] = done = asyncio.get_running_loop().create_future()
        try:
            return await self._login(credentials, address, per_address_only, cheap=False)
        finally:
            del self._in_flight[key]
            done.set_result(None)

    async def _login(self, credentials: BasicCredentials, address: str | None, per_address_only: bool,
                     cheap: bool) -> LoginResult:
        username = credentials.username
        async with self.limiter.attempt(username, address, credentials.password.reveal(),
                                        robot=per_address_only, cheap=cheap) as attempt:
            current = _attempt.set(attempt)
            try:
                if username.startswith(accounts.ROBOT_LOGIN_PREFIX):
                    async with attempt.hashing():
                        result = await self._robot(username.removeprefix(accounts.ROBOT_LOGIN_PREFIX), credentials)
                else:
                    result = await self.check_user(username, credentials)
            finally:
                _attempt.reset(current)
            if result.subject is not None:
                attempt.succeeded()
        return result

    async def _remembered(self, name: str, credentials: BasicCredentials) -> bool:
        user = await self.accounts.user(name)
        return user is not None and self.verifier.remembered(name, user.password_hash, credentials.password.reveal())

    async def _user(self, name: str, credentials: BasicCredentials) -> LoginResult:
        user = await self.accounts.user(name)
        stored = user.password_hash if user is not None else None
        password = credentials.password.reveal()
        known = self.verifier.known(name, stored, password)
        if known is not None:
            ok, new_hash = known, None
        else:
            attempt = _attempt.get()
            slot: AbstractAsyncContextManager[None] = attempt.hashing() if attempt is not None else nullcontext()
            async with slot:
                ok, new_hash = await self.verifier.verify(name, stored, password)
        if user is None:
            return LoginResult(None, reason="unknown user")
        if not ok:
            return LoginResult(None, reason="wrong password")
        if user.disabled:
            return LoginResult(None, reason="user disabled")
        if new_hash:
            await accounts.update_hash(self.db, name, user.password_hash, new_hash)
            log.info("upgraded the password hash of user %s to the current scheme", name)
        return LoginResult(user.subject, user, epoch=accounts.account_epoch(user))

    async def _robot(self, name: str, credentials: BasicCredentials) -> LoginResult:
        robot = await self.accounts.robot(name)
        presented = accounts.sha256_hex(credentials.password.reveal())
        stored = robot.secret_hash if robot is not None else "0" * 64
        ok = hmac.compare_digest(presented, stored)
        if robot is None or not ok:
            return LoginResult(None, reason="unknown robot or wrong secret")
        if not robot.usable(utcnow()):
            return LoginResult(None, reason="robot disabled or expired")
        return LoginResult(Subject("robot", robot.name), epoch=accounts.account_epoch(robot))
