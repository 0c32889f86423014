"""Issue and verify registry bearer tokens (distribution `docs/content/spec/auth/jwt.md`).

Issued tokens satisfy distribution 2.8 and 3.x alike (docs/client-compat.md §1-3): `aud` a single
string, integer `exp`/`nbf`/`iat`, `nbf` a few seconds in the past, `x5c` plus a libtrust `kid`.
Verification pins everything (docs/client-compat.md §3, §8): the key by `kid`, the algorithm from
that key (never from the header), the issuer, the audience, every time claim, with an explicit leeway.
"""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import jwt

from authgate.auth.keys import KeyRing
from authgate.scope import Scope
from authgate.subject import Subject

#: Same leeway distribution applies on `exp` and `nbf`.
LEEWAY_SECONDS = 60
#: `nbf` is set this far back so a registry whose clock lags slightly still accepts a fresh token.
NOT_BEFORE_SKEW = 5
_REQUIRED_CLAIMS = ["iss", "sub", "aud", "exp", "nbf", "iat", "jti"]
#: Which incarnation of the account the token was issued to (accounts.account_epoch): a user removed
#: and re-created, or disabled and enabled again, does not get the old tokens back. Registries
#: ignore claims they do not know (the JWT spec; distribution decodes into a fixed struct).
EPOCH_CLAIM = "authgate_epoch"
#: A token just issued is handed out again, instead of a new signature, for this many seconds at
#: most (at most a tenth of its life, and never leaving it under 60 s), to the same subject for the same
#: scopes: see `issue_recent`.
REUSE_SECONDS = 30
#: Tokens kept for reuse: one per (subject, scopes) asked in the last `REUSE_SECONDS`.
MAX_REUSED = 4096


class InvalidToken(Exception):
    """A token authgate did not issue or no longer accepts; the message is safe to show (no token in it)."""


@dataclass(frozen=True, slots=True)
class IssuedToken:
    token: str
    expires_in: int
    issued_at: datetime
    access: tuple[Scope, ...]
    #: `issued_at` in RFC 3339 with `Z`: Go's `time.Time` refuses a naive timestamp (docs/client-compat.md
    #: §4). Formatted once, at issue: a reused token answers many requests.
    issued_at_text: str = ""

    def __repr__(self) -> str:
        return f"IssuedToken(token='**********', expires_in={self.expires_in})"


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    subject: str
    access: dict[tuple[str, str], frozenset[str]]
    expires_at: int
    jti: str
    epoch: str | None = None


def access_claim(scopes: Iterable[Scope]) -> list[dict[str, object]]:
    return [s.as_access() for s in scopes]


def _parse_access(raw: Any) -> dict[tuple[str, str], frozenset[str]]:
    if raw is None:
        return {}
    if not isinstance(raw, list):
        raise InvalidToken("token access claim is not a list")
    access: dict[tuple[str, str], frozenset[str]] = {}
    for entry in raw:
        if not isinstance(entry, Mapping):
            raise InvalidToken("token access entry is not an object")
        kind, name, actions = entry.get("type"), entry.get("name"), entry.get("actions")
        if not isinstance(kind, str) or not isinstance(name, str) or not isinstance(actions, list):
            raise InvalidToken("token access entry lacks type, name or actions")
        if not all(isinstance(a, str) for a in actions):
            raise InvalidToken("token access actions must be strings")
        access[(kind, name)] = access.get((kind, name), frozenset()) | frozenset(actions)
    return access


class TokenService:
    def __init__(self, keys: KeyRing, issuer: str, service: str, ttl: int, leeway: int = LEEWAY_SECONDS) -> None:
        self.keys = keys
        self.issuer = issuer
        self.service = service
        self.ttl = ttl
        self.leeway = leeway
        # A tenth of the life at most, and never below the 60 s clients assume for shorter ones.
        self.reuse_seconds = max(0, min(REUSE_SECONDS, ttl // 10, ttl - 60))
        self._recent: OrderedDict[tuple[object, ...], IssuedToken] = OrderedDict()

    def issue_recent(self, subject: Subject, access: Iterable[Scope], epoch: str = "") -> IssuedToken:
        """Like `issue`, but a token issued less than `reuse_seconds` ago with exactly the same
        contents (signing key, subject, account incarnation, granted scopes) is handed out again,
        its `expires_in` the life it has left.

        Why: a CI fleet or a `docker pull` of many images asks the same token many times a second,
        and the ES256 signature and JWT encoding were a large part of each answer. Nothing is
        decided from the cache: the caller has already authenticated the request and asked the
        policy for `access`, and each use of the token is checked against the live account and
        policy on `/v2/`; the token's contents are what any fresh token would say, only its
        `iat`/`exp`/`jti` are up to `reuse_seconds` older.
        """
        granted = tuple(access)
        key = (self.keys.signer.kid, subject.token_subject, epoch, granted)
        now = time.time()
        recent = self._recent.get(key)
        if recent is not None:
            issued_at = recent.issued_at.timestamp()
            if now - issued_at < self.reuse_seconds:
                return dataclasses.replace(recent, expires_in=int(issued_at) + self.ttl - int(now))
            del self._recent[key]
        issued = self.issue(subject, granted, now, epoch)
        self._recent[key] = issued
        if len(self._recent) > MAX_REUSED:
            self._recent.popitem(last=False)
        return issued

    def issue(self, subject: Subject, access: Iterable[Scope], now: float | None = None, epoch: str = ""
              ) -> IssuedToken:
        moment = int(now if now is not None else time.time())
        granted = tuple(access)
        claims = {
            "iss": self.issuer,
            "sub": subject.token_subject,
            "aud": self.service,
            "exp": moment + self.ttl,
            "nbf": moment - NOT_BEFORE_SKEW,
            "iat": moment,
            "jti": secrets.token_urlsafe(18),
            "access": access_claim(granted),
        }
        if epoch:
            claims[EPOCH_CLAIM] = epoch
        signer = self.keys.signer
        headers = {"kid": signer.kid, "x5c": signer.x5c, "typ": "JWT"}
        token = jwt.encode(claims, signer.private_key, algorithm=signer.algorithm, headers=headers)
        issued_at = datetime.fromtimestamp(moment, timezone.utc)
        return IssuedToken(token, self.ttl, issued_at, granted, issued_at.strftime("%Y-%m-%dT%H:%M:%SZ"))

    def verify(self, token: str) -> VerifiedToken:
        """Every failure becomes `InvalidToken`; nothing from the token itself is echoed."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError as exc:
            raise InvalidToken("malformed token") from exc
        kid = header.get("kid")
        key = self.keys.by_kid.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("token signed by an unknown key")
        try:
            claims = jwt.decode(
                token,
                key.public_key,
                algorithms=[key.algorithm],
                audience=self.service,
                issuer=self.issuer,
                leeway=self.leeway,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError as exc:
            raise InvalidToken("token has expired") from exc
        except jwt.PyJWTError as exc:
            raise InvalidToken(f"token rejected: {type(exc).__name__}") from exc
        if not isinstance(claims.get("aud"), str) or not isinstance(claims.get("sub"), str):
            raise InvalidToken("token aud and sub must be strings")
        for name in ("exp", "nbf", "iat"):
            if not isinstance(claims[name], int) or isinstance(claims[name], bool):
                raise InvalidToken(f"token {name} must be an integer")
        epoch = claims.get(EPOCH_CLAIM)
        return VerifiedToken(claims["sub"], _parse_access(claims.get("access")), claims["exp"], str(claims["jti"]),
                             epoch if isinstance(epoch, str) else None)
