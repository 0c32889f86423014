"""The web console: what authgate knows, in a browser, under the same policy as docker.

Server-rendered pages (Jinja2) with htmx for partial updates; every page works without
JavaScript. Sessions live in the database (`sessions.py`), forms carry a CSRF token, and every
repository view asks the policy engine first. `create_app` mounts `console_routes()` at `/`,
after `/v2/`, `/token` and the admin API, so none of those paths can be shadowed; each page is given
the app's `Resources` when the routes are made.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.console import access, admin, audit_log, oidc_signin, repositories, robots, signin, teams
from authgate.console.web import SECURITY_HEADERS, page, signed_in
from authgate.resources import Resources


@page
async def _home(resources: Resources, request: Request) -> Response:
    target = "/repositories" if await signed_in(resources, request) is not None else "/signin"
    return RedirectResponse(target, status_code=303)


class _StaticHeaders:
    """The console's security headers on its static files too (`nosniff` matters most there)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        await self.app(scope, receive, with_headers)


def console_routes(resources: Resources) -> list[BaseRoute]:
    static = StaticFiles(directory=Path(__file__).parent / "static")
    return [
        Route("/", partial(_home, resources), methods=["GET"]),
        Route("/signin", partial(signin.signin_page, resources), methods=["GET"]),
        Route("/signin", partial(signin.signin_submit, resources), methods=["POST"]),
        Route("/signin/oidc/{source}", partial(oidc_signin.start, resources), methods=["GET"]),
        Route("/signin/oidc/{source}/callback", partial(oidc_signin.callback, resources), methods=["GET"]),
        Route("/signout", partial(signin.signout, resources), methods=["POST"]),
        Route("/repositories", partial(repositories.repository_list, resources), methods=["GET"]),
        Route("/repositories/{rest:path}", partial(repositories.repository_page, resources), methods=["GET"]),
        Route("/access", partial(access.access_page, resources), methods=["GET"]),
        Route("/teams", partial(teams.teams_page, resources), methods=["GET"]),
        Route("/teams", partial(teams.team_change, resources), methods=["POST"]),
        Route("/robots", partial(robots.robots_page, resources), methods=["GET"]),
        Route("/robots", partial(robots.robot_create, resources), methods=["POST"]),
        Route("/robots/state", partial(robots.robot_change, resources), methods=["POST"]),
        Route("/robots/expiry", partial(robots.robot_expiry, resources), methods=["POST"]),
        Route("/audit", partial(audit_log.audit_page, resources), methods=["GET"]),
        Route("/audit/chain", partial(audit_log.chain_status, resources), methods=["GET"]),
        Route("/audit/export", partial(audit_log.audit_export, resources), methods=["GET"]),
        Route("/users", partial(admin.users_page, resources), methods=["GET"]),
        Route("/users", partial(admin.user_change, resources), methods=["POST"]),
        Route("/tokens", partial(admin.tokens_page, resources), methods=["GET"]),
        Route("/tokens", partial(admin.token_revoke, resources), methods=["POST"]),
        Mount("/static", app=_StaticHeaders(static), name="static"),
    ]
