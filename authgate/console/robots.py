"""Robot accounts for CI (admins): create with an expiry (the secret is shown once), change the
expiry, disable, enable.

Robots are not owned by a user in authgate (policies grant to `robot:NAME`), so managing them is
an admin's job, as with `authgate robot`; a non-admin asking gets the admins-only page.
"""

from __future__ import annotations

from datetime import timedelta

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.auth import accounts
from authgate.console.repositories import pull_host
from authgate.console.web import admin_form, audit_admin, bad_input, field, not_found, page, render, require_admin
from authgate.resources import Resources

#: The choices offered; a fixed list, so the form cannot ask for anything else.
EXPIRY_CHOICES: dict[str, timedelta | None] = {
    "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90),
    "365d": timedelta(days=365), "never": None,
}


async def _listing(resources: Resources, request: Request, **extra: object) -> dict[str, object]:
    robots = await accounts.list_robots(resources.db)
    rows = [{"name": r.name, "login": accounts.ROBOT_LOGIN_PREFIX + r.name, "description": r.description,
             "state": "disabled" if r.disabled else ("active" if accounts.robot_usable(r) else "expired"),
             "expires": r.expires_at.strftime("%Y-%m-%d %H:%M UTC") if r.expires_at else "never"} for r in robots]
    return {"title": "Robots", "robots": rows, "choices": list(EXPIRY_CHOICES), "host": pull_host(resources, request),
            **extra}


@page
async def robots_page(resources: Resources, request: Request) -> Response:
    who = await require_admin(resources, request)
    return render(request, "robots.html", await _listing(resources, request), who=who)


@page
async def robot_create(resources: Resources, request: Request) -> Response:
    who, form = await admin_form(resources, request)
    name, expiry, description = field(form, "name"), field(form, "expires"), field(form, "description")
    if expiry not in EXPIRY_CHOICES:
        raise bad_input("Pick an expiry from the list.")
    try:
        secret = await accounts.create_robot(resources.db, name, EXPIRY_CHOICES[expiry], description[:500])
    except accounts.AccountError as exc:
        return render(request, "robots.html", await _listing(resources, request, error=str(exc)), status=400, who=who)
    await audit_admin(resources, request, who, "robot:create", name, expires=expiry)
    created = {"name": name, "login": accounts.ROBOT_LOGIN_PREFIX + name, "secret": secret}
    return render(request, "robots.html", await _listing(resources, request, created=created), who=who)


@page
async def robot_change(resources: Resources, request: Request) -> Response:
    who, form = await admin_form(resources, request)
    name, action = field(form, "name"), field(form, "action")
    if action not in ("disable", "enable"):
        raise bad_input("action must be disable or enable.")
    try:
        accounts.check_name(name, "robot")
        await accounts.set_robot_disabled(resources.db, name, action == "disable")
    except accounts.AccountError:
        raise not_found("robot") from None
    await audit_admin(resources, request, who, f"robot:{action}", name)
    return RedirectResponse("/robots", status_code=303)


@page
async def robot_expiry(resources: Resources, request: Request) -> Response:
    """`authgate robot expire NAME --expires …`: a new lifetime from now, the secret unchanged."""
    who, form = await admin_form(resources, request)
    name, expiry = field(form, "name"), field(form, "expires")
    if expiry not in EXPIRY_CHOICES:
        raise bad_input("Pick an expiry from the list.")
    try:
        accounts.check_name(name, "robot")
        await accounts.set_robot_expiry(resources.db, name, EXPIRY_CHOICES[expiry])
    except accounts.AccountError:
        raise not_found("robot") from None
    await audit_admin(resources, request, who, "robot:expire", name, expires=expiry)
    return RedirectResponse("/robots", status_code=303)
