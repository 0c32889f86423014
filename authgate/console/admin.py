"""Admin pages: users (disable, enable, unlock) and refresh tokens (list, revoke).

Every change is audited with the signed-in admin as actor (`details.via = console`). Unlock is
`authgate user unlock NAME`: a row in the database that the login limiter of every process reads
(auth/unlocks.py), so it reaches the other processes too, within a second.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.auth import accounts, unlocks
from authgate.auth.refresh import list_refresh_tokens, revoke_refresh_tokens
from authgate.console.sessions import end_user_sessions
from authgate.console.web import (
    admin_form,
    audit_admin,
    bad_input,
    field,
    not_found,
    page,
    render,
    require_admin,
)
from authgate.resources import Resources


@page
async def users_page(resources: Resources, request: Request) -> Response:
    who = await require_admin(resources, request)
    users = await accounts.list_users(resources.db)
    return render(request, "users.html", {"title": "Users", "users": users}, who=who)


@page
async def user_change(resources: Resources, request: Request) -> Response:
    who, form = await admin_form(resources, request)
    name, action = field(form, "name"), field(form, "action")
    if action not in ("disable", "enable", "unlock"):
        raise bad_input("action must be disable, enable or unlock.")
    if name == who.subject.name and action == "disable":
        raise bad_input("You cannot disable yourself: another admin must do it (so one admin always remains).")
    db = resources.db
    try:
        accounts.check_name(name)
        if action == "unlock":
            if await accounts.find_user(db, name) is None:
                raise accounts.AccountError(name)
            await unlocks.record_unlock(db, unlocks.user_target(name))
        else:
            await accounts.set_disabled(db, name, action == "disable")
    except accounts.AccountError:
        raise not_found("user") from None
    if action == "disable":
        await end_user_sessions(db, name)
    await audit_admin(resources, request, who, f"user:{action}", name)
    if action == "unlock":  # nothing on the list changes, so say it was done
        done = f"Unlocked {name}: their next login is checked normally."
        return render(request, "users.html", {"title": "Users", "users": await accounts.list_users(db),
                                              "done": done}, who=who)
    return RedirectResponse("/users", status_code=303)


@page
async def tokens_page(resources: Resources, request: Request) -> Response:
    who = await require_admin(resources, request)
    user = request.query_params.get("user", "").strip()
    if user:
        try:
            accounts.check_name(user)
        except accounts.AccountError as exc:
            raise bad_input(str(exc)) from None
    tokens = await list_refresh_tokens(resources.db, user or None)
    return render(request, "tokens.html", {"title": "Refresh tokens", "tokens": tokens, "user": user}, who=who)


@page
async def token_revoke(resources: Resources, request: Request) -> Response:
    who, form = await admin_form(resources, request)
    raw = field(form, "id")
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise bad_input("The token id must be a number from the list.")
    count = await revoke_refresh_tokens(resources.db, int(raw))
    if count == 0:
        raise not_found("live refresh token with that id")
    await audit_admin(resources, request, who, "token:revoke", raw)
    return RedirectResponse("/tokens", status_code=303)
