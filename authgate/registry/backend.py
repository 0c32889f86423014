"""The dispatch seam: one route table and one guard, then the mode's `Backend` answers.

Which backend serves (embedded store, upstream gateway, none in token-server mode) is chosen by
`authgate.backends.open_backend` and held in `Resources.backend`.
"""

from __future__ import annotations

from functools import partial

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authgate.registry.guard import guard
from authgate.registry.routes import match
from authgate.registry.token_only import not_served_here
from authgate.resources import Resources

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")


async def _v2(resources: Resources, request: Request) -> Response:
    backend = resources.backend
    if backend is None:  # token-server mode; before the guard: a 401 would send docker to log in here
        raise not_served_here(resources.settings)
    target = match(request.method, request.path_params["rest"], request.query_params)
    identity = await guard(request, target, resources)
    try:
        response = await target.route.operation(backend)(request, target, identity)
    except ClientDisconnect:
        # Nobody is listening; the store already kept a resumable session or nothing.
        return Response(status_code=400)
    response.headers.setdefault(*API_VERSION_HEADER)
    return response


def registry_routes(resources: Resources) -> list[BaseRoute]:
    """The `/v2/` routes for `create_app`; every method goes through `match` (405 there, not here)."""
    methods = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"]
    return [Route("/v2/{rest:path}", partial(_v2, resources), methods=methods)]
