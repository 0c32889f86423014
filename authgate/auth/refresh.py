"""Refresh tokens (docker's "identity token"): random, stored as SHA-256, bound to user, service and
the user's password generation, revocable (docs/client-compat.md §8 item 5).

`docker login` stores one instead of the password, and later pulls trade it through
`POST /token grant_type=refresh_token`, so it must stay valid exactly as long as the account does.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from authgate.auth.account_store import AccountSource, UserRecord
from authgate.auth.accounts import AccountError, sha256_hex
from authgate.db.base import utcnow
from authgate.db.versions import account_change
from authgate.db.models import RefreshToken, User
from authgate.db.session import Database

REFRESH_TOKEN_PREFIX = "agrt_"


@dataclass(frozen=True)
class RefreshTokenInfo:
    id: int
    user: str
    service: str
    client_id: str
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    revoked: bool


async def issue_refresh_token(db: Database, user: UserRecord | User, service: str, client_id: str, ttl: int) -> str:
    raw = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = utcnow()
    async with db.session() as session:
        session.add(
            RefreshToken(
                token_hash=sha256_hex(raw),
                user_id=user.id,
                generation=user.generation,
                service=service[:255],
                client_id=client_id[:255],
                created_at=now,
                expires_at=now + timedelta(seconds=ttl),
            )
        )
    return raw


async def redeem_refresh_token(accounts: AccountSource, raw: str, service: str) -> UserRecord | None:
    """The user the token belongs to, or None if it is unknown, revoked, expired, for another
    service, from an older password generation, or its user is disabled.

    Asked of `accounts` (in memory when cached): the refresh grant reads and writes no database row."""
    now = utcnow()
    record = await accounts.refresh_token(sha256_hex(raw))
    if record is None or record.revoked or record.expires_at <= now or record.service != service:
        return None
    user = await accounts.user(record.user)
    if user is None or user.disabled or user.generation != record.generation:
        return None
    await accounts.refresh_token_used(record, now)
    return user


async def list_refresh_tokens(db: Database, user: str | None = None, include_revoked: bool = False) -> list[RefreshTokenInfo]:
    async with db.session() as session:
        query = select(RefreshToken, User.name).join(User, RefreshToken.user_id == User.id).order_by(RefreshToken.id)
        if user:
            query = query.where(User.name == user)
        if not include_revoked:
            query = query.where(RefreshToken.revoked_at.is_(None), RefreshToken.expires_at > utcnow())
        rows = (await session.execute(query)).all()
        return [
            RefreshTokenInfo(t.id, name, t.service, t.client_id, t.created_at, t.expires_at, t.last_used_at,
                             t.revoked_at is not None)
            for t, name in rows
        ]


async def revoke_refresh_tokens(db: Database, token_id: int | None = None, user: str | None = None) -> int:
    """Revoke one token by id, or every token of a user; returns how many were revoked."""
    if token_id is None and user is None:
        raise AccountError("name a token id or --user")
    async with account_change(db) as session:
        query = update(RefreshToken).where(RefreshToken.revoked_at.is_(None)).values(revoked_at=utcnow())
        if token_id is not None:
            query = query.where(RefreshToken.id == token_id)
        if user is not None:
            user_id = (await session.execute(select(User.id).where(User.name == user))).scalar_one_or_none()
            if user_id is None:
                raise AccountError(f"no user named {user!r}")
            query = query.where(RefreshToken.user_id == user_id)
        result = await session.execute(query)
        count: int = result.rowcount  # type: ignore[attr-defined]
        return count
