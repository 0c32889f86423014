"""Sign in with a local password and sign out; the sign-in page also offers each OpenID provider
configured for people (`type: oidc`), whose sign-in is in oidc_signin.py.

Passwords go through the same `Authenticator` as `/token` and `/v2/` Basic, so the same login
limiter slows and then locks out guessing whichever door it comes through, and failures land in
the audit log alike. Robots are for `docker login` in CI, not for the console.
"""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.audit.context import client_address, request_context
from authgate.audit.events import AuditEvent
from authgate.auth.accounts import ROBOT_LOGIN_PREFIX
from authgate.auth.credentials import BasicCredentials, CredentialsError, Secret, check_lengths
from authgate.auth.limiter import TooManyAttempts
from authgate.auth.services import auth_of
from authgate.console.sessions import SESSION_TTL, end_session, same_token, start_session
from authgate.console.web import (
    LOGIN_CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleError,
    checked_form,
    field,
    new_token,
    page,
    read_form,
    render,
    secure_cookies,
    signed_in,
)
from authgate.identity.people import PeopleSource
from authgate.resources import Resources
from authgate.subject import Subject


def safe_next(raw: str) -> str:
    """Only a path on this site: `//evil.example` or `https://…` would make sign-in an open redirect."""
    if raw.startswith("/") and not raw.startswith("//") and "\\" not in raw and len(raw) < 1024:
        return raw
    return "/"


def _providers(resources: Resources, next_path: str) -> list[tuple[str, str]]:
    """(name, start link) of each OpenID provider people may sign in with."""
    sources = resources.identity.sources
    return [(s.name, f"/signin/oidc/{quote(s.name)}?next={quote(next_path, safe='/')}")
            for s in sources if isinstance(s, PeopleSource)]


def render_form(resources: Resources, request: Request, next_path: str, error: str = "", username: str = "",
                status: int = 200) -> Response:
    """The sign-in page: the password form and a button per OpenID provider, with `error` on top."""
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or new_token()
    if len(token) > 64:
        token = new_token()
    response = render(request, "signin.html", {"title": "Sign in", "csrf": token, "next": next_path, "error": error,
                                               "username": username, "providers": _providers(resources, next_path)},
                      status=status)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="lax",
                        secure=secure_cookies(resources, request),
                        path="/signin")
    return response


@page
async def signin_page(resources: Resources, request: Request) -> Response:
    next_path = safe_next(request.query_params.get("next", "/"))
    if await signed_in(resources, request) is not None:
        return RedirectResponse(next_path, status_code=303)
    return render_form(resources, request, next_path)


async def _failed(resources: Resources, request: Request, username: str, reason: str) -> None:
    await resources.audit.record(AuditEvent(
        action="auth:login:failure", actor=Subject("user", username[:255]), outcome="failure", reason=reason,
        details={"via": "console"}, **request_context(request, resources.settings),
    ))


@page
async def signin_submit(resources: Resources, request: Request) -> Response:
    form = await read_form(request)
    next_path = safe_next(field(form, "next") or "/")
    if not same_token(form.get("csrf"), request.cookies.get(LOGIN_CSRF_COOKIE) or "\0"):
        raise ConsoleError(403, "Form expired", "The sign-in form was not loaded from this site, or it is too old. "
                                                "Open the sign-in page again.")
    username = field(form, "username")
    password = form.get("password", "")
    if not username or not password:
        return render_form(resources, request, next_path, "Enter your user name and password.", username, 400)
    try:
        check_lengths(username, password)
    except CredentialsError as exc:
        return render_form(resources, request, next_path, str(exc), "", 400)
    if username.startswith(ROBOT_LOGIN_PREFIX):
        return render_form(resources, request, next_path, "Robots log in with docker, not in the console.", "", 400)
    try:
        result = await auth_of(resources).authenticator.login(BasicCredentials(username, Secret(password)),
                                                              client_address(request, resources.settings))
    except TooManyAttempts as exc:
        if exc.first:
            await _failed(resources, request, username, "locked out after repeated failures")
        response = render_form(resources, request, next_path,
                               f"Too many failed sign-ins. Try again in {exc.retry_after} seconds.", username, 429)
        response.headers["Retry-After"] = str(exc.retry_after)
        return response
    if result.subject is None:
        await _failed(resources, request, username, result.reason)
        return render_form(resources, request, next_path, "Wrong user name or password.", username, 401)
    cookie = await start_session(resources.db, result.subject.name, replacing=request.cookies.get(SESSION_COOKIE))
    await resources.audit.record(AuditEvent(
        action="auth:login", actor=result.subject, details={"via": "console"},
        **request_context(request, resources.settings),
    ))
    response = RedirectResponse(next_path, status_code=303)
    response.set_cookie(SESSION_COOKIE, cookie, max_age=int(SESSION_TTL.total_seconds()), httponly=True,
                        samesite="lax", secure=secure_cookies(resources, request), path="/")
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/signin")
    return response


@page
async def signout(resources: Resources, request: Request) -> Response:
    await checked_form(resources, request)
    await end_session(resources.db, request.cookies.get(SESSION_COOKIE))
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
