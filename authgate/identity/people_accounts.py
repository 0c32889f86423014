"""Users an OpenID provider vouches for, in the database: created at first device login, linked to
the provider's `sub`, teams synced from the provider's groups.

They are ordinary users (refresh tokens, `authgate token revoke`, `user disable` all apply) with no
usable password: a password login for them fails like a wrong password. A name that already
belongs to a local account is refused, never taken over.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from authgate.db.base import utcnow
from authgate.db.models import IdentityLink, Membership, Team, User
from authgate.db.versions import account_change
from authgate.db.session import Database

log = logging.getLogger(__name__)

#: Not a hash any scheme accepts: the password check fails for it (and costs no hashing).
NO_PASSWORD = "!oidc"


class PersonError(Exception):
    """A sign-in that cannot become an authgate login; the message tells the person why."""


async def _sync_teams(session: AsyncSession, user: User, link: IdentityLink, wanted: frozenset[str]) -> None:
    """Give the memberships in `wanted` (creating teams as needed), take back those this link gave
    before and the provider no longer lists. Memberships given by hand are left alone."""
    granted: set[str] = set()
    for name in sorted(wanted):
        if (await session.execute(select(User.id).where(User.name == name))).first():
            log.warning("provider group maps to team %r, but a user has that name: membership skipped", name)
            continue
        team = (await session.execute(select(Team).where(Team.name == name))).scalar_one_or_none()
        if team is None:
            team = Team(name=name)
            session.add(team)
            await session.flush()
        exists = await session.execute(
            select(Membership.id).where(Membership.team_id == team.id, Membership.user_id == user.id))
        if not exists.first():
            session.add(Membership(team_id=team.id, user_id=user.id))
        granted.add(name)
    for name in set(link.teams or []) - granted:
        team_id = (await session.execute(select(Team.id).where(Team.name == name))).scalar_one_or_none()
        if team_id is not None:
            await session.execute(delete(Membership).where(Membership.team_id == team_id,
                                                           Membership.user_id == user.id))
    link.teams = sorted(granted)


async def link_person(db: Database, source: str, subject: str, username: str, teams: frozenset[str],
                      sealed_refresh_token: str | None, now: datetime | None = None) -> User:
    """The user for this provider subject, created or updated. Raises `PersonError`.

    `sealed_refresh_token` None keeps the one stored (a console sign-in asks for none); a person
    who never had one is re-checked as refused, which ends only refresh tokens they do not have."""
    async with account_change(db) as session:  # users and memberships: caches must learn
        link = (await session.execute(
            select(IdentityLink).where(IdentityLink.source == source, IdentityLink.subject == subject)
        )).scalar_one_or_none()
        user = await session.get(User, link.user_id) if link is not None else None
        if user is None:
            if (await session.execute(select(User.id).where(User.name == username))).first():
                raise PersonError(f"the name {username!r} already belongs to another authgate account; "
                                  "ask an administrator")
            user = User(name=username, password_hash=NO_PASSWORD, admin=False, disabled=False, generation=0)
            session.add(user)
            await session.flush()
            if link is not None:
                await session.delete(link)  # its user was removed: start over
                await session.flush()
            link = IdentityLink(user_id=user.id, source=source, subject=subject, teams=[],
                                sealed_refresh_token="", checked_at=now or utcnow())
            session.add(link)
        assert link is not None
        if user.disabled:
            raise PersonError(f"the authgate account {user.name!r} is disabled; ask an administrator")
        if sealed_refresh_token is not None:
            link.sealed_refresh_token = sealed_refresh_token
        link.checked_at = now or utcnow()
        await _sync_teams(session, user, link, teams)
        return user


async def find_link(db: Database, user_id: int) -> IdentityLink | None:
    async with db.session() as session:
        return (await session.execute(
            select(IdentityLink).where(IdentityLink.user_id == user_id))).scalar_one_or_none()


async def update_link(db: Database, user_id: int, teams: frozenset[str], sealed_refresh_token: str | None) -> None:
    """After a successful re-check at the provider: new groups, the rotated refresh token."""
    async with account_change(db) as session:
        link = (await session.execute(
            select(IdentityLink).where(IdentityLink.user_id == user_id))).scalar_one_or_none()
        user = await session.get(User, user_id)
        if link is None or user is None:
            return
        if sealed_refresh_token:
            link.sealed_refresh_token = sealed_refresh_token
        link.checked_at = utcnow()
        await _sync_teams(session, user, link, teams)
