"""Authenticate Basic credentials: users (bcrypt/argon2) and robots (SHA-256 of a random secret).

Each backend answers a subject or None; anything else ends in "no". The login limiter wraps both,
so guessing is slowed and then refused whoever the name belongs to.
"""

from __future__ import annotations

import hmac
import logging
from dataclasses import dataclass

from authgate.auth import accounts
from authgate.auth.credentials import BasicCredentials
from authgate.auth.limiter import Attempt, LoginLimiter
from authgate.auth.passwords import PasswordVerifier
from authgate.db.models import User
from authgate.db.session import Database
from authgate.subject import Subject

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginResult:
    """`subject` on success; `user` is the row for users (refresh tokens bind to it)."""

    subject: Subject | None
    user: User | None = None
    reason: str = ""
    #: `accounts.account_epoch` of the account, for the token's epoch claim.
    epoch: str = ""


class Authenticator:
    def __init__(self, db: Database, verifier: PasswordVerifier, limiter: LoginLimiter) -> None:
        self.db = db
        self.verifier = verifier
        self.limiter = limiter

    async def login(self, credentials: BasicCredentials, address: str | None) -> LoginResult:
        """Raises `TooManyAttempts` when the pair or address is locked out, or hashing is saturated."""
        username = credentials.username
        robot = username.startswith(accounts.ROBOT_LOGIN_PREFIX)
        async with self.limiter.attempt(username, address, credentials.password.reveal(), robot=robot) as attempt:
            if robot:
                async with attempt.hashing():
                    result = await self._robot(username.removeprefix(accounts.ROBOT_LOGIN_PREFIX), credentials)
            else:
                result = await self._user(username, credentials, attempt)
            if result.subject is not None:
                attempt.succeeded()
        return result

    async def _user(self, name: str, credentials: BasicCredentials, attempt: Attempt) -> LoginResult:
        user = await accounts.find_user(self.db, name)
        stored = user.password_hash if user is not None else None
        password = credentials.password.reveal()
        if self.verifier.remembered(name, stored, password):
            ok, new_hash = await self.verifier.verify(name, stored, password)
        else:
            async with attempt.hashing():
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
        return LoginResult(accounts.user_subject(user), user, epoch=accounts.account_epoch(user))

    async def _robot(self, name: str, credentials: BasicCredentials) -> LoginResult:
        robot = await accounts.find_robot(self.db, name)
        presented = accounts.sha256_hex(credentials.password.reveal())
        stored = robot.secret_hash if robot is not None else "0" * 64
        ok = hmac.compare_digest(presented, stored)
        if robot is None or not ok:
            return LoginResult(None, reason="unknown robot or wrong secret")
        if not accounts.robot_usable(robot):
            return LoginResult(None, reason="robot disabled or expired")
        return LoginResult(Subject("robot", robot.name), epoch=accounts.account_epoch(robot))
