"""Who made this request: the contract between auth/ (which proves it) and registry/ (which asks it).

`identify(request)` is called once per `/v2/` request by the registry guard, which then checks the
route's needed actions against `Identity.token_grants(...)` and the live policy.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from authgate.audit import context
from authgate.audit.events import AuditEvent
from authgate.auth.challenge import unauthorized
from authgate.auth.credentials import BasicCredentials, CredentialsError, parse_authorization
from authgate.auth.limiter import TooManyAttempts
from authgate.auth.services import auth_of
from authgate.auth.tokens import InvalidToken
from authgate.db.base import utcnow
from authgate.errors import ErrorCode, RegistryError
from authgate.resources import resources_of
from authgate.subject import ANONYMOUS, Subject


@dataclass(frozen=True, slots=True)
class Identity:
    subject: Subject
    #: What the bearer token grants, per (type, name). None when the request carried Basic
    #: credentials (accepted on /v2/ like the `registry` image): then the live policy alone decides.
    token_access: dict[tuple[str, str], frozenset[str]] | None = None

    def token_grants(self, resource_type: str, name: str) -> frozenset[str] | None:
        """Actions the token grants on the resource; None means "no token limit" (Basic)."""
        if self.token_access is None:
            return None
        return self.token_access.get((resource_type, name), frozenset())


def client_address(request: Request) -> str | None:
    """The peer, or behind a trusted proxy the forwarded client: the login limiter counts per real client."""
    return context.client_address(request, resources_of(request).settings)


def too_many(exc: TooManyAttempts) -> RegistryError:
    return RegistryError(ErrorCode.TOOMANYREQUESTS, "too many failed logins; try again later",
                         headers={"Retry-After": str(exc.retry_after)})


async def subject_for_token(request: Request, sub: str) -> Subject | None:
    """The live subject behind a token's `sub`: None when the account is gone or disabled
    (asked of the account cache: no database round trip while it is fresh)."""
    source = auth_of(resources_of(request)).accounts
    if sub == "":
        return ANONYMOUS
    if sub.startswith("robot:"):
        robot = await source.robot(sub.removeprefix("robot:"))
        return Subject("robot", robot.name) if robot is not None and robot.usable(utcnow()) else None
    user = await source.user(sub)
    return user.subject if user is not None and not user.disabled else None


async def _record_basic_failure(request: Request, username: str, reason: str | None) -> None:
    """A failed Basic login on /v2/ (`curl -u`) is a failed login like one at /token."""
    resources = resources_of(request)
    await resources.audit.record(AuditEvent(
        action="auth:login:failure", actor=Subject("user", username[:255]), outcome="failure", reason=reason,
        details={"via": "basic on /v2/"}, **context.request_context(request, resources.settings),
    ))


async def identify(request: Request) -> Identity:
    """Bearer → the token's subject and grants; Basic → a login; nothing → anonymous.

    A bad token or bad credentials raise the 401 the client needs to try again.
    """
    resources = resources_of(request)
    settings = resources.settings
    auth = auth_of(resources)
    try:
        credentials = parse_authorization(request.headers.get("authorization"))
    except CredentialsError as exc:
        raise unauthorized(settings.realm, settings.service, message=str(exc)) from None
    if credentials is None:
        return Identity(ANONYMOUS)
    if isinstance(credentials, BasicCredentials):
        if credentials.empty:
            return Identity(ANONYMOUS)
        try:
            result = await auth.authenticator.login(credentials, client_address(request))
        except TooManyAttempts as exc:
            if exc.first:
                await _record_basic_failure(request, credentials.username, "locked out after repeated failures")
            raise too_many(exc) from None
        if result.subject is None:
            await _record_basic_failure(request, credentials.username, result.reason)
            raise unauthorized(settings.realm, settings.service, message="invalid username or password")
        return Identity(result.subject)
    try:
        verified = auth.bearer.verify(credentials.token.reveal())
    except InvalidToken as exc:
        raise unauthorized(settings.realm, settings.service, error="invalid_token", message=str(exc)) from None
    subject = await subject_for_token(request, verified.subject)
    if subject is None:
        raise unauthorized(settings.realm, settings.service, error="invalid_token",
                           message="the token's account is disabled or gone; log in again")
    return Identity(subject, verified.access)
