"""Authenticate Basic credentials: users (bcrypt/argon2) and robots (SHA-256 of a random secret).

Each backend answers a subject or None; anything else ends in "no". The login limiter wraps both,
so guessing is slowed and then refused whoever the name belongs to.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

import anyio

from authgate.auth import accounts
from authgate.auth.account_store import AccountSource, UserRecord
from authgate.auth.credentials import BasicCredentials
from authgate.auth.limiter import LoginLimiter
from authgate.auth.passwords import PasswordVerifier
from authgate.db.base import utcnow
from authgate.db.session import Database
from authgate.subject import Subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginResult:
    """`subject` on success; `user` is the row for users (refresh tokens bind to it)."""

    subject: Subject | None
    user: UserRecord | None = None
    reason: str = ""


class Authenticator:
    def __init__(self, db: Database, accounts: AccountSource, verifier: PasswordVerifier, limiter: LoginLimiter
                 ) -> None:
        self.db = db
        self.accounts = accounts
        self.verifier = verifier
        self.limiter = limiter

    async def login(self, credentials: BasicCredentials, address: str | None) -> LoginResult:
        """Raises `TooManyAttempts` when the user or address is locked out."""
        username = credentials.username
        delay = self.limiter.check(username, address)
        if delay:
            await anyio.sleep(delay)
        if username.startswith(accounts.ROBOT_LOGIN_PREFIX):
            result = await self._robot(username.removeprefix(accounts.ROBOT_LOGIN_PREFIX), credentials)
        else:
            result = await self._user(username, credentials)
        if result.subject is None:
            self.limiter.failure(username, address, credentials.password.reveal())
        else:
            self.limiter.success(username)
        return result

    async def _user(self, name: str, credentials: BasicCredentials) -> LoginResult:
        user = await self.accounts.user(name)
        stored = user.password_hash if user is not None else None
        ok, new_hash = await self.verifier.verify(name, stored, credentials.password.reveal())
        if user is None:
            return LoginResult(None, reason="unknown user")
        if not ok:
            return LoginResult(None, reason="wrong password")
        if user.disabled:
            return LoginResult(None, reason="user disabled")
        if new_hash:
            await accounts.update_hash(self.db, name, user.password_hash, new_hash)
            log.info("upgraded the password hash of user %s to the current scheme", name)
        return LoginResult(user.subject, user)

    async def _robot(self, name: str, credentials: BasicCredentials) -> LoginResult:
        robot = await self.accounts.robot(name)
        presented = accounts.sha256_hex(credentials.password.reveal())
        stored = robot.secret_hash if robot is not None else "0" * 64
        ok = hmac.compare_digest(presented, stored)
        if robot is None or not ok:
            return LoginResult(None, reason="unknown robot or wrong secret")
        if not robot.usable(utcnow()):
            return LoginResult(None, reason="robot disabled or expired")
        return LoginResult(Subject("robot", robot.name))
