"""The admin HTTP API for the audit log (`GET /admin/audit`) and its OpenAPI document.

Above both `audit/` and `auth/` (it asks auth who is calling, then reads the audit log), so
neither package imports the other's HTTP side.

Admin users only: the caller authenticates as on `/v2/` (a bearer token from `/token`, or Basic)
through `authgate.auth.identity.identify`; `Subject.admin` (the `users.admin` flag) decides.
Anonymous callers get the 401 challenge that says how to log in; others get 403.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authgate.audit.openapi import openapi_document
from authgate.audit.query import MAX_LIMIT, AuditFilter, list_events, parse_time
from authgate.auth.challenge import unauthorized
from authgate.auth.identity import AuthContext, identify
from authgate.errors import ErrorCode, RegistryError
from authgate.resources import Resources

_FILTERS = ("repository", "actor", "action", "since", "until")
_MAX_INT = 2**63 - 1


async def require_admin(request: Request, app: AuthContext) -> None:
    settings = app.settings
    who = await identify(request, app)
    if who.subject.is_anonymous:
        raise unauthorized(settings.realm, settings.service,
                           message="log in as an admin user (bearer token from /token, or Basic)")
    if not who.subject.admin:
        raise RegistryError(ErrorCode.DENIED, f"{who.subject} is not an admin; the audit log is for admins only")


def _bad(message: str) -> RegistryError:
    return RegistryError(ErrorCode.INVALID_REQUEST, message)


def _int_param(request: Request, name: str, default: int | None) -> int | None:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _bad(f"{name} must be an integer, got {raw[:40]!r}") from None
    if value < 1:
        raise _bad(f"{name} must be at least 1")
    if value > _MAX_INT:  # the database's integers are 64-bit: larger would be an OverflowError (a 500)
        raise _bad(f"{name} must be at most {_MAX_INT}")
    return value


def filter_from_query(request: Request) -> AuditFilter:
    params = request.query_params
    unknown = set(params) - {*_FILTERS, "limit", "before"}
    if unknown:
        raise _bad(f"unknown parameter(s): {', '.join(sorted(unknown))}")
    times: dict[str, Any] = {}
    for name in ("since", "until"):
        if params.get(name):
            try:
                times[name] = parse_time(params[name])
            except ValueError as exc:
                raise _bad(f"{name}: {str(exc)[:200]}") from None
    return AuditFilter(repository=params.get("repository") or None, actor=params.get("actor") or None,
                       action=params.get("action") or None, **times)


async def list_audit(resources: Resources, request: Request) -> Response:
    await require_admin(request, resources)
    flt = filter_from_query(request)
    limit = min(_int_param(request, "limit", 100) or 100, MAX_LIMIT)
    before = _int_param(request, "before", None)
    events = await list_events(resources.db, flt, limit, before)
    body: dict[str, Any] = {"events": events, "next": None}
    headers = {}
    if len(events) == limit:
        query = {k: v for k, v in request.query_params.items() if k != "before"}
        query["before"] = str(events[-1]["seq"])
        next_url = str(request.url.replace_query_params(**query))
        body["next"] = next_url
        headers["Link"] = f'<{next_url}>; rel="next"'
    return JSONResponse(body, headers=headers)


async def openapi(resources: Resources, request: Request) -> Response:
    if resources.settings.metrics_access == "admin":
        await require_admin(request, resources)
    return JSONResponse(openapi_document(resources.settings.url))


def admin_routes(resources: Resources) -> list[BaseRoute]:
    return [
        Route("/admin/audit", partial(list_audit, resources), methods=["GET"]),
        Route("/admin/openapi.json", partial(openapi, resources), methods=["GET"]),
    ]
