"""The contract between identity sources and the chain that asks them in order.

A source answers one of three things about a name and password: yes (here is the subject), no
(the name is mine and the password or account is not good), or not mine (ask the next source).
A source that cannot answer at all (server down, timeout, its service account refused) raises
`SourceUnavailable`: the chain skips it, logs it and counts it, and never reports it as a wrong
password (docker_auth `auth_server/api/authn.go` has the same three answers plus errors).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

from authgate.auth.account_store import UserRecord
from authgate.auth.credentials import Secret
from authgate.subject import Subject

Verdict = Literal["yes", "no", "not_mine"]


class SourceUnavailable(Exception):
    """The source could not answer; the message names the server and the cause, never a secret."""


class IdentityConfigError(ValueError):
    """A source configuration that cannot work; the message names the setting (`SOURCE.KEY`)."""


@dataclass(frozen=True, slots=True)
class TeamOrigin:
    """Why a subject is in a team: shown by `authgate identity test` and `authgate policy explain`."""

    team: str
    #: e.g. `database`, `ldap corp: group cn=backend,ou=groups,dc=example,dc=com`.
    via: str


@dataclass(frozen=True, slots=True)
class Answer:
    verdict: Verdict
    subject: Subject | None = None
    #: The local database row, for local users only: refresh tokens bind to it.
    user: UserRecord | None = None
    reason: str = ""
    origins: tuple[TeamOrigin, ...] = ()
    #: Directory groups the subject is in (names), including those that map to no team.
    groups: tuple[str, ...] = ()
    #: What the audit event should say about this identity beyond its name (a CI job's claims).
    details: dict[str, str] = field(default_factory=dict)

    @classmethod
    def yes(cls, subject: Subject, user: UserRecord | None = None, origins: tuple[TeamOrigin, ...] = (),
            groups: tuple[str, ...] = (), details: dict[str, str] | None = None) -> Answer:
        return cls("yes", subject, user, "", origins, groups, details or {})

    @classmethod
    def no(cls, reason: str) -> Answer:
        return cls("no", reason=reason)

    @classmethod
    def not_mine(cls, reason: str = "unknown user") -> Answer:
        return cls("not_mine", reason=reason)


class IdentitySource(Protocol):
    #: The name in the configuration (`local`, `corp`, …): in logs, metrics and audit events.
    name: str
    #: `local` or `ldap`.
    kind: str

    async def authenticate(self, username: str, password: Secret) -> Answer:
        """Check a name and password; raises `SourceUnavailable` when the source cannot answer."""
        ...

    async def lookup(self, username: str) -> Answer:
        """The subject behind an already issued token, without a password (a source may answer
        from its cache); raises `SourceUnavailable` when it cannot answer."""
        ...

    async def check(self) -> None:
        """At start: can this source work at all? Raises `IdentityConfigError` naming the setting."""
        ...

    def describe(self) -> str:
        """One line for the start-up summary; no secrets."""
        ...


class VouchesForRobots(Protocol):
    """A source that also vouches for robots no stored robot is: CI workloads (`workload.py`),
    while the policy declares them."""

    name: str

    def robot(self, name: str) -> Subject | None:
        """The live subject of `robot:NAME`, or None when this source does not vouch for it."""
        ...


class RechecksUsers(Protocol):
    """A source whose users are linked into the local database (device login, `people.py`) and
    must be asked again whether it still vouches for them when a refresh token is redeemed."""

    name: str

    async def recheck(self, user: UserRecord) -> UserRecord | None:
        """The user (perhaps with synced teams), None when no longer vouched for; raises
        `SourceUnavailable` when the source cannot answer."""
        ...
