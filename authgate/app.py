"""`create_app(settings)`: the one place that wires routes, middleware and lifespan resources."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authgate.admin_api import admin_routes, require_admin
from authgate.audit.context import RequestIdMiddleware
from authgate.audit.service import audit_routes, open_audit
from authgate.backends import open_backend
from authgate.auth.endpoints import token_routes
from authgate.auth.services import announce_first_steps, build_auth
from authgate.console import console_routes
from authgate.console.repository_list import stop_refreshing
from authgate.identity import build_chain
from authgate.identity.device_http import device_routes
from authgate.db.session import Database
from authgate.errors import RegistryError, render_error
from authgate.metrics import Metrics, MetricsMiddleware
from authgate.policy.store import PolicyStore
from authgate.readiness import Readiness
from authgate.registry.backend import registry_routes
from authgate.resources import Resources, resources_of
from authgate.settings import Settings

log = logging.getLogger(__name__)


async def _healthz(request: Request) -> Response:
    degraded = dict(resources_of(request).readiness.degraded)
    return JSONResponse({"status": "ok", "degraded": degraded} if degraded else {"status": "ok"})


async def _readyz(request: Request) -> Response:
    not_ready = resources_of(request).readiness.not_ready
    if not_ready:
        return JSONResponse({"status": "not ready", "reasons": dict(not_ready)}, status_code=503)
    return JSONResponse({"status": "ready"})


async def _registry_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RegistryError)
    return render_error(exc, head=request.method == "HEAD")


async def _client_gone(request: Request, exc: Exception) -> Response:
    """The client closed the connection mid-body (or went silent: authgate.http_protocol): nobody is
    left to answer, and it is no server error worth a traceback."""
    log.debug("client went away before sending the whole body of %s %s", request.method, request.url.path)
    return Response(status_code=400)


def _admin_only_if_configured(endpoint: Callable[[Request], Awaitable[Response]]
                              ) -> Callable[[Request], Awaitable[Response]]:
    """`metrics_access: admin`: what authgate says about itself is for admin users only."""

    async def guarded(request: Request) -> Response:
        if resources_of(request).settings.metrics_access == "admin":
            await require_admin(request)
        return await endpoint(request)

    return guarded


def _routes(metrics: Metrics) -> list[BaseRoute]:
    return [
        Route("/healthz", _healthz, methods=["GET"]),
        Route("/readyz", _readyz, methods=["GET"]),
        Route("/metrics", _admin_only_if_configured(metrics.endpoint), methods=["GET"]),
        *token_routes(),
        *device_routes(),
        *registry_routes(),
        *admin_routes(),
        *audit_routes(),
        # Last: the web console's paths never shadow the API's.
        *console_routes(),
    ]


def create_app(settings: Settings) -> Starlette:
    """The app for `settings`: everything it holds is built from them in the lifespan."""
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Owner only when created here: blobs of private images, password hashes, signing keys.
        settings.data.mkdir(mode=0o700, parents=True, exist_ok=True)
        async with AsyncExitStack() as stack:
            db = Database(settings.database)
            stack.push_async_callback(db.close)
            await db.upgrade()
            audit = await open_audit(settings, db, stack)
            readiness = Readiness()
            policy = PolicyStore(settings.policies, audit, readiness)  # no files: the built-in policy
            auth, identity = build_auth(settings, db, lambda authenticator: build_chain(
                settings, db, authenticator, metrics.registry, policy))
            app.state.resources = Resources(
                settings=settings,
                db=db,
                policy=policy,
                audit=audit,
                auth=auth,
                identity=identity,
                readiness=readiness,
            )
            metrics.watch_policy(readiness)
            await announce_first_steps(settings, db)
            await app.state.resources.auth.accounts.start()
            stack.push_async_callback(app.state.resources.auth.accounts.stop)
            await policy.start()
            stack.push_async_callback(policy.stop)
            app.state.resources.backend = await stack.enter_async_context(open_backend(app.state.resources))
            stack.push_async_callback(stop_refreshing, app.state.resources)  # before the store closes
            yield

    return Starlette(
        routes=_routes(metrics),
        middleware=[Middleware(RequestIdMiddleware, trusted_proxies=settings.trusted_proxies),
                    Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
        exception_handlers={RegistryError: _registry_error, ClientDisconnect: _client_gone},
    )
