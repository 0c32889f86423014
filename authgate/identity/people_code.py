"""People signing in to the web console with an OpenID provider: the authorization code grant
(RFC 6749 §4.1) with PKCE (RFC 7636, S256 only), `state` and an ID-token `nonce`.

The browser is sent to the provider's authorization endpoint and comes back to authgate's
redirect URI with a code; authgate trades the code, with the PKCE verifier, at the token endpoint
and checks the ID token exactly as the device login does (`PeopleSource.verify_id_token`: keys by
discovery, pinned algorithms, `iss`, `aud` = the client id, `exp`), plus the `nonce` this sign-in
started with. The person becomes the same authgate user, with the same teams, as through the
device login (`PeopleSource.person_for`), so one person is one user whichever door they use.

No `offline_access` is asked: the console keeps its own session and needs no provider refresh
token; one kept from a device login stays as it is.

What the browser carries between the two legs (`CodeSignIn`) is sealed into a cookie by the
console (console/oidc_signin.py); this module only speaks to the provider. Written on the
device grant's client code rather than with an OAuth library: the provider calls, discovery and
ID-token checks are already here and tested, and what the code grant adds is a URL and a hash.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlencode

from authgate.identity.people import Person, PeopleSource
from authgate.identity.people_accounts import PersonError

#: Scopes only a long-lived client needs: the console asks for the rest of the configured ones.
_NOT_FOR_THE_CONSOLE = ("offline_access",)
_MAX_CODE = 2048


@dataclass(frozen=True)
class CodeSignIn:
    """One sign-in in progress: the values the callback must match, and where to go afterwards."""

    source: str
    state: str
    nonce: str
    verifier: str
    next_path: str

    @classmethod
    def new(cls, source: str, next_path: str) -> CodeSignIn:
        # 32 random bytes each; the verifier is 64 characters of the unreserved set (RFC 7636 §4.1).
        return cls(source, secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48),
                   next_path)

    @property
    def challenge(self) -> str:
        """`BASE64URL(SHA256(verifier))` without padding (RFC 7636 §4.2)."""
        digest = hashlib.sha256(self.verifier.encode("ascii")).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")

    def dumps(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"))

    @classmethod
    def loads(cls, text: str) -> CodeSignIn | None:
        try:
            raw = json.loads(text)
            return cls(**{key: str(raw[key]) for key in ("source", "state", "nonce", "verifier", "next_path")})
        except (ValueError, TypeError, KeyError):
            return None

    def matches(self, state: str | None) -> bool:
        """The callback's `state` is this sign-in's (constant time)."""
        return state is not None and hmac.compare_digest(state.encode("utf-8", "replace"), self.state.encode())


def console_scopes(source: PeopleSource) -> str:
    return " ".join(s for s in source.config.scopes if s not in _NOT_FOR_THE_CONSOLE)


async def authorization_url(source: PeopleSource, sign_in: CodeSignIn, redirect_uri: str) -> str:
    """Where to send the browser. Raises `SourceUnavailable` when discovery cannot be read."""
    endpoint = await source.endpoint("authorization_endpoint")
    query = urlencode({
        "response_type": "code", "client_id": source.config.client_id, "redirect_uri": redirect_uri,
        "scope": console_scopes(source), "state": sign_in.state, "nonce": sign_in.nonce,
        "code_challenge": sign_in.challenge, "code_challenge_method": "S256",
    })
    return f"{endpoint}{'&' if '?' in endpoint else '?'}{query}"


def check_issuer(source: PeopleSource, iss: str | None) -> None:
    """RFC 9207: a provider that names itself in the callback must name the configured issuer (a
    code from another provider, mixed up, is refused); one that promises to must not leave it out."""
    if iss is None:
        if source.keys.metadata.get("authorization_response_iss_parameter_supported") is True:
            raise PersonError(f"the answer does not say it comes from {source.config.issuer} (no iss)")
        return
    if iss.rstrip("/") != source.config.issuer:
        raise PersonError(f"the answer comes from {iss[:100]!r}, not from {source.config.issuer}")


async def finish_code_sign_in(source: PeopleSource, sign_in: CodeSignIn, code: str, redirect_uri: str) -> Person:
    """Trade the code and verify the ID token; the person, linked and with their teams synced.

    Raises `PersonError` (refused: the message says why) or `SourceUnavailable`."""
    if not code or len(code) > _MAX_CODE:
        raise PersonError("the answer carries no usable authorization code")
    status, body = await source.post("token_endpoint", {
        "grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
        "code_verifier": sign_in.verifier,
    })
    if status != 200:
        raise PersonError(f"the provider refused the authorization code: {str(body.get('error', status))[:60]}")
    claims = await source.verify_id_token(body.get("id_token"))
    _check_nonce_and_party(source, claims, sign_in.nonce)
    return await source.person_for(claims, None)


def _check_nonce_and_party(source: PeopleSource, claims: dict[str, Any], nonce: str) -> None:
    """OpenID Connect Core §3.1.3.7: the nonce sent is the nonce signed (a replayed or injected ID
    token carries another), and with several audiences the authorized party is this client."""
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode("utf-8", "replace"), nonce.encode()):
        raise PersonError("the provider's ID token is not for this sign-in (nonce does not match)")
    audience = claims.get("aud")
    if isinstance(audience, list) and len(audience) > 1 and claims.get("azp") != source.config.client_id:
        raise PersonError("the provider's ID token was issued to another client (azp)")
