"""The embedded backend: answers the `/v2/` operations from the filesystem blob store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.auth.identity import Identity
from authgate.errors import ErrorCode, RegistryError
from authgate.registry.routes import Target
from authgate.settings import Settings

Handler = Callable[[Request, Target, Identity], Awaitable[Response]]


async def _base(request: Request, target: Target, identity: Identity) -> Response:
    return JSONResponse({})


async def _catalog(request: Request, target: Target, identity: Identity) -> Response:
    return JSONResponse({"repositories": []})


class EmbeddedBackend:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._handlers: dict[str, Handler] = {"base": _base, "catalog": _catalog}

    async def handle(self, request: Request, target: Target, identity: Identity) -> Response:
        handler = self._handlers.get(target.route.handler)
        if handler is None:
            raise RegistryError(ErrorCode.UNSUPPORTED, f"{target.route.handler} is not implemented yet")
        return await handler(request, target, identity)


@asynccontextmanager
async def open_embedded(settings: Settings) -> AsyncIterator[EmbeddedBackend]:
    yield EmbeddedBackend(settings)
