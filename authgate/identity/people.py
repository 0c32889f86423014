"""People signing in with an OpenID provider through the device authorization grant (RFC 8628).

`authgate login --oidc` asks authgate to start a device authorization at the provider, prints the
URL and code, and polls; the person signs in there; authgate verifies the ID token (keys by
discovery, pinned algorithms, `iss`, `aud` = the client id, `exp`), creates or updates the user
(people_accounts.py) and issues an ordinary authgate refresh token, which docker stores as its
identity token. The registry token's life does not depend on the provider's session; instead,
whenever docker trades the refresh token and the last check is older than `recheck_interval`,
authgate refreshes at the provider with the provider's refresh token (kept sealed): a person
removed or revoked there loses access then, and their groups are synced again.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import jwt

from authgate.auth import accounts
from authgate.auth.account_store import UserRecord, user_record
from authgate.auth.credentials import Secret
from authgate.auth.refresh import revoke_refresh_tokens
from authgate.db.base import utcnow
from authgate.db.models import User
from authgate.db.session import Database
from authgate.identity.base import Answer, IdentityConfigError, SourceUnavailable
from authgate.identity.jwks import IssuerKeys, UnknownKey, fits
from authgate.identity.people_accounts import PersonError, find_link, link_person, update_link
from authgate.identity.people_config import PeopleConfig
from authgate.identity.sealed import Sealer

log = logging.getLogger(__name__)

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
#: RFC 8628 §3.5: keep polling on these; anything else ends the attempt.
PENDING = ("authorization_pending", "slow_down")
MAX_RESPONSE = 256 * 1024


class Pending(Exception):
    """The person has not finished signing in yet (or the client polls too fast): poll again."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


@dataclass(frozen=True)
class Person:
    user: User
    teams: frozenset[str]
    groups: tuple[str, ...]


class PeopleSource:
    kind = "oidc"

    def __init__(self, config: PeopleConfig, db: Database | None, sealer: Sealer | None) -> None:
        self.config = config
        self.name = config.name
        self.db = db
        self.sealer = sealer
        self.keys = IssuerKeys(config.issuer, config.ca_file, config.timeout)

    # -- the provider -----------------------------------------------------------------------------
    async def endpoint(self, key: str) -> str:
        if not self.keys.metadata:
            await self.keys.refresh()
        url = self.keys.metadata.get(key)
        if not isinstance(url, str):
            raise SourceUnavailable(f"{self.config.issuer} does not publish {key}")
        return url

    async def post(self, key: str, data: dict[str, str]) -> tuple[int, dict[str, Any]]:
        url = await self.endpoint(key)
        auth: httpx.Auth | None = None
        if self.config.client_secret:  # a confidential client: client_secret_basic (RFC 6749 §2.3.1)
            auth = httpx.BasicAuth(self.config.client_id, self.config.client_secret)
        else:
            data = {**data, "client_id": self.config.client_id}
        verify: bool | str = str(self.config.ca_file) if self.config.ca_file else True
        try:
            async with httpx.AsyncClient(timeout=self.config.timeout, verify=verify, auth=auth) as client:
                response = await client.post(url, data=data)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"cannot reach {url}: {type(exc).__name__}") from None
        try:
            body = json.loads(response.content[:MAX_RESPONSE])
        except ValueError:
            body = None
        if not isinstance(body, dict) or response.status_code >= 500:
            raise SourceUnavailable(f"{url} answered {response.status_code}")
        return response.status_code, body

    async def verify_id_token(self, token: object) -> dict[str, Any]:
        if not isinstance(token, str):
            raise PersonError("the provider sent no ID token (is the openid scope allowed for the client?)")
        try:
            header = jwt.get_unverified_header(token)
            alg, kid = header.get("alg"), header.get("kid")
            if alg not in self.config.algorithms or not isinstance(kid, str):
                raise PersonError(f"the provider's ID token uses {str(alg)[:20]!r}, not one of algorithms")
            key = await self.keys.key(kid)
            if not fits(key, alg):
                raise PersonError(f"the provider's ID token key is not a {alg} key")
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=self.config.client_id, issuer=self.config.issuer,
                leeway=30, options={"require": ["iss", "aud", "exp", "iat", "sub"]})
        except (jwt.PyJWTError, UnknownKey) as exc:
            raise PersonError(f"the provider's ID token was refused ({type(exc).__name__})") from None
        return claims

    def _teams(self, claims: dict[str, Any]) -> tuple[frozenset[str], tuple[str, ...]]:
        raw = claims.get(self.config.groups_claim, [])
        groups = tuple(str(g) for g in raw) if isinstance(raw, list) else ()
        mapping = {group.casefold(): team for group, team in self.config.teams}
        teams: set[str] = set()
        for group in groups:
            team = mapping.get(group.casefold())
            if team is None and self.config.unmapped_groups == "by_name" and accounts.NAME_RE.fullmatch(group.lower()):
                team = group.lower()
            if team is not None:
                teams.add(team)
        return frozenset(teams), groups

    # -- the device grant -------------------------------------------------------------------------
    async def start(self) -> dict[str, Any]:
        """Start a device authorization at the provider: what the person must open and type."""
        status, body = await self.post("device_authorization_endpoint", {"scope": " ".join(self.config.scopes)})
        if status != 200 or not isinstance(body.get("device_code"), str):
            raise PersonError(f"the provider refused the device authorization: {str(body.get('error'))[:100]}")
        keys = ("device_code", "user_code", "verification_uri", "verification_uri_complete", "expires_in", "interval")
        return {k: body[k] for k in keys if k in body}

    async def finish(self, device_code: str) -> Person:
        """Poll once; raises `Pending` until the person has signed in, `PersonError` when refused."""
        status, body = await self.post("token_endpoint", {"grant_type": DEVICE_GRANT, "device_code": device_code})
        if status != 200:
            error = str(body.get("error", "invalid_grant"))
            if error in PENDING:
                raise Pending(error)
            raise PersonError(f"the provider ended the sign-in: {error[:60]}")
        claims = await self.verify_id_token(body.get("id_token"))
        refresh = body.get("refresh_token")
        if not isinstance(refresh, str):
            raise PersonError("the provider gave no refresh token: allow the offline_access scope and the "
                              "refresh_token grant for the client")
        return await self.person_for(claims, refresh)

    async def person_for(self, claims: dict[str, Any], refresh: str | None) -> Person:
        """The authgate user for verified ID-token claims, created or updated with their teams; the
        same for every grant (device login, console sign-in), so one person is one user. `refresh`:
        the provider's refresh token to keep for re-checks, or None to keep the one stored."""
        username = str(claims.get(self.config.username_claim, "")).lower()
        if not accounts.NAME_RE.fullmatch(username) or len(username) > accounts.MAX_NAME:
            raise PersonError(f"the provider's {self.config.username_claim} {username[:80]!r} is not a valid "
                              "authgate user name (lower-case letters, digits, . _ -)")
        teams, groups = self._teams(claims)
        assert self.db is not None and self.sealer is not None
        sealed = self.sealer.seal(refresh) if refresh is not None else None
        user = await link_person(self.db, self.name, str(claims["sub"]), username, teams, sealed)
        return Person(user, teams, groups)

    async def recheck(self, user: UserRecord) -> UserRecord | None:
        """At a refresh grant: is this person still good at the provider? The user (reloaded when
        their teams were synced), or None after revoking their authgate refresh tokens. Raises
        `SourceUnavailable` when the provider cannot answer."""
        assert self.db is not None and self.sealer is not None
        link = await find_link(self.db, user.id)
        if link is None or link.source != self.name:
            return user
        if utcnow() - link.checked_at < timedelta(seconds=self.config.recheck_interval):
            return user
        refresh = self.sealer.unseal(link.sealed_refresh_token)
        if refresh is not None:
            status, body = await self.post("token_endpoint", {"grant_type": "refresh_token", "refresh_token": refresh})
            if status == 200:
                try:
                    claims = await self.verify_id_token(body.get("id_token"))
                except PersonError as exc:
                    log.warning("re-check of %s at %s: %s", user.name, self.name, exc)
                    ok = False
                else:
                    teams, _ = self._teams(claims)
                    new = body.get("refresh_token")
                    await update_link(self.db, user.id, teams,
                                      self.sealer.seal(new) if isinstance(new, str) else None)
                    reloaded = await accounts.find_user(self.db, user.name)
                    return user_record(reloaded) if reloaded is not None else None
        revoked = await revoke_refresh_tokens(self.db, user=user.name)
        log.warning("%s no longer vouches for %s: %d refresh token(s) revoked", self.name, user.name, revoked)
        return None

    # -- IdentitySource ---------------------------------------------------------------------------
    async def authenticate(self, username: str, password: Secret) -> Answer:
        return Answer.not_mine()  # people sign in through the device grant, never with a password here

    async def lookup(self, username: str) -> Answer:
        return Answer.not_mine()  # their users are in the database: the local source answers

    async def check(self) -> None:
        try:
            await self.keys.refresh()
            await self.endpoint("device_authorization_endpoint")
        except SourceUnavailable as exc:
            raise IdentityConfigError(f"identity source {self.name}: {self.name}.issuer: {exc}") from None

    def describe(self) -> str:
        return (f"{self.name}: people via OpenID device login at {self.config.issuer} (client {self.config.client_id}, "
                f"groups from {self.config.groups_claim}, re-checked every {self.config.recheck_interval}s)")
