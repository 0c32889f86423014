"""The gateway backend: answers the `/v2/` operations the guard allowed by streaming them to the
upstream registry (`settings.upstream`).

Same route table, guard and audit events as the embedded store; what differs is only where bytes
go. Bodies stream both ways in chunks (memory flat whatever the size); uploads pass the checksum
pipeline in `authgate.gateway.upload_proxy`; manifests (≤ `max_manifest_size`) are read whole so
their digest is known for the audit log; the catalog is filtered by the caller's pull permission.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.audit.events import AuditEvent
from authgate.auth.identity import Identity
from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.catalog import filtered_catalog
from authgate.gateway.client import Upstream
from authgate.gateway.credentials import upstream_auth
from authgate.gateway.responses import empty, relay
from authgate.gateway.upload_proxy import UploadProxy, cancel_upstream
from authgate.gateway.uploads import UploadSessions
from authgate.reference import Digest
from authgate.registry.guard import client_address, record_audit
from authgate.registry.routes import Target
from authgate.resources import Resources
from authgate.scope import Scope, satisfies

log = logging.getLogger(__name__)

Handler = Callable[[Request, Target, Identity], Awaitable[Response]]
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


class UpstreamBackend:
    def __init__(self, resources: Resources, upstream: Upstream) -> None:
        settings = resources.settings
        self.resources = resources
        self.upstream = upstream
        self.sessions = UploadSessions(settings.upload_max_age)
        self.uploads = UploadProxy(upstream, self.sessions, settings.max_blob_size)
        self.max_manifest_size = settings.max_manifest_size
        self._handlers: dict[str, Handler] = {
            "base": self._base,
            "catalog": self._catalog,
            "tags_list": self._passthrough,
            "referrers": self._passthrough,
            "manifest_get": self._passthrough,
            "manifest_put": self._manifest_put,
            "manifest_delete": self._delete,
            "blob_get": self._blob_get,
            "blob_delete": self._delete,
            "upload_start": self._upload_start,
            "upload_status": self._upload_status,
            "upload_patch": self._upload_patch,
            "upload_put": self._upload_put,
            "upload_cancel": self._upload_cancel,
        }

    async def handle(self, request: Request, target: Target, identity: Identity) -> Response:
        handler = self._handlers.get(target.route.handler)
        if handler is None:
            raise RegistryError(ErrorCode.UNSUPPORTED, f"{target.route.handler} is not supported in gateway mode")
        return await handler(request, target, identity)

    # -- reads ---------------------------------------------------------------------------------

    async def _base(self, request: Request, target: Target, identity: Identity) -> Response:
        return JSONResponse({})

    async def _passthrough(self, request: Request, target: Target, identity: Identity) -> Response:
        """Manifests, tag lists, referrers: the same request upstream, the answer streamed back."""
        headers = [(name, value) for name, value in request.headers.items()
                   if name in ("accept", "if-none-match", "user-agent")]
        response = await self.upstream.send(request.method, _path(request), scopes=target.needed_scopes(),
                                            headers=headers)
        return await relay(self.upstream, response)

    async def _blob_get(self, request: Request, target: Target, identity: Identity) -> Response:
        """Blobs, with `Range`; an upstream redirect (object storage) is followed or passed on."""
        headers = {"Range": request.headers["range"]} if "range" in request.headers else {}
        scopes = target.needed_scopes()
        response = await self.upstream.send(request.method, _path(request), scopes=scopes, headers=headers)
        for _ in range(_MAX_REDIRECTS):
            location = response.headers.get("location")
            if response.status_code not in _REDIRECTS or not location:
                break
            if self.upstream.redirects == "pass":
                await response.aclose()
                return Response(status_code=response.status_code,
                                headers={"Location": self.upstream.public_url(str(response.request.url.join(location)))})
            url = str(response.request.url.join(location))
            await response.aclose()
            response = await self.upstream.send(request.method, "", url=url, scopes=scopes, headers=headers)
        return await relay(self.upstream, response)

    async def _catalog(self, request: Request, target: Target, identity: Identity) -> Response:
        address = client_address(request)
        policy = self.resources.policy

        def visible(name: str) -> bool:
            return satisfies(policy.allowed_actions(identity.subject, name, address), "pull")

        return await filtered_catalog(self.upstream, request, visible)

    # -- writes --------------------------------------------------------------------------------

    async def _manifest_put(self, request: Request, target: Target, identity: Identity) -> Response:
        body = await _read_manifest(request, self.max_manifest_size)
        digest = Digest.of(body, target.reference.algorithm if isinstance(target.reference, Digest) else "sha256")
        if isinstance(target.reference, Digest) and digest != target.reference:
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"manifest digest is {digest}, not {target.reference}")
        headers = {"Content-Type": request.headers.get("content-type", "application/octet-stream")}
        response = await self.upstream.send("PUT", _path(request), scopes=target.needed_scopes(),
                                            headers=headers, content=body)
        if response.status_code != 201:
            return await relay(self.upstream, response)
        await self._audit(request, identity, target, "manifest:push", digest=str(digest), size=len(body))
        return await empty(self.upstream, response)

    async def _delete(self, request: Request, target: Target, identity: Identity) -> Response:
        response = await self.upstream.send("DELETE", _path(request), scopes=target.needed_scopes())
        if response.status_code == 202:
            kind = "manifest" if target.route.handler == "manifest_delete" else "blob"
            digest = target.digest or (target.reference if isinstance(target.reference, Digest) else None)
            await self._audit(request, identity, target, f"{kind}:delete", digest=str(digest) if digest else None)
        return await relay(self.upstream, response)

    async def _upload_start(self, request: Request, target: Target, identity: Identity) -> Response:
        result = await self.uploads.start(request, str(target.repository), target.needed_scopes())
        if result.mounted and target.mount_digest:
            await self._audit(request, identity, target, "blob:mount", digest=str(target.mount_digest),
                              details={"from": str(target.mount_from)})
        if result.committed:
            digest, size = result.committed
            await self._audit(request, identity, target, "blob:push", digest=digest, size=size)
        return result.response

    async def _upload_patch(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        return await self.uploads.patch(request, str(target.repository), target.upload_id, target.needed_scopes())

    async def _upload_put(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        try:
            result = await self.uploads.put(request, str(target.repository), target.upload_id,
                                            target.needed_scopes())
        except RegistryError as exc:
            if exc.code is ErrorCode.DIGEST_INVALID:
                await self._audit(request, identity, target, "blob:push", outcome="failure", reason=exc.message)
            raise
        if result.committed:
            digest, size = result.committed
            await self._audit(request, identity, target, "blob:push", digest=digest, size=size)
        return result.response

    async def _upload_status(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        return await self.uploads.status(request, str(target.repository), target.upload_id, target.needed_scopes())

    async def _upload_cancel(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        return await self.uploads.cancel(request, str(target.repository), target.upload_id, target.needed_scopes())

    async def _audit(self, request: Request, identity: Identity, target: Target, action: str, **fields: object
                     ) -> None:
        tag = target.tag
        event = AuditEvent(
            action=action, actor=identity.subject, repository=str(target.repository) if target.repository else None,
            reference=str(tag) if tag else None, address=client_address(request),
            user_agent=request.headers.get("user-agent"), **fields,  # type: ignore[arg-type]
        )
        await record_audit(self.resources, event)

    # -- lifetime ------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Cancel upstream sessions of uploads abandoned longer than `upload_max_age`."""
        for session in self.sessions.expired():
            scopes = [Scope("repository", session.repository, frozenset({"delete"}))]
            await cancel_upstream(self.upstream, session.location, scopes)


def _path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def _read_manifest(request: Request, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RegistryError(ErrorCode.MANIFEST_INVALID, f"manifests are limited to {limit} bytes", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def _maintain(backend: UpstreamBackend) -> None:
    while True:
        try:
            await backend.upstream.check()
            await backend.sweep()
        except Exception:  # a maintenance loop that dies silently would leave /readyz stale
            log.exception("upstream maintenance failed unexpectedly")
        await asyncio.sleep(backend.upstream.health_interval)


@asynccontextmanager
async def open_upstream(
    resources: Resources, transport: httpx.AsyncBaseTransport | None = None
) -> AsyncIterator[UpstreamBackend]:
    """The gateway backend for the app's lifetime: pooled client, health checks, upload sweeping.

    `transport` replaces the network (httpx MockTransport) in fault tests.
    """
    settings = resources.settings
    tokens = resources.auth.tokens if resources.auth else None
    upstream = Upstream(settings, upstream_auth(settings, tokens), resources.not_ready, transport)
    backend = UpstreamBackend(resources, upstream)
    task = asyncio.create_task(_maintain(backend), name="upstream-health")
    try:
        yield backend
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await upstream.aclose()
