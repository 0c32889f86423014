"""Who authgate is to the upstream: nobody (private network), a Basic user, or a bearer token
authgate signs for itself.

Tokens are obtained *before* a request is sent: a streamed upload body cannot be replayed after a
401, so there is no challenge round-trip on the data path. A minted token is scoped to exactly the
access the proxied request needs and cached per scope set until shortly before it expires.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from authgate.auth.tokens import TokenService
from authgate.scope import Scope, format_scopes
from authgate.settings import Settings
from authgate.subject import Subject

#: The `sub` of tokens authgate mints for itself (visible in the upstream's logs).
GATEWAY_SUBJECT = Subject("robot", "authgate-gateway")

#: Mint a fresh token this many seconds before the cached one expires (clock skew, slow uploads).
_REFRESH_MARGIN = 30
_MAX_CACHED = 4096


class UpstreamAuth(Protocol):
    async def authorization(self, scopes: Sequence[Scope]) -> str | None:
        """The `Authorization` header value for a request needing `scopes`, or None."""
        ...


@dataclass(frozen=True, slots=True)
class MintedToken:
    token: str
    expires_in: int


class TokenMinter(Protocol):
    """Signs an access token for authgate itself (the token service, seen from the gateway)."""

    def mint(self, access: Sequence[Scope]) -> MintedToken: ...


class ServiceMinter:
    """authgate's TokenService as the gateway's minter: same keys and issuer, the upstream's
    service name as audience."""

    def __init__(self, tokens: TokenService, audience: str) -> None:
        self._tokens = TokenService(tokens.keys, tokens.issuer, audience, tokens.ttl, tokens.leeway)

    def mint(self, access: Sequence[Scope]) -> MintedToken:
        issued = self._tokens.issue(GATEWAY_SUBJECT, access)
        return MintedToken(issued.token, issued.expires_in)


class NoAuth:
    async def authorization(self, scopes: Sequence[Scope]) -> str | None:
        return None

    def __repr__(self) -> str:
        return "NoAuth()"


class BasicAuth:
    def __init__(self, username: str, password: str) -> None:
        raw = f"{username}:{password}".encode()
        self._header = "Basic " + base64.b64encode(raw).decode()
        self._username = username

    async def authorization(self, scopes: Sequence[Scope]) -> str | None:
        return self._header

    def __repr__(self) -> str:
        return f"BasicAuth({self._username!r}, '********')"


class MintedTokenAuth:
    """Bearer tokens authgate signs for itself, for an upstream in `auth: token` mode that trusts
    authgate's certificate: even a request that slipped past the guard would carry only the access
    this request needs."""

    def __init__(self, minter: TokenMinter) -> None:
        self._minter = minter
        self._cache: dict[str, tuple[str, float]] = {}

    async def authorization(self, scopes: Sequence[Scope]) -> str | None:
        key = format_scopes(sorted(scopes, key=lambda s: s.key))
        now = time.monotonic()
        cached = self._cache.get(key)
        if cached and cached[1] > now:
            return cached[0]
        minted = self._minter.mint(list(scopes))
        header = "Bearer " + minted.token
        if len(self._cache) >= _MAX_CACHED:
            self._cache = {k: v for k, v in self._cache.items() if v[1] > now}
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
        self._cache[key] = (header, now + max(0, minted.expires_in - _REFRESH_MARGIN))
        return header

    def __repr__(self) -> str:
        return "MintedTokenAuth()"


def upstream_auth(settings: Settings, tokens: TokenService | None = None) -> UpstreamAuth:
    """The credentials `settings` ask for; `token` mode signs with authgate's own token service."""
    mode = settings.upstream_auth_mode
    if mode == "basic":
        return BasicAuth(settings.upstream_username, settings.upstream_password)
    if mode == "token":
        if tokens is None:
            raise RuntimeError("upstream_auth token needs authgate's token service (signing keys)")
        return MintedTokenAuth(ServiceMinter(tokens, settings.upstream_audience))
    return NoAuth()
