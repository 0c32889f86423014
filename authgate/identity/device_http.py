"""`POST /auth/oidc/device` and `POST /auth/oidc/token`: the device login `authgate login --oidc` drives.

RFC 8628 between authgate and the provider; between the CLI and authgate the same shape: start
(URL and code to show), then poll with the device code until the person has signed in (400
`authorization_pending` / `slow_down` meanwhile), and receive an authgate refresh token. The
provider's tokens never leave authgate.
"""

from __future__ import annotations

import logging
from functools import partial
from urllib.parse import parse_qsl

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authgate.audit.context import client_address, request_context
from authgate.audit.events import AuditEvent
from authgate.auth.limiter import TooManyAttempts
from authgate.auth.refresh import issue_refresh_token
from authgate.auth.services import auth_of
from authgate.bodies import BodyTooLarge, read_bounded
from authgate.identity.base import SourceUnavailable
from authgate.identity.people import Pending, PeopleSource
from authgate.identity.people_accounts import PersonError
from authgate.resources import Resources
from authgate.subject import Subject

log = logging.getLogger(__name__)
MAX_FORM = 8192


def _error(status: int, error: str, description: str) -> Response:
    return JSONResponse({"error": error, "error_description": description}, status_code=status,
                        headers={"Cache-Control": "no-store"})


async def _form(request: Request) -> dict[str, str]:
    try:
        body = await read_bounded(request.stream(), MAX_FORM)
    except BodyTooLarge:
        return {}
    if request.headers.get("content-type", "").split(";")[0].strip() != \
            "application/x-www-form-urlencoded":
        return {}
    try:
        return dict(parse_qsl(body.decode("ascii"), max_num_fields=16))
    except (UnicodeDecodeError, ValueError):
        return {}


def _source(resources: Resources, name: str) -> PeopleSource | None:
    people = [s for s in resources.identity.sources if isinstance(s, PeopleSource)]
    if not name and len(people) == 1:
        return people[0]
    return next((s for s in people if s.name == name), None)


async def _audit(resources: Resources, request: Request, action: str, actor: Subject, source: str,
                 reason: str | None = None) -> None:
    await resources.audit.record(AuditEvent(
        action=action, actor=actor, outcome="failure" if action.endswith(":failure") else "success", reason=reason,
        details={"grant_type": "device_code", "source": source}, **request_context(request, resources.settings)))


async def device_start(resources: Resources, request: Request) -> Response:
    form = await _form(request)
    source = _source(resources, form.get("source", ""))
    if source is None:
        return _error(404, "invalid_request", "no OpenID device login is configured under that source name "
                      "(see the identity file: type: oidc)")
    try:
        started = await source.start()
    except SourceUnavailable as exc:
        log.warning("device login at %s not started: %s", source.name, exc)
        return _error(503, "temporarily_unavailable", f"the identity provider {source.name} cannot be reached; "
                      "try again later")
    except PersonError as exc:
        return _error(400, "invalid_request", str(exc))
    return JSONResponse({"source": source.name, **started}, headers={"Cache-Control": "no-store"})



class _NotAFailure(Exception):
    """Carries a pending or unreachable-provider answer out of the limiter's attempt uncounted."""

    def __init__(self, cause: Pending | SourceUnavailable) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def device_token(resources: Resources, request: Request) -> Response:
    form = await _form(request)
    source = _source(resources, form.get("source", ""))
    device_code = form.get("device_code", "")
    if source is None or not device_code or len(device_code) > 512:
        return _error(400, "invalid_request", "source and device_code are required")
    limiter, address = auth_of(resources).limiter, client_address(request, resources.settings)
    refused: PersonError | None = None
    try:
        # Guessed device codes are failed logins of this address (counted per address only).
        async with limiter.attempt("", address, device_code, robot=True) as attempt:
            try:
                person = await source.finish(device_code)
            except (Pending, SourceUnavailable) as exc:
                raise _NotAFailure(exc) from exc  # leaves the attempt uncounted
            except PersonError as exc:
                refused = exc  # counted when the attempt ends without success
            else:
                attempt.succeeded()
    except TooManyAttempts as exc:
        return _error(429, "slow_down", f"too many failed sign-ins; try again in {exc.retry_after} s")
    except _NotAFailure as wrapped:
        if isinstance(wrapped.cause, Pending):
            return _error(400, wrapped.cause.error, "the sign-in is not finished yet; poll again after the interval")
        log.warning("device login at %s not checked: %s", source.name, wrapped.cause)
        return _error(503, "temporarily_unavailable", f"the identity provider {source.name} cannot be reached; "
                      "try again later")
    if refused is not None:
        await _audit(resources, request, "auth:login:failure", Subject("user", "(device login)"), source.name,
                     str(refused))
        return _error(403, "access_denied", str(refused))
    settings = resources.settings
    refresh = await issue_refresh_token(resources.db, person.user, settings.service,
                                        form.get("client_id", "authgate-cli")[:255], settings.refresh_token_ttl)
    await _audit(resources, request, "auth:login", Subject("user", person.user.name, person.teams), source.name)
    return JSONResponse({"username": person.user.name, "refresh_token": refresh, "teams": sorted(person.teams),
                         "groups": list(person.groups), "source": source.name}, headers={"Cache-Control": "no-store"})


def device_routes(resources: Resources) -> list[BaseRoute]:
    return [Route("/auth/oidc/device", partial(device_start, resources), methods=["POST"]),
            Route("/auth/oidc/token", partial(device_token, resources), methods=["POST"])]
