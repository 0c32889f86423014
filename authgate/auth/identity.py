"""Who made this request: the contract between auth/ (which proves it) and registry/ (which asks it).

`identify(request, app)` is called once per `/v2/` request by the registry guard, which then checks
the route's needed actions against `Identity.token_grants(...)` and the live policy.
"""

from __future__ import annotations

from typing import Protocol

from starlette.requests import Request

from authgate.audit import context
from authgate.audit.events import AuditEvent, AuditSink
from authgate.auth import accounts
from authgate.auth.authn import IdentityUnavailable
from authgate.auth.challenge import unauthorized
from authgate.auth.credentials import BasicCredentials, CredentialsError, parse_authorization
from authgate.auth.limiter import TooManyAttempts
from authgate.auth.services import AuthServices
from authgate.auth.tokens import InvalidToken
from authgate.db.base import utcnow
from authgate.errors import ErrorCode, RegistryError
from authgate.settings import Settings
from authgate.subject import ANONYMOUS, Identity, Subject


class AuthContext(Protocol):
    """What identifying a caller uses, handed in by whoever asks (the app's `Resources` has it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def audit(self) -> AuditSink: ...

    @property
    def auth(self) -> AuthServices: ...


def too_many(exc: TooManyAttempts) -> RegistryError:
    return RegistryError(ErrorCode.TOOMANYREQUESTS, exc.message,
                         headers={"Retry-After": str(exc.retry_after)})


async def subject_for_token(auth: AuthServices, sub: str, epoch: str | None) -> Subject | None:
    """The live subject behind a token's `sub`: None when the account is gone, disabled, or not the
    incarnation the token was issued to (removed and re-created, disabled since: `account_epoch`).
    Asked of the account cache: no database round trip while it is fresh."""
    if sub == "":
        return ANONYMOUS
    if sub.startswith("robot:"):
        robot = await auth.accounts.robot(sub.removeprefix("robot:"))
        if robot is None:  # a CI workload (authgate.identity.workload), while the policy declares it
            return auth.identity.robot(sub.removeprefix("robot:"))
        if not robot.usable(utcnow()) or epoch != accounts.account_epoch(robot):
            return None
        return Subject("robot", robot.name)
    user = await auth.accounts.user(sub)
    if user is None:
        return await auth.identity.resolve(sub) if auth.identity.external else None  # a directory user, re-checked
    if user.disabled or epoch != accounts.account_epoch(user):
        return None
    return user.subject


def unavailable(exc: IdentityUnavailable) -> RegistryError:
    """A directory that is down is a 503 "try again later", never "wrong password"."""
    return RegistryError(ErrorCode.UNAVAILABLE, str(exc), headers={"Retry-After": "30"})


async def _record_basic_failure(request: Request, app: AuthContext, username: str, reason: str | None) -> None:
    """A failed Basic login on /v2/ (`curl -u`) is a failed login like one at /token."""
    await app.audit.record(AuditEvent(
        action="auth:login:failure", actor=Subject("user", username[:255]), outcome="failure", reason=reason,
        details={"via": "basic on /v2/"}, **context.request_context(request, app.settings),
    ))


async def identify(request: Request, app: AuthContext) -> Identity:
    """Bearer → the token's subject and grants; Basic → a login; nothing → anonymous.

    A bad token or bad credentials raise the 401 the client needs to try again.
    """
    settings, auth = app.settings, app.auth
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
            result = await auth.authenticator.login(credentials, context.client_address(request, settings))
        except TooManyAttempts as exc:
            if exc.first:
                await _record_basic_failure(request, app, credentials.username, "locked out after repeated failures")
            raise too_many(exc) from None
        except IdentityUnavailable as exc:
            await _record_basic_failure(request, app, credentials.username, str(exc))
            raise unavailable(exc) from None
        if result.subject is None:
            await _record_basic_failure(request, app, credentials.username, result.reason)
            raise unauthorized(settings.realm, settings.service, message="invalid username or password")
        return Identity(result.subject)
    try:
        verified = auth.bearer.verify(credentials.token.reveal())
    except InvalidToken as exc:
        raise unauthorized(settings.realm, settings.service, error="invalid_token", message=str(exc)) from None
    try:
        subject = await subject_for_token(auth, verified.subject, verified.epoch)
    except IdentityUnavailable as exc:
        raise unavailable(exc) from None
    if subject is None:
        raise unauthorized(settings.realm, settings.service, error="invalid_token",
                           message="the token's account is disabled, gone or changed since; log in again")
    return Identity(subject, verified.access)
