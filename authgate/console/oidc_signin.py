"""Sign in to the console with an OpenID provider (a `type: oidc` identity source).

`/signin/oidc/NAME` starts the authorization code grant with PKCE (identity/people_code.py) and
sends the browser to the provider; the provider sends it back to
`<public_url>/signin/oidc/NAME/callback`, one redirect URI per source, so a code from one provider
can never be taken for another's. The state, nonce and PKCE verifier travel in a cookie sealed
with the data dir's seal key (authenticated encryption, ten minutes, this path only): no
server-side row for an unauthenticated visitor to fill, and a callback is only accepted in the
browser that started it (login CSRF). The cookie is dropped at the callback, so a replayed
callback finds nothing, and the provider refuses a code used twice anyway.

The person becomes the same authgate user as through the device login, with the same teams, and
gets an ordinary console session (a new cookie value, as for a password). Every way a callback
can be wrong ends on the sign-in page saying what happened, with a 4xx (503 when the provider
cannot be reached), never a 500.
"""

from __future__ import annotations

import logging
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.audit.context import request_context
from authgate.audit.events import AuditEvent
from authgate.audit.context import client_address
from authgate.auth.limiter import TooManyAttempts
from authgate.auth.services import auth_of
from authgate.console.sessions import SESSION_TTL, start_session
from authgate.console.signin import render_form, safe_next
from authgate.console.web import SESSION_COOKIE, ConsoleError, page, secure_cookies
from authgate.identity.base import SourceUnavailable
from authgate.identity.people import Person, PeopleSource
from authgate.identity.people_accounts import PersonError
from authgate.identity.people_code import CodeSignIn, authorization_url, check_issuer, finish_code_sign_in
from authgate.resources import Resources
from authgate.subject import Subject

log = logging.getLogger(__name__)

FLOW_COOKIE = "authgate_oidc"
#: Time to sign in at the provider (its own login, MFA); a callback after that starts over.
FLOW_TTL = 600
_START_AGAIN = "Start again with the button below."


def people_sources(resources: Resources) -> list[PeopleSource]:
    return [s for s in resources.identity.sources if isinstance(s, PeopleSource)]


def _source(resources: Resources, request: Request) -> PeopleSource:
    name = request.path_params["source"]
    found = next((s for s in people_sources(resources) if s.name == name), None)
    if found is None or found.sealer is None:
        raise ConsoleError(404, "Not found", "No OpenID provider is configured under that name for signing in.")
    return found


def redirect_uri(resources: Resources, source: PeopleSource) -> str:
    """From `public_url`: the address registered at the provider, whatever Host the request had."""
    return f"{resources.settings.url}/signin/oidc/{quote(source.name)}/callback"


def _origin(url: str) -> tuple[str, str, int | None]:
    """Scheme, host and port, the port spelt out (`http://h` is `http://h:80`)."""
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:  # a Host header with a port that is not one
        port = -1
    return parts.scheme, (parts.hostname or "").lower(), port or {"http": 80, "https": 443}.get(parts.scheme)


def _flow_path(source: PeopleSource) -> str:
    return f"/signin/oidc/{quote(source.name)}"


@page
async def start(resources: Resources, request: Request) -> Response:
    source = _source(resources, request)
    next_path = safe_next(request.query_params.get("next", "/"))
    settings = resources.settings
    if not settings.public_url and _origin(settings.url) != _origin(str(request.url)):
        # The provider sends the browser back to settings.url; the sign-in cookie set here would not
        # be there, and the person would be told their sign-in was not started in this browser.
        raise ConsoleError(400, "Open the console at its configured address",
                           f"Signing in with {source.name} comes back to {settings.url}, not to the address "
                           f"in your browser. Open {settings.url}/signin, or set public_url to the address "
                           "people use (and register its callback at the provider).")
    sign_in = CodeSignIn.new(source.name, next_path)
    try:
        target = await authorization_url(source, sign_in, redirect_uri(resources, source))
    except SourceUnavailable as exc:
        log.warning("console sign-in with %s not started: %s", source.name, exc)
        raise ConsoleError(503, "Identity provider unreachable", f"The identity provider {source.name} cannot be "
                                                                 "reached; try again later.") from None
    assert source.sealer is not None
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(FLOW_COOKIE, source.sealer.seal(sign_in.dumps()), max_age=FLOW_TTL, httponly=True,
                        samesite="lax", secure=secure_cookies(resources, request), path=_flow_path(source))
    return response


class _NotCounted(Exception):
    """Carries an unreachable provider out of the limiter's attempt: not a failed sign-in."""


async def _trade(resources: Resources, request: Request, source: PeopleSource, sign_in: CodeSignIn, code: str
                 ) -> Person:
    """The code traded and checked, as one attempt of the login limiter (per client address, as
    device codes are: a refused code counts, an unreachable provider does not)."""
    limiter = auth_of(resources).limiter
    refused: PersonError | None = None
    async with limiter.attempt("", client_address(request, resources.settings), code, robot=True) as attempt:
        try:
            person = await finish_code_sign_in(source, sign_in, code, redirect_uri(resources, source))
        except SourceUnavailable as exc:
            raise _NotCounted(str(exc)) from exc
        except PersonError as exc:
            refused = exc
        else:
            attempt.succeeded()
    if refused is not None:
        raise refused
    return person


@page
async def callback(resources: Resources, request: Request) -> Response:
    source = _source(resources, request)
    params = request.query_params
    sealed = request.cookies.get(FLOW_COOKIE)
    opened = source.sealer.unseal(sealed, max_age=FLOW_TTL) if sealed and source.sealer else None
    sign_in = CodeSignIn.loads(opened) if opened else None
    next_path = sign_in.next_path if sign_in else "/"
    try:
        if sign_in is None or sign_in.source != source.name:
            raise _Refused(400, "this sign-in was not started in this browser, is older than ten minutes, or "
                                "was already used", f"The sign-in with {source.name} cannot be finished: it "
                                                    "was not started in this browser, it is older than ten "
                                                    f"minutes, or it was already used. {_START_AGAIN}")
        if not sign_in.matches(params.get("state")):
            raise _Refused(400, "state does not match the sign-in this browser started",
                           f"This answer from {source.name} does not belong to the sign-in this browser "
                           f"started. {_START_AGAIN}")
        check_issuer(source, params.get("iss"))
        error = params.get("error")
        if error is not None:
            said = error[:60] + (f": {params.get('error_description', '')[:200]}"
                                 if params.get("error_description") else "")
            raise _Refused(403 if error == "access_denied" else 400, f"the provider answered {said}",
                           f"{source.name} did not sign you in ({said}). {_START_AGAIN}")
        person = await _trade(resources, request, source, sign_in, params.get("code", ""))
    except PersonError as exc:
        return await _refuse(resources, request, source, next_path, _Refused(
            403, str(exc), f"Signing in with {source.name} failed: {exc}. {_START_AGAIN}"))
    except _Refused as refused:
        return await _refuse(resources, request, source, next_path, refused)
    except _NotCounted as exc:
        log.warning("console sign-in with %s not finished: %s", source.name, exc)
        return _drop_flow(render_form(resources, request, next_path, f"The identity provider {source.name} cannot be "
                                                          "reached; try again later.", status=503), source)
    except TooManyAttempts as exc:
        response = render_form(resources, request, next_path, f"Too many failed sign-ins. Try again in {exc.retry_after} "
                                                   "seconds.", status=429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return _drop_flow(response, source)
    cookie = await start_session(resources.db, person.user.name, replacing=request.cookies.get(SESSION_COOKIE))
    await resources.audit.record(AuditEvent(
        action="auth:login", actor=Subject("user", person.user.name, person.teams),
        details={"via": "console", "source": source.name}, **request_context(request, resources.settings)))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(SESSION_TTL.total_seconds()), httponly=True,
                        samesite="lax", secure=secure_cookies(resources, request), path="/")
    return _drop_flow(response, source)


class _Refused(Exception):
    """A callback that cannot sign anyone in: the status, the audit reason and what the person reads."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(reason)
        self.status, self.reason, self.message = status, reason, message


async def _refuse(resources: Resources, request: Request, source: PeopleSource, next_path: str, refused: _Refused
                  ) -> Response:
    await resources.audit.record(AuditEvent(
        action="auth:login:failure", actor=Subject("user", "(console sign-in)"), outcome="failure",
        reason=refused.reason[:300], details={"via": "console", "source": source.name},
        **request_context(request, resources.settings)))
    return _drop_flow(render_form(resources, request, next_path, refused.message, status=refused.status), source)


def _drop_flow(response: Response, source: PeopleSource) -> Response:
    """Whatever the outcome, this sign-in is over: its cookie cannot be used again."""
    response.delete_cookie(FLOW_COOKIE, path=_flow_path(source))
    return response
