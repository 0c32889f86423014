"""CI workload identity: a job's token from its platform's OpenID issuer, instead of a stored secret.

The job logs in as `oidc` (the source's `username`) with the JWT as password, with docker or at
`POST /token`. authgate checks it against the issuer's published keys with everything pinned
(the algorithms from the configuration, the key by `kid`, `iss`, `aud`, `exp`, `iat`, a small
leeway), then the policy files' `workloads:` map its claims to a robot name (policy/workloads.py):
`repository == "org/app" and ref == "refs/heads/main"` -> `robot:app-main`, which rules grant to.
The way PyPI's trusted publishing works: nothing to store, rotate or leak on the CI side.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jwt

from authgate.auth import accounts
from authgate.auth.credentials import Secret
from authgate.db.session import Database
from authgate.identity.base import Answer, IdentityConfigError, SourceUnavailable
from authgate.identity.config import WorkloadConfig
from authgate.identity.jwks import IssuerKeys, UnknownKey, fits
from authgate.policy.workloads import WorkloadRule, match_workload
from authgate.subject import Subject

#: Registered JWT claims (RFC 7519 §4.1) and common OAuth ones, which issuers need not list in
#: `claims_supported` but every token may carry.
_REGISTERED = frozenset({"iss", "sub", "aud", "exp", "nbf", "iat", "jti", "client_id", "scope", "azp"})
_REQUIRED = ["iss", "aud", "exp", "iat"]

Workloads = Callable[[], tuple[WorkloadRule, ...]]


def _rejection(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.ExpiredSignatureError):
        return "workload token has expired"
    if isinstance(exc, jwt.InvalidAudienceError):
        return "workload token is for another audience"
    if isinstance(exc, jwt.ImmatureSignatureError):
        return "workload token is not valid yet"
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"workload token lacks the {exc.claim} claim"
    return f"workload token rejected: {type(exc).__name__}"


class WorkloadSource:
    kind = "oidc_workload"

    def __init__(self, config: WorkloadConfig, db: Database | None, workloads: Workloads) -> None:
        self.config = config
        self.name = config.name
        self.db = db
        self.workloads = workloads
        self.keys = IssuerKeys(config.issuer, config.ca_file, config.timeout)

    async def verify(self, token: str) -> dict[str, Any]:
        """The verified claims; raises `ValueError` with a reason safe to log, or `SourceUnavailable`."""
        config = self.config
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise ValueError("the password is not a workload token (a JWT)") from None
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in config.algorithms:
            raise ValueError(f"workload token algorithm {str(alg)[:20]!r} is not accepted for issuer {self.name}")
        if not isinstance(kid, str):
            raise ValueError("workload token has no kid")
        try:
            key = await self.keys.key(kid)
        except UnknownKey:
            raise ValueError("workload token signed by a key the issuer does not publish") from None
        if not fits(key, alg):
            raise ValueError(f"workload token's key {kid[:40]!r} is not a {alg} key")
        try:
            claims: dict[str, Any] = jwt.decode(
                token, key.key, algorithms=[alg], audience=config.audience, issuer=config.issuer,
                leeway=config.leeway, options={"require": _REQUIRED},
            )
        except jwt.PyJWTError as exc:
            raise ValueError(_rejection(exc)) from None
        return claims

    def _issuer_of(self, token: str) -> object:
        try:
            return jwt.decode(token, options={"verify_signature": False}).get("iss")
        except jwt.PyJWTError:
            return None

    async def authenticate(self, username: str, password: Secret) -> Answer:
        if username != self.config.username:
            return Answer.not_mine()
        token = password.reveal()
        if str(self._issuer_of(token)).rstrip("/") != self.config.issuer:
            return Answer.not_mine("workload token from an issuer that is not configured")
        try:
            claims = await self.verify(token)
        except ValueError as exc:
            return Answer.no(str(exc))
        rule = match_workload(self.workloads(), self.name, claims)
        if rule is None:
            return Answer.no(f"no workload in the policy files matches this {self.name} token's claims")
        if self.db is not None and await accounts.find_robot(self.db, rule.name) is not None:
            return Answer.no(f"workload {rule.name} ({rule.origin}) has the name of a stored robot; rename one")
        # Which job this was, for the audit log: its subject and the claims the workload matched on.
        details = {"workload": rule.name, "sub": str(claims.get("sub", ""))[:255]}
        details.update({m.claim: str(claims.get(m.claim, ""))[:255] for m in rule.claims})
        return Answer.yes(Subject("robot", rule.name, source=self.name), details=details)

    async def lookup(self, username: str) -> Answer:
        return Answer.not_mine()

    def robot(self, name: str) -> Subject | None:
        """The live subject behind a `robot:NAME` token this source vouched for: while the policy still
        declares the workload (deleting it from the policy files ends the access)."""
        if any(w.name == name and w.issuer == self.name for w in self.workloads()):
            return Subject("robot", name, source=self.name)
        return None

    async def check(self) -> None:
        """The issuer answers discovery and JWKS, and the workloads for it use claims it publishes."""
        try:
            await self.keys.refresh()
        except SourceUnavailable as exc:
            raise IdentityConfigError(f"identity source {self.name}: {self.name}.issuer: {exc}") from None
        published = self.keys.metadata.get("claims_supported")
        if not isinstance(published, list):
            return  # the issuer does not say which claims it sends: nothing to check against
        known = _REGISTERED | {str(c) for c in published}
        for rule in self.workloads():
            for match in rule.claims:
                if rule.issuer == self.name and match.claim not in known:
                    raise IdentityConfigError(
                        f"{rule.origin}: workload {rule.name} claims.{match.claim}: issuer {self.name} does not "
                        f"publish this claim (claims_supported: {', '.join(sorted(map(str, published)))})")

    def describe(self) -> str:
        config = self.config
        return (f"{self.name}: OpenID workload tokens from {config.issuer} (docker login -u {config.username}; "
                f"aud {config.audience}; {', '.join(config.algorithms)})")
