"""The web console: what authgate knows, in a browser, under the same policy as docker.

Server-rendered pages (Jinja2) with htmx for partial updates; every page works without
JavaScript. Sessions live in the database (`sessions.py`), forms carry a CSRF token, and every
repository view asks the policy engine first. `create_app` mounts `console_routes()` at `/`,
after `/v2/`, `/token` and the admin API, so none of those paths can be shadowed.
"""

from __future__ import annotations

from pathlib import Path

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.console import access, admin, audit_log, oidc_signin, repositories, robots, signin, teams
from authgate.console.web import SECURITY_HEADERS, page, signed_in


@page
async def _home(request: Request) -> Response:
    target = "/repositories" if await signed_in(request) is not None else "/signin"
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


def console_routes() -> list[BaseRoute]:
    static = StaticFiles(directory=Path(__file__).parent / "static")
    return [
        Route("/", _home, methods=["GET"]),
        Route("/signin", signin.signin_page, methods=["GET"]),
        Route("/signin", signin.signin_submit, methods=["POST"]),
        Route("/signin/oidc/{source}", oidc_signin.start, methods=["GET"]),
        Route("/signin/oidc/{source}/callback", oidc_signin.callback, methods=["GET"]),
        Route("/signout", signin.signout, methods=["POST"]),
        Route("/repositories", repositories.repository_list, methods=["GET"]),
        Route("/repositories/{rest:path}", repositories.repository_page, methods=["GET"]),
        Route("/access", access.access_page, methods=["GET"]),
        Route("/teams", teams.teams_page, methods=["GET"]),
        Route("/teams", teams.team_change, methods=["POST"]),
        Route("/robots", robots.robots_page, methods=["GET"]),
        Route("/robots", robots.robot_create, methods=["POST"]),
        Route("/robots/state", robots.robot_change, methods=["POST"]),
        Route("/robots/expiry", robots.robot_expiry, methods=["POST"]),
        Route("/audit", audit_log.audit_page, methods=["GET"]),
        Route("/audit/chain", audit_log.chain_status, methods=["GET"]),
        Route("/audit/export", audit_log.audit_export, methods=["GET"]),
        Route("/users", admin.users_page, methods=["GET"]),
        Route("/users", admin.user_change, methods=["POST"]),
        Route("/tokens", admin.tokens_page, methods=["GET"]),
        Route("/tokens", admin.token_revoke, methods=["POST"]),
        Mount("/static", app=_StaticHeaders(static), name="static"),
    ]
