"""`GET /token` and `POST /token`: the Docker registry token spec and its OAuth2 variant
(distribution `docs/content/spec/auth/{token,oauth,scope}.md`; docs/client-compat.md §4-6).

Three steps behind small interfaces: authenticate (Basic, password grant or refresh token),
authorize (requested ∩ what the policy allows, never more; fewer is not an error), issue (sign).
Bad input is a 4xx JSON answer that never echoes a secret; only bad credentials give 401.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import parse_qsl

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authgate.audit.context import client_address, request_id, user_agent
from authgate.audit.events import AuditEvent
from authgate.auth import accounts
from authgate.auth.account_store import UserRecord
from authgate.auth.credentials import (
    BasicCredentials,
    CredentialsError,
    Secret,
    check_lengths,
    parse_authorization,
)
from authgate.auth.limiter import TooManyAttempts
from authgate.auth.refresh import issue_refresh_token, redeem_refresh_token
from authgate.auth.refusals import login_refusal_message, refresh_refusal
from authgate.auth.services import AuthServices, auth_of
from authgate.auth.token_answers import PENDING, AnswerParts, TokenAnswers
from authgate.auth.tokens import IssuedToken
from authgate.bodies import BodyTooLarge, read_bounded
from authgate.auth.authn import IdentityUnavailable
from authgate.policy.access import grant
from authgate.resources import Resources
from authgate.scope import Scope, ScopeError, format_scopes, parse_scopes
from authgate.subject import ANONYMOUS, Subject

log = logging.getLogger(__name__)

MAX_QUERY = 8192
MAX_FORM_BODY = 16384
FORM_BODY_SECONDS = 10
MAX_SCOPES = 64
_GRANT_TYPES = ("password", "refresh_token")


class TokenRequestError(Exception):
    """Rendered as JSON in both dialects: the registry `errors` list and OAuth2 `error`."""

    def __init__(self, status: int, oauth_error: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.oauth_error = oauth_error
        self.message = message
        self.headers = headers or {}

    def response(self) -> Response:
        code = {401: "UNAUTHORIZED", 429: "TOOMANYREQUESTS", 503: "UNAVAILABLE"}.get(self.status, "INVALID_REQUEST")
        body = {
            "errors": [{"code": code, "message": self.message, "detail": None}],
            "error": self.oauth_error,
            "error_description": self.message,
        }
        return JSONResponse(body, status_code=self.status, headers=self.headers)


def _bad(message: str, oauth_error: str = "invalid_request") -> TokenRequestError:
    return TokenRequestError(400, oauth_error, message)


def _denied(message: str = "invalid username or password") -> TokenRequestError:
    return TokenRequestError(401, "invalid_grant", message)


@dataclass
class _Outcome:
    """What one token request asked and got, for the audit log and the response."""

    subject: Subject = ANONYMOUS
    user: UserRecord | None = None
    requested: list[Scope] = field(default_factory=list)
    offline: bool = False
    client_id: str = ""
    grant_type: str = "basic"
    refresh_token: Secret | None = None
    epoch: str = ""
    #: The identity source that decided the login (`local`, an LDAP source's name), for the audit log.
    source: str = ""
    #: What that source said about the identity (a CI job's claims), for the audit log.
    identity: dict[str, str] = field(default_factory=dict)
    #: `client_address` of the request, worked out once for the limiter, the policy and the audit log.
    address: str | None = None
    #: The Basic credentials that logged in, and what counted that login in the metrics.
    credentials: BasicCredentials | None = None
    counted: Callable[[], None] | None = None


def _parse_pairs(raw: bytes, limit: int, what: str) -> list[tuple[str, str]]:
    if len(raw) > limit:
        raise _bad(f"{what} is too long (at most {limit} bytes)")
    try:
        return parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=False,
                         encoding="utf-8", errors="strict", max_num_fields=MAX_SCOPES + 16)
    except (UnicodeDecodeError, ValueError):
        raise _bad(f"{what} must be URL-encoded UTF-8 with at most {MAX_SCOPES + 16} fields") from None


def _single(pairs: Sequence[tuple[str, str]], name: str) -> str:
    values = [v for k, v in pairs if k == name]
    if len(values) > 1:
        raise _bad(f"parameter {name} given more than once")
    return values[0] if values else ""


def _scopes(values: list[str]) -> list[Scope]:
    try:
        scopes = parse_scopes(values)
    except ScopeError as exc:
        raise _bad(f"{exc}; scopes look like repository:NAME:pull,push", "invalid_scope") from None
    if len(scopes) > MAX_SCOPES:
        raise _bad(f"at most {MAX_SCOPES} scopes per request", "invalid_scope")
    return scopes


def _check_service(resources: Resources, service: str) -> None:
    expected = resources.settings.service
    if service and service != expected:
        raise _bad(f"unknown service {service[:100]!r}: this token server issues tokens for {expected!r}")


async def _login(auth: AuthServices, resources: Resources, request: Request, creds: BasicCredentials,
                 outcome: _Outcome) -> None:
    try:
        result = await auth.authenticator.login(creds, outcome.address)
    except TooManyAttempts as exc:
        if exc.first:
            await _audit(resources, request, "auth:login:failure", outcome, Subject("user", creds.username[:255]),
                         reason="locked out after repeated failures")
        raise TokenRequestError(429, "slow_down", exc.message,
                                {"Retry-After": str(exc.retry_after)}) from None
    except IdentityUnavailable as exc:
        log.warning("login for %r from %s not checked: %s", creds.username[:100], outcome.address, exc)
        await _audit(resources, request, "auth:login:failure", outcome, Subject("user", creds.username[:255]),
                     reason=str(exc))
        raise TokenRequestError(503, "temporarily_unavailable", str(exc), {"Retry-After": "30"}) from None
    outcome.source, outcome.identity = result.source, result.details
    if result.subject is None:
        log.info("login failed for %r from %s: %s", creds.username[:100], outcome.address, result.reason)
        await _audit(resources, request, "auth:login:failure", outcome, Subject("user", creds.username[:255]),
                     reason=result.reason)
        raise _denied(login_refusal_message(result.reason, creds.username[:255]))
    outcome.subject, outcome.user, outcome.epoch = result.subject, result.user, result.epoch
    outcome.credentials, outcome.counted = creds, result.counted


async def _audit(resources: Resources, request: Request, action: str, outcome: _Outcome, actor: Subject,
                 reason: str | None = None, granted: Sequence[Scope] = ()) -> AuditEvent:
    details: dict[str, object] = {"grant_type": outcome.grant_type, "client_id": outcome.client_id}
    if outcome.source:
        details["source"] = outcome.source
    if outcome.identity:
        details["identity"] = outcome.identity
    if action == "token:issue":
        details.update(requested=format_scopes(outcome.requested), granted=format_scopes(granted))
    event = AuditEvent(
        action=action,
        actor=actor,
        outcome="failure" if action.endswith(":failure") else "success",
        reason=reason,
        details=details,
        address=outcome.address,
        user_agent=user_agent(request),
        request_id=request_id(request),
    )
    await resources.audit.record(event)
    return event


async def _get(request: Request, resources: Resources, auth: AuthServices, address: str | None) -> _Outcome:
    pairs = _parse_pairs(request.scope.get("query_string", b""), MAX_QUERY, "query string")
    _check_service(resources, _single(pairs, "service"))
    outcome = _Outcome(requested=_scopes([v for k, v in pairs if k == "scope"]), address=address)
    outcome.offline = _single(pairs, "offline_token").lower() == "true"
    outcome.client_id = _single(pairs, "client_id")[:255]
    account = _single(pairs, "account")
    try:
        creds = parse_authorization(request.headers.get("authorization"))
    except CredentialsError as exc:
        raise _bad(str(exc)) from None
    if creds is not None and not isinstance(creds, BasicCredentials):
        raise _bad("the token endpoint takes Basic credentials (or none, for anonymous access)")
    if creds is None or creds.empty:
        if account:
            raise _bad("account given without credentials")
        return outcome
    if account and account != creds.username:
        raise _bad("account does not match the username of the credentials")
    await _login(auth, resources, request, creds, outcome)
    return outcome


async def _post(request: Request, resources: Resources, auth: AuthServices, address: str | None) -> _Outcome:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise _bad("POST /token takes an application/x-www-form-urlencoded form")
    body = b""
    # A login form is a few hundred bytes: one trickled a byte at a time would hold a connection (and
    # a place under max_connections) for as long as the client likes.
    with anyio.move_on_after(FORM_BODY_SECONDS) as reading:
        try:
            body = await read_bounded(request.stream(), MAX_FORM_BODY)
        except BodyTooLarge:
            raise _bad(f"form body is too long (at most {MAX_FORM_BODY} bytes)") from None
    if reading.cancelled_caught:
        raise TokenRequestError(408, "invalid_request", f"the form body took over {FORM_BODY_SECONDS} s to arrive")
    pairs = _parse_pairs(body, MAX_FORM_BODY, "form body")
    _check_service(resources, _single(pairs, "service"))
    grant_type = _single(pairs, "grant_type")
    if grant_type not in _GRANT_TYPES:
        raise _bad("grant_type must be password or refresh_token", "unsupported_grant_type")
    client_id = _single(pairs, "client_id")
    if not client_id:
        raise _bad("client_id is required (any name identifying the client, e.g. docker)")
    outcome = _Outcome(requested=_scopes([_single(pairs, "scope")]), client_id=client_id[:255], grant_type=grant_type,
                       address=address)
    if grant_type == "password":
        username, password = _single(pairs, "username"), _single(pairs, "password")
        if not username:
            raise _bad("username and password are required for grant_type=password")
        try:
            check_lengths(username, password)
        except CredentialsError as exc:
            raise _bad(str(exc)) from None
        outcome.offline = _single(pairs, "access_type") == "offline"
        await _login(auth, resources, request, BasicCredentials(username, Secret(password)), outcome)
        return outcome
    raw = _single(pairs, "refresh_token")
    if not raw or len(raw) > 512:
        raise _bad("refresh_token is required for grant_type=refresh_token")
    user = await redeem_refresh_token(auth.accounts, raw, resources.settings.service)
    if user is not None:  # a device-login user: still vouched for by their provider?
        try:
            user = await auth.identity.recheck(user)
        except IdentityUnavailable as exc:
            raise TokenRequestError(503, "temporarily_unavailable", str(exc), {"Retry-After": "30"}) from None
    if user is None:
        refusal = await refresh_refusal(resources.db, raw, resources.settings.service)
        actor = ANONYMOUS if refusal.owner is None else Subject("user", refusal.owner)
        await _audit(resources, request, "auth:login:failure", outcome, actor, reason=refusal.reason)
        raise _denied(refusal.message)
    outcome.subject, outcome.user, outcome.refresh_token = user.subject, user, Secret(raw)
    outcome.epoch = accounts.account_epoch(user)
    outcome.source = "local"  # refresh tokens belong to local accounts
    return outcome


async def token_endpoint(resources: Resources, answers: TokenAnswers | None, request: Request) -> Response:
    auth = auth_of(resources)
    try:
        address = client_address(request, resources.settings)
        outcome = await (_get if request.method == "GET" else _post)(request, resources, auth, address)
        granted = grant(resources.policy, outcome.subject, outcome.requested, address)
        issued = auth.tokens.issue_recent(outcome.subject, granted, epoch=outcome.epoch)
        refresh = outcome.refresh_token
        if refresh is None and outcome.offline and outcome.user is not None:
            refresh = Secret(await issue_refresh_token(resources.db, outcome.user, resources.settings.service,
                                                       outcome.client_id, resources.settings.refresh_token_ttl))
    except TokenRequestError as exc:
        return exc.response()
    events = []
    if not outcome.subject.is_anonymous and (outcome.grant_type == "password" or outcome.offline or
                                             (outcome.grant_type == "basic" and not outcome.requested)):
        events.append(await _audit(resources, request, "auth:login", outcome, outcome.subject))
    events.append(await _audit(resources, request, "token:issue", outcome, outcome.subject, granted=granted))
    body: dict[str, object] = {
        "token": issued.token,
        "access_token": issued.token,
        "expires_in": issued.expires_in,
        "issued_at": issued.issued_at_text,
    }
    if request.method == "POST":
        body["scope"] = format_scopes(granted)
    if refresh is not None:
        body["refresh_token"] = refresh.reveal()
    pending = request.scope.get(PENDING)
    if answers is not None and pending is not None:
        parts = await _repeatable(auth, outcome, body, issued, events)
        if parts is not None:
            answers.store(pending, parts)
    return Response(json.dumps(body), media_type="application/json", headers={"Cache-Control": "no-store"})


async def _repeatable(auth: AuthServices, outcome: _Outcome, body: dict[str, object], issued: IssuedToken,
                      events: list[AuditEvent]) -> AnswerParts | None:
    """The parts of this answer that `TokenAnswers` may repeat, or None if it must be worked out each
    time: only a Basic login of a local user or robot that issued no refresh token, and the refresh
    grant of a user no identity source re-checks (token_answers.py says why and for how long)."""
    creds = outcome.credentials
    if outcome.grant_type == "basic" and creds is not None and not outcome.offline and outcome.source == "local":
        name = creds.username
        if name.startswith(accounts.ROBOT_LOGIN_PREFIX):
            robot = await auth.accounts.robot(name.removeprefix(accounts.ROBOT_LOGIN_PREFIX))
            if robot is None:
                return None
            until = robot.expires_at.timestamp() if robot.expires_at is not None else math.inf
            return AnswerParts(body, issued, events, until, (name, True))
        if outcome.user is None:
            return None
        remembered = auth.verifier.remembered_until(name, outcome.user.password_hash, creds.password.reveal())
        if remembered is None:
            return None
        return AnswerParts(body, issued, events, remembered, (name, False), counted=outcome.counted)
    if outcome.grant_type == "refresh_token" and outcome.refresh_token is not None and not auth.identity.rechecks_users:
        record = await auth.accounts.refresh_token(accounts.sha256_hex(outcome.refresh_token.reveal()))
        if record is None:
            return None
        return AnswerParts(body, issued, events, record.expires_at.timestamp(), refresh=record)
    return None


def token_routes(resources: Resources, answers: TokenAnswers | None = None) -> list[BaseRoute]:
    """`answers`: where cacheable answers are stored, for `authgate.auth.token_fast` to repeat."""
    return [Route("/token", partial(token_endpoint, resources, answers), methods=["GET", "POST"])]
