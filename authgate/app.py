"""`create_app(settings)`: the one place that wires routes, middleware and lifespan resources.

What the app holds (`Resources`: database, policy, audit log, auth, backend) is built in the
lifespan, and the routes are made there, once it exists: each handler is handed what it uses
rather than looking it up on the request.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial

from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route

from authgate.admin_api import admin_routes, require_admin
from authgate.audit.context import RequestIdMiddleware
from authgate.audit.service import audit_routes, open_audit
from authgate.backends import open_backend
from authgate.auth.endpoints import TokenServer, token_routes
from authgate.auth.services import announce_first_steps, build_auth
from authgate.auth.token_answers import TokenAnswers
from authgate.auth.token_fast import TokenFastPath
from authgate.console import console_routes
from authgate.console.repository_list import stop_refreshing
from authgate.identity import build_chain
from authgate.identity.device_http import device_routes
from authgate.db.policy_sets import latest_policy
from authgate.db.session import Database
from authgate.db.versions import POLICY
from authgate.errors import ErrorCode, RegistryError, render_error
from authgate.metrics import Metrics, MetricsMiddleware
from authgate.policy.store import PolicyStore
from authgate.readiness import Readiness
from authgate.registry.backend import registry_routes
from authgate.resources import Resources
from authgate.settings import Settings

log = logging.getLogger(__name__)


async def _healthz(readiness: Readiness, request: Request) -> Response:
    degraded = dict(readiness.degraded)
    return JSONResponse({"status": "ok", "degraded": degraded} if degraded else {"status": "ok"})


async def _readyz(readiness: Readiness, request: Request) -> Response:
    not_ready = readiness.not_ready
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


async def _database_unavailable(request: Request, exc: Exception) -> Response:
    """The database went away (server down, connection cut, file gone): a 503 the client retries, in
    the OCI format, never a 500; the log names the cause once per request for the operator."""
    log.error("database unavailable during %s %s: %s", request.method, request.url.path,
              type(getattr(exc, "orig", None) or exc).__name__)
    return render_error(RegistryError(ErrorCode.UNAVAILABLE, "the database is unavailable; try again shortly",
                                      headers={"Retry-After": "5"}))


async def _follow_pushed_policy(db: Database, policy: PolicyStore) -> None:
    """`policy_source: database`: the newest `authgate policy push`, whenever the `policy` counter moves."""
    pushed = await latest_policy(db)
    await policy.apply_pushed(None if pushed is None else pushed.files,
                              "nothing pushed" if pushed is None else pushed.describe())


def _admin_only_if_configured(endpoint: Callable[[Request], Awaitable[Response]], resources: Resources
                              ) -> Callable[[Request], Awaitable[Response]]:
    """`metrics_access: admin`: what authgate says about itself is for admin users only."""

    async def guarded(request: Request) -> Response:
        if resources.settings.metrics_access == "admin":
            await require_admin(request, resources)
        return await endpoint(request)

    return guarded


def _routes(resources: Resources, metrics: Metrics, answers: TokenAnswers) -> list[BaseRoute]:
    return [
        Route("/healthz", partial(_healthz, resources.readiness), methods=["GET"]),
        Route("/readyz", partial(_readyz, resources.readiness), methods=["GET"]),
        Route("/metrics", _admin_only_if_configured(metrics.endpoint, resources), methods=["GET"]),
        *token_routes(TokenServer(resources.settings, resources.db, resources.policy, resources.audit, resources.auth,
                                  answers)),
        *device_routes(resources),
        *registry_routes(resources),
        *admin_routes(resources),
        *audit_routes(resources.settings, resources.audit),
        # Last: the web console's paths never shadow the API's.
        *console_routes(resources),
    ]


def create_app(settings: Settings) -> Starlette:
    """The app for `settings`: everything it holds is built from them in the lifespan."""
    metrics = Metrics()
    answers = TokenAnswers()  # `/token` answers repeated from memory (auth/token_answers.py)
    metrics.count_repeated_answers(lambda: answers.hits)

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
            # No files: the built-in policy. From the database: the first poll loads the newest push.
            policy = PolicyStore(settings.policies if settings.policy_source == "files" else None, audit, readiness)
            auth, identity = await build_auth(settings, db, lambda authenticator: build_chain(
                settings, db, authenticator, metrics.registry, policy))
            resources = app.state.resources = Resources(
                settings=settings,
                db=db,
                policy=policy,
                audit=audit,
                auth=auth,
                identity=identity,
                readiness=readiness,
            )
            metrics.watch_policy(readiness)
            if settings.policy_source == "database":  # read by the first poll, before anything is served
                auth.shared.watch(POLICY, partial(_follow_pushed_policy, db, policy))
            await announce_first_steps(settings, db)
            await app.state.resources.auth.accounts.start()
            stack.push_async_callback(app.state.resources.auth.accounts.stop)
            await app.state.resources.auth.shared.start()  # accounts, limiter locks, signing keys: every replica's changes
            stack.push_async_callback(app.state.resources.auth.shared.stop)
            await policy.start()
            stack.push_async_callback(policy.stop)
            app.state.resources.backend = await stack.enter_async_context(open_backend(app.state.resources))
            stack.push_async_callback(stop_refreshing, app.state.resources)  # before the store closes
            answers.start(tokens=auth.tokens, watch=auth.shared, db=db, policy=policy, limiter=auth.limiter,
                          accounts=auth.accounts, audit=audit)
            stack.callback(answers.stop)
            resources.answers = answers
            app.router.routes[:] = _routes(resources, metrics, answers)
            stack.callback(app.router.routes.clear)  # nothing answers with what is being closed
            yield

    return Starlette(
        routes=[],  # made in the lifespan, with what they use
        # First: a `/token` request answered a moment ago is answered again before anything else runs.
        middleware=[Middleware(TokenFastPath, answers=answers, count=metrics.answered,
                               trusted_proxies=settings.trusted_proxies),
                    Middleware(RequestIdMiddleware, trusted_proxies=settings.trusted_proxies),
                    Middleware(MetricsMiddleware, metrics=metrics)],
        lifespan=lifespan,
        exception_handlers={RegistryError: _registry_error, ClientDisconnect: _client_gone,
                            OperationalError: _database_unavailable, InterfaceError: _database_unavailable},
    )
