"""Teams and their members. Database teams are edited here by admins; teams declared in policy
files are shown with their file and are changed by editing that file.

Admins see every team; other users see the teams they belong to.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from authgate.auth import accounts
from authgate.console.sessions import SignedIn
from authgate.console.web import admin_form, audit_admin, bad_input, field, page, render, require_user
from authgate.policy.engine import PolicyEngine
from authgate.resources import Resources

_ACTIONS = ("create", "delete", "add", "remove")


def policy_engine(resources: Resources) -> PolicyEngine:
    return resources.policy.engine


@page
async def teams_page(resources: Resources, request: Request) -> Response:
    return await _teams(resources, request, await require_user(resources, request))


async def _teams(resources: Resources, request: Request, who: SignedIn, error: str = "", status: int = 200) -> Response:
    teams = await accounts.list_teams(resources.db)
    engine = policy_engine(resources)
    declared = [{"name": t.name, "members": sorted(f"{kind}:{name}" for kind, name in t.members),
                 "origin": str(getattr(t, "origin", ""))} for t in engine.policy.teams]
    if not who.subject.admin:
        mine = engine.teams_of(who.subject)
        teams = {name: members for name, members in teams.items() if name in mine}
        declared = [t for t in declared if t["name"] in mine]
    return render(request, "teams.html", {"title": "Teams", "teams": teams, "declared": declared, "error": error},
                  status=status, who=who)


@page
async def team_change(resources: Resources, request: Request) -> Response:
    who, form = await admin_form(resources, request)
    action, team, user = field(form, "action"), field(form, "team"), field(form, "user")
    if action not in _ACTIONS:
        raise bad_input("action must be create, delete, add or remove.")
    db = resources.db
    try:
        if action == "create":
            await accounts.create_team(db, team)
        elif action == "delete":
            await accounts.delete_team(db, team)
        elif action == "add":
            await accounts.add_members(db, team, [user])
        else:
            await accounts.remove_members(db, team, [user])
    except accounts.AccountError as exc:
        await audit_admin(resources, request, who, f"team:{action}:failure", team, outcome="failure", user=user or None)
        return await _teams(resources, request, who, str(exc), 400)
    await audit_admin(resources, request, who, f"team:{action}", team, user=user or None)
    return RedirectResponse("/teams", status_code=303)
