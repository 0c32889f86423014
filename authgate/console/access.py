"""Who can do what: the policy engine's decision for a subject on a repository, with the rules
(file:line) that made it — the `authgate policy explain` engine in a page.

Admins may ask about any user, robot or team; other users about themselves only (what docker
would tell them by trying). The answer does not say whether the repository exists.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authgate.audit.context import client_address
from authgate.auth import accounts
from authgate.console import registry_view
from authgate.console.teams import policy_engine
from authgate.console.web import ConsoleError, bad_input, page, render, require_user
from authgate.db.session import Database
from authgate.resources import Resources
from authgate.subject import Subject

_KINDS = ("user", "robot", "team")
#: A team is explained as an unnamed member of it: its rules plus those for every user.
_TEAM_MEMBER = "-"


async def _subject(db: Database, kind: str, name: str) -> Subject:
    try:
        accounts.check_name(name, kind)
    except accounts.AccountError as exc:
        raise bad_input(str(exc)) from None
    if kind == "user":
        user = await accounts.find_user(db, name)
        if user is None:
            raise bad_input(f"There is no user named {name!r}.")
        return accounts.user_subject(user)
    if kind == "robot":
        if await accounts.find_robot(db, name) is None:
            raise bad_input(f"There is no robot named {name!r}.")
        return Subject("robot", name)
    return Subject("user", _TEAM_MEMBER, frozenset({name}))


@page
async def access_page(resources: Resources, request: Request) -> Response:
    who = await require_user(resources, request)
    params = request.query_params
    kind = params.get("kind", "user")
    name = params.get("name", who.subject.name).strip()
    repository = params.get("repository", "").strip()
    context: dict[str, object] = {"title": "Who can do what", "kind": kind, "name": name,
                                  "repository": repository, "kinds": _KINDS, "explanation": None}
    if not repository:
        return render(request, "access.html", context, who=who)
    if kind not in _KINDS:
        raise bad_input("Pick user, robot or team.")
    if not who.subject.admin and (kind != "user" or name != who.subject.name):
        raise ConsoleError(403, "Admins only", "You may ask about yourself; admins may ask about anyone.")
    if registry_view.parse_name(repository) is None:
        raise bad_input("That is not a repository name (lower-case path such as team/app).")
    own = kind == "user" and name == who.subject.name
    subject = who.subject if own else await _subject(resources.db, kind, name)
    address = client_address(request, resources.settings)
    context["explanation"] = policy_engine(resources).explain(subject, repository, address=address)
    return render(request, "access.html", context, who=who)
