"""Console sessions, held in the database: a random cookie value whose SHA-256 names a row.

Server-side rather than a signed cookie so that signing out, disabling the user or removing the
account ends the session at once, in every process sharing the database (replicas included).
A new value is issued at every sign-in (no fixation); the row also carries the CSRF token the
session's forms must send back.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import joinedload

from authgate.auth.accounts import sha256_hex, user_subject
from authgate.db.base import utcnow
from authgate.db.models import ConsoleSession, Membership, User
from authgate.db.session import Database
from authgate.subject import Subject

#: A working day: long enough not to annoy, short enough that a forgotten browser times out.
SESSION_TTL = timedelta(hours=12)
#: Cookie values are 43 characters; anything much longer is not ours and is not hashed.
_MAX_COOKIE = 128


@dataclass(frozen=True)
class SignedIn:
    """The live subject behind a session (re-read on every request) and its CSRF token."""

    subject: Subject
    csrf_token: str
    session_id: int


async def start_session(db: Database, user_name: str, replacing: str | None = None) -> str:
    """A new session for `user_name`; returns the cookie value. The session the browser had before
    (`replacing`) ends, so a value planted before sign-in is worth nothing after it."""
    value = secrets.token_urlsafe(32)
    now = utcnow()
    async with db.session() as session:
        if replacing and len(replacing) <= _MAX_COOKIE:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == sha256_hex(replacing)))
        await session.execute(delete(ConsoleSession).where(ConsoleSession.expires_at < now))
        user_id = (await session.execute(select(User.id).where(User.name == user_name))).scalar_one()
        session.add(ConsoleSession(token_hash=sha256_hex(value), user_id=user_id,
                                   csrf_token=secrets.token_urlsafe(32), created_at=now, expires_at=now + SESSION_TTL))
    return value


async def load_session(db: Database, value: str | None) -> SignedIn | None:
    """The signed-in subject for a cookie value, or None (unknown, expired, user disabled or gone)."""
    if not value or len(value) > _MAX_COOKIE:
        return None
    async with db.session() as session:
        row = (
            await session.execute(
                select(ConsoleSession)
                .where(ConsoleSession.token_hash == sha256_hex(value))
                .options(joinedload(ConsoleSession.user).joinedload(User.memberships).joinedload(Membership.team))
            )
        ).unique().scalar_one_or_none()
        if row is None or row.expires_at <= utcnow() or row.user.disabled:
            return None
        return SignedIn(user_subject(row.user), row.csrf_token, row.id)


async def end_session(db: Database, value: str | None) -> None:
    if value and len(value) <= _MAX_COOKIE:
        async with db.session() as session:
            await session.execute(delete(ConsoleSession).where(ConsoleSession.token_hash == sha256_hex(value)))


async def end_user_sessions(db: Database, user_name: str) -> None:
    """Every console session of a user (disabled by an admin): they are signed out everywhere."""
    async with db.session() as session:
        user_id = select(User.id).where(User.name == user_name).scalar_subquery()
        await session.execute(delete(ConsoleSession).where(ConsoleSession.user_id == user_id))


def same_token(sent: str | None, expected: str) -> bool:
    """Constant-time comparison of a form's CSRF token with the session's."""
    return sent is not None and hmac.compare_digest(sent.encode(), expected.encode())
