"""What every console page shares: templates, the signed-in subject, CSRF, errors as pages, headers.

Each endpoint is wrapped by `page`, which adds the security headers (a Content-Security-Policy
with no inline script or style, no framing, no caching of private pages) and turns a
`ConsoleError` into a readable page with the right status: bad input never becomes a 500.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from authgate.audit.context import client_address, request_context
from authgate.audit.events import AuditEvent
from authgate.bodies import BodyTooLarge, read_bounded
from authgate.console.sessions import SignedIn, load_session, same_token
from authgate.resources import Resources
from authgate.subject import Subject

SESSION_COOKIE = "authgate_session"
#: Before sign-in there is no session to hold a CSRF token: the sign-in form uses a double-submit
#: cookie instead (the form field must equal this cookie, which another site cannot read or set).
LOGIN_CSRF_COOKIE = "authgate_login_csrf"
#: Forms are small; anything larger is refused before parsing.
MAX_FORM_BYTES = 16384
MAX_FIELD = 1024

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}

#: A submitted form: each field once.
Form = dict[str, str]

templates = Jinja2Templates(directory=Path(__file__).parent / "templates")

#: A console page: given what the app holds when the routes are made (`console_routes`), and the request.
Endpoint = Callable[[Resources, Request], Awaitable[Response]]


class ConsoleError(Exception):
    """Rendered as a page: `status`, a short title and a message that says what to do."""

    def __init__(self, status: int, title: str, message: str = "") -> None:
        super().__init__(message or title)
        self.status = status
        self.title = title
        self.message = message


def not_found(what: str = "page") -> ConsoleError:
    """One answer for "missing" and "not yours": the console never confirms a name exists."""
    return ConsoleError(404, "Not found", f"There is no {what} here, or you may not see it.")


def bad_input(message: str) -> ConsoleError:
    return ConsoleError(400, "Bad request", message)


def secure_cookies(resources: Resources, request: Request) -> bool:
    """`Secure` under HTTPS: the request came over TLS, or the public URL is https (behind a proxy)."""
    settings = resources.settings
    return request.url.scheme == "https" or settings.url.startswith("https://")


async def signed_in(resources: Resources, request: Request) -> SignedIn | None:
    cached = request.scope.get("authgate.console")
    if cached is None:
        cached = await load_session(resources.db, request.cookies.get(SESSION_COOKIE))
        request.scope["authgate.console"] = cached or False
    return cached or None


async def require_user(resources: Resources, request: Request) -> SignedIn:
    """The signed-in user; otherwise a redirect to the sign-in page that comes back here."""
    who = await signed_in(resources, request)
    if who is None:
        raise _SignInFirst(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return who


async def require_admin(resources: Resources, request: Request) -> SignedIn:
    who = await require_user(resources, request)
    if not who.subject.admin:
        raise ConsoleError(403, "Admins only", "This page is for admin users (authgate user add NAME --admin).")
    return who


class _SignInFirst(Exception):
    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


async def read_form(request: Request) -> Form:
    """The urlencoded form, bounded, parsed here (as `/token` does) rather than through starlette's
    form parser, which needs `python-multipart` for urlencoded bodies too. Anything else is a 400."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/x-www-form-urlencoded":
        raise bad_input("This address takes a form submitted from the console.")
    try:
        body = await read_bounded(request.stream(), MAX_FORM_BYTES)
    except BodyTooLarge:
        raise bad_input("The form is too large.") from None
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True, max_num_fields=64)
    except (UnicodeDecodeError, ValueError):
        raise bad_input("The form could not be read.") from None
    form: Form = {}
    for name, value in pairs:
        if name in form:
            raise bad_input(f"The field {name[:40]!r} is given twice.")
        if len(value) > MAX_FIELD:
            raise bad_input(f"A field is longer than {MAX_FIELD} characters.")
        form[name] = value
    return form


async def checked_form(resources: Resources, request: Request) -> tuple[SignedIn, Form]:
    """The signed-in user and their form, refused with 403 unless it carries the session's CSRF token."""
    who = await require_user(resources, request)
    form = await read_form(request)
    if not same_token(form.get("csrf"), who.csrf_token):
        raise ConsoleError(403, "Form expired", "This form did not come from your console session "
                                                "(missing or stale security token). Reload the page and try again.")
    return who, form


async def admin_form(resources: Resources, request: Request) -> tuple[SignedIn, Form]:
    """As `checked_form`, for an admin user only."""
    who, form = await checked_form(resources, request)
    if not who.subject.admin:
        await require_admin(resources, request)
    return who, form


def field(form: Form, name: str) -> str:
    return form.get(name, "").strip()


def render(request: Request, template: str, context: dict[str, Any], status: int = 200,
           who: SignedIn | None = None) -> Response:
    context = {"who": who, "path": request.url.path, **context}
    return templates.TemplateResponse(request, template, context, status_code=status)


def can_pull(resources: Resources, request: Request, subject: Subject, repository: str) -> bool:
    """The one question every repository view asks the policy engine."""
    policy = resources.policy
    return "pull" in policy.allowed_actions(subject, repository, client_address(request, resources.settings))


async def audit_admin(resources: Resources, request: Request, who: SignedIn, action: str, target: str,
                      outcome: str = "success", **details: Any) -> None:
    """Admin changes made in the console, with the signed-in subject as actor."""
    await resources.audit.record(AuditEvent(
        action=action, actor=who.subject, reference=target[:255], outcome=outcome,
        details={"via": "console", **details}, **request_context(request, resources.settings),
    ))


def page(endpoint: Endpoint) -> Endpoint:
    """Security headers on every answer; errors and "sign in first" become pages, not tracebacks."""

    @functools.wraps(endpoint)
    async def wrapped(resources: Resources, request: Request) -> Response:
        try:
            response = await endpoint(resources, request)
        except _SignInFirst as exc:
            response = RedirectResponse("/signin?next=" + quote(exc.next_path, safe="/"), status_code=303)
        except ConsoleError as exc:
            who = await signed_in(resources, request)
            response = render(request, "error.html", {"title": exc.title, "message": exc.message},
                              status=exc.status, who=who)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    return wrapped


def new_token() -> str:
    return secrets.token_urlsafe(32)
