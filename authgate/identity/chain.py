"""The ordered chain of identity sources: the first yes or no decides, the chain ends in deny.

A source that is down is skipped with one warning line and a metric; when nothing answered and
something was down, the caller gets `IdentityUnavailable` (a 503 "try again later"), never
"wrong password". Robots (`robot+NAME`) stay with the local database and do not pass here.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from prometheus_client import CollectorRegistry, Counter

from authgate.auth import accounts
from authgate.auth.account_store import UserRecord
from authgate.auth.authn import IdentityUnavailable, LoginResult
from authgate.auth.credentials import BasicCredentials
from authgate.identity.base import Answer, IdentitySource, RechecksUsers, SourceUnavailable, VouchesForRobots
from authgate.identity.local import LOCAL
from authgate.subject import Subject

log = logging.getLogger(__name__)


class IdentityChain:
    def __init__(self, sources: Sequence[IdentitySource], registry: CollectorRegistry | None = None, *,
                 robots: Sequence[VouchesForRobots] = (), rechecks: Sequence[RechecksUsers] = ()) -> None:
        """`robots` and `rechecks`: the sources (of `sources`, in their order) that also vouch for
        robots, and that link users whom a refresh must check again."""
        if not sources:
            raise ValueError("an identity chain needs at least one source")
        self.sources = tuple(sources)
        self.robots = tuple(robots)
        self.rechecks = tuple(rechecks)
        registry = registry if registry is not None else CollectorRegistry()  # never the global one
        self.unavailable = Counter(
            "authgate_identity_source_unavailable", "Times an identity source could not answer and was skipped",
            ["source"], registry=registry,
        )
        self.decided = Counter(
            "authgate_identity_logins", "Logins decided by each identity source", ["source", "outcome"],
            registry=registry,
        )
        #: `decided`'s series by (source, outcome), looked up once: `labels()` on every login was a
        #: measurable part of a cached `/token`.
        self._decided: dict[tuple[str, str], Counter] = {}

    @property
    def external(self) -> bool:
        """Whether any source other than the local database is configured."""
        return any(s.kind != LOCAL for s in self.sources)

    @property
    def rechecks_users(self) -> bool:
        """Whether a refresh grant asks a source again (`recheck`): its answer cannot be repeated from memory."""
        return bool(self.rechecks)

    def _skip(self, source: IdentitySource | RechecksUsers, exc: SourceUnavailable) -> None:
        self.unavailable.labels(source.name).inc()
        log.warning("identity source %s is unavailable, skipped: %s", source.name, exc)

    async def ask(self, username: str, credentials: BasicCredentials | None) -> tuple[Answer, str]:
        """(answer, name of the source that gave it). With `credentials` None the sources look the
        name up (tokens already issued, `authgate identity test`); else they check the password.

        Raises `IdentityUnavailable` when nothing answered and a source was down.
        """
        down: list[str] = []
        last = Answer.not_mine("unknown user")
        for source in self.sources:
            try:
                if credentials is None:
                    answer = await source.lookup(username)
                else:
                    answer = await source.authenticate(username, credentials.password)
            except SourceUnavailable as exc:
                self._skip(source, exc)
                down.append(source.name)
                continue
            if answer.verdict != "not_mine":
                return answer, source.name
            last = answer
        if down:
            raise IdentityUnavailable(down)
        return last, ""

    async def authenticate_user(self, username: str, credentials: BasicCredentials) -> LoginResult:
        """`Authenticator`'s user check: the login limiter around it is unchanged, and a source being
        down raises before the limiter could count a failure."""
        answer, source = await self.ask(username, credentials)
        key = (source or "none", "success" if answer.verdict == "yes" else "failure")
        series = self._decided.get(key)
        if series is None:  # bounded: configured sources (and "none") times two outcomes
            series = self._decided[key] = self.decided.labels(*key)
        series.inc()
        if answer.verdict == "yes":
            epoch = accounts.account_epoch(answer.user) if answer.user is not None else ""
            return LoginResult(answer.subject, answer.user, epoch=epoch, source=source, details=answer.details,
                               counted=series.inc)
        return LoginResult(None, reason=answer.reason or "unknown user", source=source)

    async def resolve(self, username: str) -> Subject | None:
        """The live subject behind a token's `sub` that is not in the local database: None when the
        account is gone, disabled, or can no longer be checked (the client logs in again)."""
        answer, _ = await self.ask(username, None)
        return answer.subject if answer.verdict == "yes" else None

    def robot(self, name: str) -> Subject | None:
        """The live subject behind a `robot:NAME` token that no stored robot has: a CI workload
        while the policy still declares it."""
        for source in self.robots:
            subject = source.robot(name)
            if subject is not None:
                return subject
        return None

    async def recheck(self, user: UserRecord) -> UserRecord | None:
        """At a refresh grant: ask the source that vouches for a provider-linked user (device login)
        whether it still does. The user (perhaps with synced teams), or None when it does not.
        Raises `IdentityUnavailable` when that source cannot answer."""
        for source in self.rechecks:
            try:
                checked = await source.recheck(user)
            except SourceUnavailable as exc:
                self._skip(source, exc)
                raise IdentityUnavailable([source.name]) from None
            if checked is None:
                return None
            user = checked
        return user

    def describe(self) -> list[str]:
        return [source.describe() for source in self.sources]

    async def check(self) -> None:
        for source in self.sources:
            await source.check()
