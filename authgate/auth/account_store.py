"""What a request needs to know about an account, as immutable records, and where they come from.

`AccountSource` is the small interface the hot path asks (`/token` logins, the refresh grant, every
`/v2/` bearer token): `DatabaseAccounts` answers from the database, `CachedAccounts`
(authgate.auth.account_cache) from memory in front of it. Another identity source (LDAP, OIDC) can
wrap or chain the same interface. Records are plain frozen values, never ORM rows: they are shared
between concurrent requests and outlive the session that loaded them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import selectinload

from authgate.db.models import Membership, RefreshToken, Robot, User
from authgate.db.session import Database
from authgate.subject import Subject

#: `last_used_at` of a refresh token is written at most this often: it is for `authgate token list`.
TOUCH_INTERVAL = timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class UserRecord:
    id: int
    name: str
    password_hash: str
    admin: bool
    disabled: bool
    #: Bumped on every password change and disable: refresh tokens of older generations are dead.
    generation: int
    teams: frozenset[str]
    #: With `id` and `generation`, names this incarnation of the account (accounts.account_epoch).
    created_at: datetime

    @property
    def subject(self) -> Subject:
        return Subject("user", self.name, self.teams, self.admin)


@dataclass(frozen=True, slots=True)
class RobotRecord:
    id: int
    name: str
    secret_hash: str
    disabled: bool
    expires_at: datetime | None
    generation: int
    created_at: datetime

    def usable(self, now: datetime) -> bool:
        return not self.disabled and (self.expires_at is None or self.expires_at > now)


@dataclass(frozen=True, slots=True)
class RefreshRecord:
    id: int
    user: str
    generation: int
    service: str
    expires_at: datetime
    revoked: bool
    last_used_at: datetime | None


class AccountSource(Protocol):
    """Answers None for an account that does not exist."""

    async def user(self, name: str) -> UserRecord | None: ...

    async def robot(self, name: str) -> RobotRecord | None: ...

    async def refresh_token(self, token_hash: str) -> RefreshRecord | None: ...

    async def refresh_token_used(self, record: RefreshRecord, when: datetime) -> None:
        """Note that a refresh token was redeemed (`authgate token list` shows when)."""


def user_record(user: User) -> UserRecord:
    return UserRecord(user.id, user.name, user.password_hash, bool(user.admin), bool(user.disabled),
                      user.generation, frozenset(m.team.name for m in user.memberships), user.created_at)


class DatabaseAccounts:
    """The `AccountSource` that asks the database every time (one query per question)."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def user(self, name: str) -> UserRecord | None:
        async with self.db.session() as session:
            user = (await session.execute(
                select(User).where(User.name == name)
                .options(selectinload(User.memberships).selectinload(Membership.team))
            )).scalar_one_or_none()
            return user_record(user) if user is not None else None

    async def robot(self, name: str) -> RobotRecord | None:
        async with self.db.session() as session:
            robot = (await session.execute(select(Robot).where(Robot.name == name))).scalar_one_or_none()
            if robot is None:
                return None
            return RobotRecord(robot.id, robot.name, robot.secret_hash, bool(robot.disabled), robot.expires_at,
                               robot.generation, robot.created_at)

    async def refresh_token(self, token_hash: str) -> RefreshRecord | None:
        async with self.db.session() as session:
            row = (await session.execute(
                select(RefreshToken, User.name).join(User, RefreshToken.user_id == User.id)
                .where(RefreshToken.token_hash == token_hash)
            )).first()
            if row is None:
                return None
            token, user = row
            return RefreshRecord(token.id, user, token.generation, token.service, token.expires_at,
                                 token.revoked_at is not None, token.last_used_at)

    async def refresh_token_used(self, record: RefreshRecord, when: datetime) -> None:
        if record.last_used_at is None or when - record.last_used_at > TOUCH_INTERVAL:
            await self.touch_refresh_tokens({record.id: when})

    async def touch_refresh_tokens(self, used: dict[int, datetime]) -> None:
        """Write `last_used_at` for many tokens in one transaction (not an account change)."""
        if not used:
            return
        async with self.db.session() as session:
            for token_id, when in used.items():
                await session.execute(update(RefreshToken).where(RefreshToken.id == token_id)
                                      .values(last_used_at=when))
