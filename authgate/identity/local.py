"""The local database as an identity source: a thin wrapper over `auth.authn` and `auth.accounts`.

The password check itself (hash in a worker thread, success cache, dummy hash for unknown names)
stays where it is; this only translates its result into yes / no / not mine, so a name the
database does not know is passed on to the next source.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from authgate.auth import accounts
from authgate.auth.account_store import user_record
from authgate.auth.authn import LoginResult
from authgate.auth.credentials import BasicCredentials, Secret
from authgate.db.session import Database
from authgate.identity.base import Answer, TeamOrigin
from authgate.identity.people_accounts import find_link

#: `Authenticator._user`: the local password check, unchanged.
CheckUser = Callable[[str, BasicCredentials], Awaitable[LoginResult]]

LOCAL: Final = "local"


class LocalSource:
    name = LOCAL
    kind = LOCAL
    DESCRIPTION = "local: users and robots in authgate's database"

    def __init__(self, db: Database, check_user: CheckUser) -> None:
        self.db = db
        self._check_user = check_user

    async def authenticate(self, username: str, password: Secret) -> Answer:
        result = await self._check_user(username, BasicCredentials(username, password))
        if result.subject is not None:
            return Answer.yes(result.subject, result.user, _origins(result.subject.teams))
        if result.user is None and result.reason == "unknown user":
            return Answer.not_mine()
        return Answer.no(result.reason)

    async def lookup(self, username: str) -> Answer:
        user = await accounts.find_user(self.db, username)
        if user is None:
            return Answer.not_mine()
        if user.disabled:
            return Answer.no("user disabled")
        record = user_record(user)
        subject = record.subject
        link = await find_link(self.db, user.id)  # a device-login user: which teams its provider gave
        given = frozenset(link.teams or []) if link is not None else frozenset()
        origins = tuple(TeamOrigin(t, f"oidc {link.source}: groups claim" if link is not None and t in given
                                   else "database") for t in sorted(subject.teams))
        return Answer.yes(subject, record, origins)

    async def check(self) -> None:
        return None

    def describe(self) -> str:
        return self.DESCRIPTION


def _origins(teams: frozenset[str]) -> tuple[TeamOrigin, ...]:
    return tuple(TeamOrigin(team, "database") for team in sorted(teams))
