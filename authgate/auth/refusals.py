"""Why a login was refused, in words the person can act on, where saying so reveals nothing.

A wrong name or password stays "invalid username or password" (no hint which names exist). But a
correct password for a disabled account, or a refresh token authgate itself issued, already prove
who is asking: telling them "your account is disabled" instead of "run docker login again" (which
then fails with "invalid username or password") saves them an hour and leaks nothing. The same
lookup attributes a refused refresh token to its owner in the audit log, not to `anonymous`.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import joinedload

from authgate.auth.accounts import sha256_hex
from authgate.db.base import utcnow
from authgate.db.models import RefreshToken
from authgate.db.session import Database

INVALID_REFRESH = "the refresh token is invalid, revoked or expired; run `docker login` again"


def disabled_message(kind: str, name: str) -> str:
    enable = f"authgate {'robot' if kind == 'robot' else 'user'} enable {name}"
    return f"the account {name} is disabled; an administrator can enable it (`{enable}`)"


def login_refusal_message(reason: str, username: str) -> str:
    """What the client is told for a failed password login whose `reason` the authenticator gave."""
    if reason == "user disabled":  # only reached with the right password
        return disabled_message("user", username)
    if reason == "robot disabled or expired":  # only reached with the right secret
        return f"the robot account {username} is disabled or expired; an administrator can check `authgate robot list`"
    return "invalid username or password"


@dataclass(frozen=True)
class RefreshRefusal:
    #: The user the presented token was issued to; None when authgate never issued it.
    owner: str | None
    #: For the audit log.
    reason: str
    #: For the client.
    message: str


async def refresh_refusal(db: Database, raw: str, service: str) -> RefreshRefusal:
    """Why `redeem_refresh_token` refused `raw` (called only after it did)."""
    async with db.session() as session:
        row = (await session.execute(
            select(RefreshToken).where(RefreshToken.token_hash == sha256_hex(raw)).options(joinedload(RefreshToken.user))
        )).scalar_one_or_none()
        if row is None:
            return RefreshRefusal(None, "invalid refresh token", INVALID_REFRESH)
        user = row.user
        if user.disabled:
            return RefreshRefusal(user.name, "user disabled", disabled_message("user", user.name))
        if row.service != service:
            return RefreshRefusal(user.name, "refresh token for another service", INVALID_REFRESH)
        if user.generation != row.generation:
            return RefreshRefusal(user.name, "password changed since this login",
                                  f"the password of {user.name} changed since this docker login; run `docker login` "
                                  "again")
        if row.revoked_at is not None:
            return RefreshRefusal(user.name, "refresh token revoked", INVALID_REFRESH)
        if row.expires_at <= utcnow():
            return RefreshRefusal(user.name, "refresh token expired",
                                  "this docker login has expired; run `docker login` again")
        return RefreshRefusal(user.name, "refresh token refused", INVALID_REFRESH)
