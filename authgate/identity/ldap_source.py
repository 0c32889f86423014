"""An LDAP directory (OpenLDAP, Active Directory) as an identity source, groups as teams.

The revocation promise: a successful bind and the groups found with it are reused for at most
`cache_ttl` seconds (default 60). A user disabled, deleted or removed from a group in the
directory therefore loses that access within `cache_ttl`: the next login after it goes to the
directory again. Tokens already issued are re-checked the same way: with a service account
(search-then-bind) the user and groups are searched again once the cache entry is older than
`cache_ttl`; in bind-as-user mode authgate cannot search without the password, so it trusts the
last bind for `cache_ttl + token_ttl` and then refuses the token (docker logs in again).
The cache is keyed by an HMAC of name and password with a per-process key: a changed password
misses it, and the password itself is never kept.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from collections import OrderedDict
from dataclasses import dataclass

import anyio
import anyio.to_thread

from authgate.auth.accounts import MAX_NAME, NAME_RE
from authgate.auth.credentials import Secret
from authgate.identity.base import Answer, IdentityConfigError, TeamOrigin
from authgate.identity.config import LdapConfig
from authgate.identity.ldap_directory import Directory, DirectoryUser, WrongPassword
from authgate.subject import Subject

#: Worker threads one source may hold at once: a slow directory cannot take every thread.
MAX_CONCURRENT = 8
CACHE_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class _Entry:
    answer: Answer
    fetched_at: float
    #: HMAC of the password that bound at `bound_at`; None when the entry came from a search.
    fingerprint: bytes | None
    bound_at: float


def teams_for(config: LdapConfig, user: DirectoryUser) -> tuple[frozenset[str], tuple[TeamOrigin, ...]]:
    """Map directory groups to team names: the explicit `teams:` mapping first, then (with
    `unmapped_groups: by_name`) the group's own name in lower case when it is a valid team name."""
    mapping = {group.casefold(): team for group, team in config.teams}
    teams: set[str] = set()
    origins: list[TeamOrigin] = []
    for group in user.groups:
        team = mapping.get(group.name.casefold()) or mapping.get(group.dn.casefold())
        if team is None and config.unmapped_groups == "by_name":
            candidate = group.name.lower()
            team = candidate if NAME_RE.fullmatch(candidate) and len(candidate) <= MAX_NAME else None
        if team is None:
            continue
        via = f"ldap {config.name}: group {group.dn}"
        if group.through:
            via += " (nested, through " + " -> ".join(group.through) + ")"
        teams.add(team)
        origins.append(TeamOrigin(team, via))
    return frozenset(teams), tuple(sorted(origins, key=lambda o: (o.team, o.via)))


class LdapSource:
    kind = "ldap"

    def __init__(self, config: LdapConfig, token_ttl: int = 300) -> None:
        self.config = config
        self.name = config.name
        self.token_ttl = token_ttl
        self.directory = Directory(config)
        self._limiter = anyio.CapacityLimiter(MAX_CONCURRENT)
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[str, _Entry] = OrderedDict()

    # -- cache ------------------------------------------------------------------------------------
    def _fingerprint(self, username: str, password: str) -> bytes:
        return hmac.new(self._key, f"{username}\0{password}".encode(), hashlib.sha256).digest()

    def _remember(self, username: str, entry: _Entry) -> None:
        if self.config.cache_ttl <= 0:
            return
        self._cache[username] = entry
        self._cache.move_to_end(username)
        while len(self._cache) > CACHE_SIZE:
            self._cache.popitem(last=False)

    def _answer(self, username: str, user: DirectoryUser) -> Answer:
        teams, origins = teams_for(self.config, user)
        subject = Subject("user", username, teams, source=self.name)
        return Answer.yes(subject, None, origins, tuple(g.name for g in user.groups))

    # -- IdentitySource ---------------------------------------------------------------------------
    async def authenticate(self, username: str, password: Secret) -> Answer:
        if not NAME_RE.fullmatch(username) or len(username) > MAX_NAME:
            return Answer.not_mine("not a valid user name")
        secret = password.reveal()
        if not secret:
            return Answer.no("empty password")  # would be an anonymous bind (RFC 4513 §5.1.2)
        fingerprint = self._fingerprint(username, secret)
        now = time.monotonic()
        entry = self._cache.get(username)
        if (entry is not None and entry.fingerprint is not None and now - entry.bound_at < self.config.cache_ttl
                and hmac.compare_digest(entry.fingerprint, fingerprint)):
            return entry.answer
        try:
            user = await anyio.to_thread.run_sync(self.directory.authenticate, username, secret,
                                                  limiter=self._limiter)
        except WrongPassword:
            self._cache.pop(username, None)
            return Answer.no("wrong password")
        if user is None:
            self._cache.pop(username, None)
            return Answer.not_mine("no such user in the directory (or user_filter excludes it)")
        answer = self._answer(username, user)
        self._remember(username, _Entry(answer, now, fingerprint, now))
        return answer

    async def lookup(self, username: str) -> Answer:
        if not NAME_RE.fullmatch(username) or len(username) > MAX_NAME:
            return Answer.not_mine("not a valid user name")
        now = time.monotonic()
        entry = self._cache.get(username)
        if entry is not None and now - entry.fetched_at < self.config.cache_ttl:
            return entry.answer
        if not self.config.search_then_bind:
            if entry is not None and now - entry.fetched_at < self.config.cache_ttl + self.token_ttl:
                return entry.answer
            return Answer.not_mine("bind-as-user mode cannot look users up without their password; log in again")
        user = await anyio.to_thread.run_sync(self.directory.lookup, username, limiter=self._limiter)
        if user is None:
            self._cache.pop(username, None)
            return Answer.not_mine("no such user in the directory (or user_filter excludes it)")
        answer = self._answer(username, user)
        fingerprint, bound_at = (entry.fingerprint, entry.bound_at) if entry is not None else (None, 0.0)
        self._remember(username, _Entry(answer, now, fingerprint, bound_at))
        return answer

    async def check(self) -> None:
        problems = await anyio.to_thread.run_sync(self.directory.check, limiter=self._limiter)
        if problems:
            raise IdentityConfigError("; ".join(f"identity source {self.name}: {self.name}.{p}" for p in problems))

    def describe(self) -> str:
        config = self.config
        mode = f"search-then-bind as {config.bind_dn}" if config.search_then_bind else "bind as the user"
        tls = "LDAPS" if config.url.startswith("ldaps:") else ("StartTLS" if config.start_tls else "no TLS")
        nested = f", nested groups {config.nested_depth} levels" if config.nested_depth else ""
        return (f"{self.name}: LDAP {config.url} ({tls}, {mode}{nested}, "
                f"successful binds cached {config.cache_ttl}s)")
