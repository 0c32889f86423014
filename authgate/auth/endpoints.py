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

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authgate.audit.context import client_address, request_id, user_agent
from authgate.audit.events import AuditEvent, AuditSink
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
from authgate.auth.services import AuthServices
from authgate.auth.token_answers import PENDING, AnswerParts, TokenAnswers
from authgate.auth.token_request import (
    TokenRequestError,
    bad,
    check_service,
    denied,
    parse_pairs,
    requested_scopes,
    single,
)
from authgate.auth.tokens import IssuedToken
from authgate.bodies import BodyTooLarge, read_bounded
from authgate.auth.authn import IdentityUnavailable
from authgate.db.session import Database
from authgate.policy import Authorizer
from authgate.policy.access import grant
from authgate.scope import Scope, format_scopes
from authgate.settings import Settings
from authgate.subject import ANONYMOUS, Subject

log = logging.getLogger(__name__)

MAX_QUERY = 8192
MAX_FORM_BODY = 16384
FORM_BODY_SECONDS = 10
_GRANT_TYPES = ("password", "refresh_token")


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


async def _login(server: TokenServer, request: Request, creds: BasicCredentials, outcome: _Outcome) -> None:
    try:
        result = await server.auth.authenticator.login(creds, outcome.address)
    except TooManyAttempts as exc:
        if exc.first:
            await _audit(server, request, "auth:login:failure", outcome, Subject("user", creds.username[:255]),
                         reason="locked out after repeated failures")
        raise TokenRequestError(429, "slow_down", exc.message,
                                {"Retry-After": str(exc.retry_after)}) from None
    except IdentityUnavailable as exc:
        log.warning("login for %r from %s not checked: %s", creds.username[:100], outcome.address, exc)
        await _audit(server, request, "auth:login:failure", outcome, Subject("user", creds.username[:255]),
                     reason=str(exc))
        raise TokenRequestError(503, "temporarily_unavailable", str(exc), {"Retry-After": "30"}) from None
    outcome.source, outcome.identity = result.source, result.details
    if result.subject is None:
        log.info("login failed for %r from %s: %s", creds.username[:100], outcome.address, result.reason)
        await _audit(server, request, "auth:login:failure", outcome, Subject("user", creds.username[:255]),
                     reason=result.reason)
        raise denied(login_refusal_message(result.reason, creds.username[:255]))
    outcome.subject, outcome.user, outcome.epoch = result.subject, result.user, result.epoch
    outcome.credentials, outcome.counted = creds, result.counted


async def _audit(server: TokenServer, request: Request, action: str, outcome: _Outcome, actor: Subject,
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
    await server.audit.record(event)
    return event


async def _get(request: Request, server: TokenServer, address: str | None) -> _Outcome:
    pairs = parse_pairs(request.scope.get("query_string", b""), MAX_QUERY, "query string")
    check_service(server.settings.service, single(pairs, "service"))
    outcome = _Outcome(requested=requested_scopes([v for k, v in pairs if k == "scope"]), address=address)
    outcome.offline = single(pairs, "offline_token").lower() == "true"
    outcome.client_id = single(pairs, "client_id")[:255]
    account = single(pairs, "account")
    try:
        creds = parse_authorization(request.headers.get("authorization"))
    except CredentialsError as exc:
        raise bad(str(exc)) from None
    if creds is not None and not isinstance(creds, BasicCredentials):
        raise bad("the token endpoint takes Basic credentials (or none, for anonymous access)")
    if creds is None or creds.empty:
        if account:
            raise bad("account given without credentials")
        return outcome
    if account and account != creds.username:
        raise bad("account does not match the username of the credentials")
    await _login(server, request, creds, outcome)
    return outcome


async def _post(request: Request, server: TokenServer, address: str | None) -> _Outcome:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise bad("POST /token takes an application/x-www-form-urlencoded form")
    body = b""
    # A login form is a few hundred bytes: one trickled a byte at a time would hold a connection (and
    # a place under max_connections) for as long as the client likes.
    with anyio.move_on_after(FORM_BODY_SECONDS) as reading:
        try:
            body = await read_bounded(request.stream(), MAX_FORM_BODY)
        except BodyTooLarge:
            raise bad(f"form body is too long (at most {MAX_FORM_BODY} bytes)") from None
    if reading.cancelled_caught:
        raise TokenRequestError(408, "invalid_request", f"the form body took over {FORM_BODY_SECONDS} s to arrive")
    pairs = parse_pairs(body, MAX_FORM_BODY, "form body")
    check_service(server.settings.service, single(pairs, "service"))
    grant_type = single(pairs, "grant_type")
    if grant_type not in _GRANT_TYPES:
        raise bad("grant_type must be password or refresh_token", "unsupported_grant_type")
    client_id = single(pairs, "client_id")
    if not client_id:
        raise bad("client_id is required (any name identifying the client, e.g. docker)")
    outcome = _Outcome(requested=requested_scopes([single(pairs, "scope")]), client_id=client_id[:255], grant_type=grant_type,
                       address=address)
    if grant_type == "password":
        username, password = single(pairs, "username"), single(pairs, "password")
        if not username:
            raise bad("username and password are required for grant_type=password")
        try:
            check_lengths(username, password)
        except CredentialsError as exc:
            raise bad(str(exc)) from None
        outcome.offline = single(pairs, "access_type") == "offline"
        await _login(server, request, BasicCredentials(username, Secret(password)), outcome)
        return outcome
    raw = single(pairs, "refresh_token")
    if not raw or len(raw) > 512:
        raise bad("refresh_token is required for grant_type=refresh_token")
    user = await redeem_refresh_token(server.auth.accounts, raw, server.settings.service)
    if user is not None:  # a device-login user: still vouched for by their provider?
        try:
            user = await server.auth.identity.recheck(user)
        except IdentityUnavailable as exc:
            raise TokenRequestError(503, "temporarily_unavailable", str(exc), {"Retry-After": "30"}) from None
    if user is None:
        refusal = await refresh_refusal(server.db, raw, server.settings.service)
        actor = ANONYMOUS if refusal.owner is None else Subject("user", refusal.owner)
        await _audit(server, request, "auth:login:failure", outcome, actor, reason=refusal.reason)
        raise denied(refusal.message)
    outcome.subject, outcome.user, outcome.refresh_token = user.subject, user, Secret(raw)
    outcome.epoch = accounts.account_epoch(user)
    outcome.source = "local"  # refresh tokens belong to local accounts
    return outcome


async def token_endpoint(server: TokenServer, request: Request) -> Response:
    auth = server.auth
    try:
        address = client_address(request, server.settings)
        outcome = await (_get if request.method == "GET" else _post)(request, server, address)
        granted = grant(server.policy, outcome.subject, outcome.requested, address)
        issued = auth.tokens.issue_recent(outcome.subject, granted, epoch=outcome.epoch)
        refresh = outcome.refresh_token
        if refresh is None and outcome.offline and outcome.user is not None:
            refresh = Secret(await issue_refresh_token(server.db, outcome.user, server.settings.service,
                                                       outcome.client_id, server.settings.refresh_token_ttl))
    except TokenRequestError as exc:
        return exc.response()
    events = []
    if not outcome.subject.is_anonymous and (outcome.grant_type == "password" or outcome.offline or
                                             (outcome.grant_type == "basic" and not outcome.requested)):
        events.append(await _audit(server, request, "auth:login", outcome, outcome.subject))
    events.append(await _audit(server, request, "token:issue", outcome, outcome.subject, granted=granted))
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
    if server.answers is not None and pending is not None:
        parts = await _repeatable(auth, outcome, body, issued, events)
        if parts is not None:
            server.answers.store(pending, parts)
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


@dataclass(frozen=True)
class TokenServer:
    """What `/token` uses, handed to it when the app makes its routes."""

    settings: Settings
    db: Database
    policy: Authorizer
    audit: AuditSink
    auth: AuthServices
    #: Where repeatable answers are kept, for `authgate.auth.token_fast` to send again.
    answers: TokenAnswers | None = None


def token_routes(server: TokenServer) -> list[BaseRoute]:
    return [Route("/token", partial(token_endpoint, server), methods=["GET", "POST"])]
