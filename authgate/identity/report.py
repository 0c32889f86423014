"""What the chain says about one user, for people: `authgate identity test` and `policy explain`.

Built outside a running server (the CLI), from the same settings, so what it prints is what a
login would get: the source that answered, the directory groups, and each team with where it came
from (the database, a directory group, possibly nested, or a policy file's `teams:`).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from authgate.auth.authn import Authenticator, IdentityUnavailable
from authgate.auth.account_store import DatabaseAccounts
from authgate.auth.credentials import BasicCredentials, Secret
from authgate.auth.limiter import LoginLimiter
from authgate.auth.passwords import PasswordVerifier, make_context
from authgate.db.session import Database
from authgate.identity.base import IdentityConfigError, TeamOrigin
from authgate.identity.config import LdapConfig, WorkloadConfig, load_identity
from authgate.identity.local import LocalSource
from authgate.policy.workloads import WorkloadRule
from authgate.settings import Settings


@dataclass(frozen=True)
class UserReport:
    name: str
    verdict: str  # yes | no | not_mine | unavailable
    source: str = ""
    reason: str = ""
    groups: tuple[str, ...] = ()
    origins: tuple[TeamOrigin, ...] = field(default_factory=tuple)

    @property
    def teams(self) -> frozenset[str]:
        return frozenset(o.team for o in self.origins)

    def as_dict(self) -> dict[str, Any]:
        return {
            "user": self.name, "result": self.verdict, "source": self.source or None, "reason": self.reason or None,
            "groups": list(self.groups), "teams": sorted(self.teams),
            "team_origins": [{"team": o.team, "via": o.via} for o in self.origins],
        }


def with_policy_teams(report: UserReport, file_teams: frozenset[str]) -> UserReport:
    """Add the teams policy files declare for the user (the engine unions them with the source's)."""
    extra = tuple(TeamOrigin(t, "policy file teams:") for t in sorted(file_teams))
    return UserReport(report.name, report.verdict, report.source, report.reason, report.groups,
                      report.origins + extra)


async def _report(settings: Settings, name: str, password: str | None) -> UserReport:
    from authgate.identity import build_chain

    db = Database(settings.database)
    try:
        await db.upgrade()
        verifier = PasswordVerifier(make_context(settings.bcrypt_rounds), cache_ttl=0)
        chain = build_chain(settings, db, Authenticator(db, DatabaseAccounts(db), verifier, LoginLimiter()))
        credentials = None if password is None else BasicCredentials(name, Secret(password))
        try:
            answer, source = await chain.ask(name, credentials)
        except IdentityUnavailable as exc:
            return UserReport(name, "unavailable", reason=str(exc))
        return UserReport(name, answer.verdict, source, answer.reason, answer.groups, answer.origins)
    finally:
        await db.close()


def report_user(settings: Settings, name: str, password: str | None = None) -> UserReport:
    """Ask the configured chain about `name` (checking `password` when given, else looking it up)."""
    return asyncio.run(_report(settings, name, password))


def check_sources(settings: Settings) -> list[str]:
    """Load the identity file and ask every source whether it can work (reachable, service account
    accepted, bases present): the lines for `authgate serve`'s start-up summary.

    Raises `IdentityConfigError` naming the setting."""
    from authgate.identity import ldap_source_for
    from authgate.identity.people import PeopleSource
    from authgate.identity.people_config import PeopleConfig
    from authgate.identity.workload import WorkloadSource

    workloads = _policy_workloads(settings)

    async def run() -> list[str]:
        lines = []
        configs = load_identity(settings.identity)
        issuers = {c.name for c in configs if isinstance(c, WorkloadConfig)}
        for rule in workloads:
            if rule.issuer not in issuers:
                raise IdentityConfigError(
                    f"{rule.origin}: workload {rule.name} issuer: {rule.issuer!r} is not an oidc_workload source "
                    f"in the identity file (configured: {', '.join(sorted(issuers)) or 'none'})")
        for config in configs:
            if isinstance(config, LdapConfig):
                source = ldap_source_for(config, settings.token_ttl)
            elif isinstance(config, WorkloadConfig):
                source = WorkloadSource(config, None, lambda: workloads)
            elif isinstance(config, PeopleConfig):
                source = PeopleSource(config, None, None)
            else:
                lines.append(LocalSource.DESCRIPTION)
                continue
            await source.check()
            lines.append(source.describe())
        return lines

    return asyncio.run(run())


def _policy_workloads(settings: Settings) -> tuple[WorkloadRule, ...]:
    """The `workloads:` of the policy files; a policy that does not load is reported by the policy
    store itself (serve keeps the last good one), so here it only means "no workloads to check"."""
    if settings.policies is None:
        return ()
    from authgate.policy.load import PolicyLoadError, load_policy

    try:
        return load_policy(settings.policies).workloads
    except PolicyLoadError:
        return ()
