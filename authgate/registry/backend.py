"""The dispatch seam: one route table and one guard, then a `Backend` answers.

Embedded mode answers from the filesystem store; gateway mode (`settings.upstream`) plugs a
proxy backend in `open_backend` and keeps the same table, guard, audit and catalog filter.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from authgate.auth.identity import Identity
from authgate.registry.guard import guard
from authgate.registry.routes import Target, match
from authgate.resources import Resources, resources_of

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
BACKEND_KEY = "registry_backend"


class Backend(Protocol):
    async def handle(self, request: Request, target: Target, identity: Identity) -> Response:
        """Answer a request the guard already allowed; `target.route.handler` names the operation."""
        ...


async def _v2(request: Request) -> Response:
    settings = resources_of(request).settings
    if settings.token_server_only:  # before the guard: a 401 would send docker to log in here for nothing
        from authgate.registry.token_only import not_served_here

        raise not_served_here(settings)
    target = match(request.method, request.path_params["rest"], request.query_params)
    identity = await guard(request, target)
    backend: Backend = resources_of(request).extras[BACKEND_KEY]
    try:
        response = await backend.handle(request, target, identity)
    except ClientDisconnect:
        # Nobody is listening; the store already kept a resumable session or nothing.
        return Response(status_code=400)
    response.headers.setdefault(*API_VERSION_HEADER)
    return response


def registry_routes() -> list[BaseRoute]:
    """The `/v2/` routes for `create_app`; every method goes through `match` (405 there, not here)."""
    return [Route("/v2/{rest:path}", _v2, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])]


@asynccontextmanager
async def open_backend(resources: Resources) -> AsyncIterator[Backend]:
    """The backend for the configured mode, held open for the app's lifetime."""
    settings = resources.settings
    if settings.token_server_only:
        from authgate.registry.token_only import TokenOnlyBackend

        yield TokenOnlyBackend(settings)
        return
    if settings.gateway:
        # Gateway mode: the same table, guard and audit; bytes go to the upstream registry.
        from authgate.storage.upstream import open_upstream

        async with open_upstream(resources) as gateway:
            yield gateway
        return
    from authgate.registry.embedded import open_embedded

    async with open_embedded(settings, resources.not_ready) as backend:
        yield backend
