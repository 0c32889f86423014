"""An OpenID issuer's signing keys: discovery, JWKS, key rotation, pinned algorithms.

Keys come from the issuer's own discovery document (`/.well-known/openid-configuration`, whose
`issuer` must equal the configured one, OpenID Connect Discovery §4.3) and its `jwks_uri`. A
token signed with a `kid` not in the cached set triggers one refetch (the issuer rotated), at
most once per `MIN_REFETCH` seconds, so a stream of forged kids cannot make authgate hammer the
issuer. The algorithm is the configured list intersected with what the key is; the token header
only picks among them, and `none` / HMAC algorithms are never accepted (a public JWK used as an
HMAC secret is the classic forgery).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import httpx
import jwt

from authgate.identity.base import SourceUnavailable

#: Asymmetric algorithms only; the configuration picks among these.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
MIN_REFETCH = 30.0
MAX_AGE = 3600.0
MAX_DOCUMENT = 256 * 1024


class UnknownKey(Exception):
    """The token names a key the issuer does not publish (even after a refetch)."""


class IssuerKeys:
    def __init__(self, issuer: str, ca_file: Path | None = None, timeout: float = 5.0) -> None:
        self.issuer = issuer.rstrip("/")
        self.ca_file = ca_file
        self.timeout = timeout
        self.min_refetch = MIN_REFETCH
        self.metadata: dict[str, Any] = {}
        self._keys: dict[str, jwt.PyJWK] = {}
        self._fetched_at = -MAX_AGE
        self._lock = anyio.Lock()

    async def _get_json(self, client: httpx.AsyncClient, url: str) -> dict[str, Any]:
        try:
            response = await client.get(url)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"cannot reach {url}: {type(exc).__name__} {exc}") from None
        if response.status_code != 200 or len(response.content) > MAX_DOCUMENT:
            raise SourceUnavailable(f"{url} answered {response.status_code}")
        try:
            data = json.loads(response.content)
        except ValueError:
            raise SourceUnavailable(f"{url} did not answer JSON") from None
        if not isinstance(data, dict):
            raise SourceUnavailable(f"{url} did not answer a JSON object")
        return data

    async def refresh(self) -> None:
        """Fetch discovery and JWKS now. Raises `SourceUnavailable`."""
        verify: bool | str = str(self.ca_file) if self.ca_file else True
        async with httpx.AsyncClient(timeout=self.timeout, verify=verify, follow_redirects=False) as client:
            metadata = await self._get_json(client, f"{self.issuer}/.well-known/openid-configuration")
            if str(metadata.get("issuer", "")).rstrip("/") != self.issuer:
                raise SourceUnavailable(f"the discovery document of {self.issuer} names another issuer "
                                        f"({str(metadata.get('issuer'))[:200]!r})")
            jwks_uri = metadata.get("jwks_uri")
            if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
                raise SourceUnavailable(f"the discovery document of {self.issuer} has no jwks_uri")
            document = await self._get_json(client, jwks_uri)
        keys: dict[str, jwt.PyJWK] = {}
        for raw in document.get("keys", []) if isinstance(document.get("keys"), list) else []:
            if not isinstance(raw, dict) or raw.get("use", "sig") != "sig" or not isinstance(raw.get("kid"), str):
                continue
            try:
                keys[raw["kid"]] = jwt.PyJWK(raw)
            except (jwt.PyJWTError, ValueError, TypeError):
                continue  # a key type or curve we cannot use: the others still work
        self.metadata, self._keys, self._fetched_at = metadata, keys, time.monotonic()

    async def key(self, kid: str) -> jwt.PyJWK:
        """The published key `kid`, refetching once when it is unknown or the set is old."""
        now = time.monotonic()
        if kid in self._keys and now - self._fetched_at < MAX_AGE:
            return self._keys[kid]
        async with self._lock:
            if kid not in self._keys or time.monotonic() - self._fetched_at >= MAX_AGE:
                if time.monotonic() - self._fetched_at >= self.min_refetch or not self._keys:
                    await self.refresh()
        found = self._keys.get(kid)
        if found is None:
            raise UnknownKey(kid)
        return found


_FAMILIES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}


def fits(key: jwt.PyJWK, alg: str) -> bool:
    """Whether `key` may verify `alg`: its own `alg` when the JWK names one, else its key type
    (an RSA key never checks an ES256 signature, whatever the header says)."""
    named = getattr(key, "_jwk_data", {}).get("alg")
    if isinstance(named, str):
        return named == alg
    return key.key_type == _FAMILIES.get(alg[:2])
