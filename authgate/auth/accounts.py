"""Account operations on the database: users, teams, robots. The CLI and tests call these directly.

Every change runs in `account_change(db)`, which bumps the `accounts` change counter in the same
transaction (authgate.db.versions): that is how each process's account cache
(authgate.auth.account_cache) learns of it within a second.
Secrets arrive here already hashed (passwords) or leave here exactly once (robot secrets); the
database holds only hashes.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from authgate.auth.account_store import RobotRecord, UserRecord
from authgate.db.base import utcnow
from authgate.db.versions import account_change
from authgate.db.models import Membership, RefreshToken, Robot, Team, User
from authgate.db.session import Database
from authgate.subject import Subject

#: Lower case like the repository namespace `USER/…` a user owns; no `$`, `:` or `+`, so names
#: never need shell quoting and `robot+NAME` / `robot:NAME` cannot collide with a user.
NAME_RE = re.compile(r"[a-z0-9]+(?:[._-][a-z0-9]+)*")
MAX_NAME = 64
#: Robots log in as `robot+NAME`; their token `sub` is `robot:NAME`.
ROBOT_LOGIN_PREFIX = "robot+"
#: Robot secrets carry a prefix so secret scanners and humans recognise them.
ROBOT_SECRET_PREFIX = "agr_"


class AccountError(ValueError):
    """An account operation that cannot be done; the message says why and what to do."""


def check_name(name: str, what: str = "user") -> str:
    if len(name) > MAX_NAME or not NAME_RE.fullmatch(name):
        raise AccountError(
            f"invalid {what} name {name[:80]!r}: use lower-case letters, digits and single . _ - between them"
        )
    return name


def sha256_hex(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class UserInfo:
    name: str
    admin: bool
    disabled: bool
    teams: tuple[str, ...]
    created_at: datetime


# --- users -----------------------------------------------------------------------------------


async def _user(session: AsyncSession, name: str) -> User:
    user = (await session.execute(select(User).where(User.name == name))).scalar_one_or_none()
    if user is None:
        raise AccountError(f"no user named {name!r} (see `authgate user list`)")
    return user


async def count_users(db: Database) -> int:
    async with db.session() as session:
        return int((await session.execute(select(func.count(User.id)))).scalar_one())


async def create_user(db: Database, name: str, password_hash: str, admin: bool = False) -> None:
    check_name(name)
    async with account_change(db) as session:
        if (await session.execute(select(User.id).where(User.name == name))).first():
            raise AccountError(f"user {name!r} already exists (change the password with `authgate user passwd`)")
        if (await session.execute(select(Team.id).where(Team.name == name))).first():
            raise AccountError(f"{name!r} is a team: a user of the same name would own the team's namespace "
                               f"{name}/… under the own-namespace rule; pick another name")
        # A random first generation: a user re-created under an old name never matches the old one's.
        session.add(User(name=name, password_hash=password_hash, admin=admin, disabled=False,
                         generation=secrets.randbelow(2**30)))


async def set_password(db: Database, name: str, password_hash: str) -> None:
    """New hash and a new generation: refresh tokens and cached checks of the old password die."""
    async with account_change(db) as session:
        user = await _user(session, name)
        user.password_hash = password_hash
        user.generation += 1
        await _revoke_user_tokens(session, user.id)


async def update_hash(db: Database, name: str, old_hash: str, new_hash: str) -> None:
    """Rehash on login (deprecated scheme or cost): not a password change, so no new generation."""
    async with account_change(db) as session:
        await session.execute(
            update(User).where(User.name == name, User.password_hash == old_hash).values(password_hash=new_hash)
        )


async def set_disabled(db: Database, name: str, disabled: bool) -> None:
    async with account_change(db) as session:
        user = await _user(session, name)
        if disabled and not user.disabled:
            user.generation += 1  # access tokens issued until now stay dead after `user enable`
            await _revoke_user_tokens(session, user.id)
        user.disabled = disabled


async def set_admin(db: Database, name: str, admin: bool) -> None:
    async with account_change(db) as session:
        (await _user(session, name)).admin = admin


async def remove_user(db: Database, name: str) -> None:
    async with account_change(db) as session:
        user = await _user(session, name)
        await session.execute(delete(RefreshToken).where(RefreshToken.user_id == user.id))
        await session.execute(delete(Membership).where(Membership.user_id == user.id))
        await session.delete(user)


async def list_users(db: Database) -> list[UserInfo]:
    async with db.session() as session:
        users = (
            await session.execute(
                select(User).options(selectinload(User.memberships).selectinload(Membership.team)).order_by(User.name)
            )
        ).scalars()
        return [
            UserInfo(u.name, u.admin, u.disabled, tuple(sorted(m.team.name for m in u.memberships)), u.created_at)
            for u in users
        ]


async def find_user(db: Database, name: str) -> User | None:
    """The user row with teams loaded, or None: for admin pages and commands. The hot path (logins,
    tokens) asks the account cache instead (`AuthServices.accounts`)."""
    async with db.session() as session:
        return (await session.execute(
            select(User).where(User.name == name).options(selectinload(User.memberships).selectinload(Membership.team))
        )).scalar_one_or_none()


async def find_robot(db: Database, name: str) -> Robot | None:
    async with db.session() as session:
        return (await session.execute(select(Robot).where(Robot.name == name))).scalar_one_or_none()


def account_epoch(account: User | Robot | UserRecord | RobotRecord) -> str:
    """Names one incarnation of an account, for the tokens issued to it (tokens.EPOCH_CLAIM).

    It changes when the account is removed and created again under the same name (a new row: new
    creation time; a user's generation starts at random), when a user is disabled or changes
    password, and when a robot is disabled or brought back after it expired (the generation is
    bumped), so tokens issued before stay dead whatever happens next.
    """
    kind = "user" if isinstance(account, (User, UserRecord)) else "robot"
    return _epoch(kind, account.id, account.created_at, account.generation)


@functools.lru_cache(maxsize=4096)
def _epoch(kind: str, id: int, created_at: datetime, generation: int) -> str:
    """Memoized: every bearer request compares its token's epoch with the account's (a sha256 and a
    float format each time were ~5% of a manifest pull)."""
    text = f"{kind}:{id}:{created_at.timestamp():.6f}:{generation}"
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def user_subject(user: User) -> Subject:
    return Subject("user", user.name, frozenset(m.team.name for m in user.memberships), bool(user.admin))


def parse_htpasswd(text: str) -> tuple[list[tuple[str, str]], list[str]]:
    """(name, bcrypt hash) pairs and human-readable reasons for the lines skipped."""
    entries: list[tuple[str, str]] = []
    skipped: list[str] = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, sep, hashed = line.partition(":")
        if not sep or not hashed.startswith(("$2y$", "$2a$", "$2b$")):
            skipped.append(f"line {number}: not a bcrypt entry (registry htpasswd files use `htpasswd -B`)")
        elif not NAME_RE.fullmatch(name) or len(name) > MAX_NAME:
            skipped.append(f"line {number}: user name {name[:80]!r} is not a valid authgate name")
        else:
            entries.append((name, hashed))
    return entries, skipped


# --- teams -----------------------------------------------------------------------------------


async def _team(session: AsyncSession, name: str) -> Team:
    team = (await session.execute(select(Team).where(Team.name == name))).scalar_one_or_none()
    if team is None:
        raise AccountError(f"no team named {name!r} (create it with `authgate team create {name}`)")
    return team


async def create_team(db: Database, name: str) -> None:
    check_name(name, "team")
    async with db.session() as session:
        if (await session.execute(select(Team.id).where(Team.name == name))).first():
            raise AccountError(f"team {name!r} already exists")
        if (await session.execute(select(User.id).where(User.name == name))).first():
            raise AccountError(f"{name!r} is a user: a team of the same name would share the user's namespace "
                               f"{name}/…; pick another name")
        session.add(Team(name=name))


async def add_members(db: Database, team_name: str, users: list[str]) -> None:
    async with account_change(db) as session:
        team = await _team(session, team_name)
        for name in users:
            user = await _user(session, name)
            exists = await session.execute(
                select(Membership.id).where(Membership.team_id == team.id, Membership.user_id == user.id)
            )
            if not exists.first():
                session.add(Membership(team_id=team.id, user_id=user.id))


async def remove_members(db: Database, team_name: str, users: list[str]) -> None:
    async with account_change(db) as session:
        team = await _team(session, team_name)
        for name in users:
            user = await _user(session, name)
            await session.execute(delete(Membership).where(Membership.team_id == team.id, Membership.user_id == user.id))


async def delete_team(db: Database, name: str) -> None:
    async with account_change(db) as session:
        team = await _team(session, name)
        await session.execute(delete(Membership).where(Membership.team_id == team.id))
        await session.delete(team)


async def list_teams(db: Database) -> dict[str, list[str]]:
    async with db.session() as session:
        teams = (
            await session.execute(
                select(Team).options(selectinload(Team.memberships).selectinload(Membership.user)).order_by(Team.name)
            )
        ).scalars()
        return {t.name: sorted(m.user.name for m in t.memberships) for t in teams}


# --- robots ----------------------------------------------------------------------------------


async def create_robot(db: Database, name: str, expires_in: timedelta | None, description: str = "") -> str:
    """Returns the secret; it is shown once and only its SHA-256 is stored."""
    check_name(name, "robot")
    secret = ROBOT_SECRET_PREFIX + secrets.token_urlsafe(32)
    async with account_change(db) as session:
        if (await session.execute(select(Robot.id).where(Robot.name == name))).first():
            raise AccountError(f"robot {name!r} already exists (remove it first to get a new secret)")
        session.add(
            Robot(
                name=name,
                secret_hash=sha256_hex(secret),
                description=description,
                disabled=False,
                expires_at=utcnow() + expires_in if expires_in else None,
            )
        )
    return secret


async def _robot(session: AsyncSession, name: str) -> Robot:
    robot = (await session.execute(select(Robot).where(Robot.name == name))).scalar_one_or_none()
    if robot is None:
        raise AccountError(f"no robot named {name!r} (see `authgate robot list`)")
    return robot


async def set_robot_disabled(db: Database, name: str, disabled: bool) -> None:
    async with account_change(db) as session:
        robot = await _robot(session, name)
        if disabled and not robot.disabled:
            robot.generation += 1  # access tokens issued until now stay dead after `robot enable`
        robot.disabled = disabled


async def set_robot_expiry(db: Database, name: str, expires_in: timedelta | None) -> datetime | None:
    """A new lifetime counted from now (None: never expires); returns the new expiry time.

    A robot that had already expired gets a new generation, as one disabled does: tokens issued
    before it expired stay dead. Extending a live robot keeps its tokens (a CI job keeps running).
    """
    async with account_change(db) as session:
        robot = await _robot(session, name)
        now = utcnow()
        if robot.expires_at is not None and robot.expires_at <= now:
            robot.generation += 1
        expires_at = now + expires_in if expires_in else None
        robot.expires_at = expires_at
    return expires_at


async def remove_robot(db: Database, name: str) -> None:
    async with account_change(db) as session:
        await session.delete(await _robot(session, name))


async def list_robots(db: Database) -> list[Robot]:
    async with db.session() as session:
        return list((await session.execute(select(Robot).order_by(Robot.name))).scalars())


def robot_usable(robot: Robot, now: datetime | None = None) -> bool:
    return not robot.disabled and (robot.expires_at is None or robot.expires_at > (now or utcnow()))


async def _revoke_user_tokens(session: AsyncSession, user_id: int) -> None:
    await session.execute(
        update(RefreshToken)
        .where(RefreshToken.user_id == user_id, RefreshToken.revoked_at.is_(None))
        .values(revoked_at=utcnow())
    )
