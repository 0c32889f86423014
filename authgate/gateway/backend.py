"""The gateway backend (`routes.Backend`): answers the `/v2/` operations the guard allowed by
streaming them to the upstream registry (`settings.upstream`).

Same route table, guard and audit events as the embedded store; what differs is only where bytes
go. Bodies stream both ways in chunks (memory flat whatever the size); uploads pass the checksum
pipeline in `authgate.gateway.upload_proxy`; manifests (≤ `max_manifest_size`) are read whole so
their digest is known for the audit log; the catalog is filtered by the caller's pull permission.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Coroutine
from functools import wraps
from typing import Any
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.catalog import filtered_catalog, tag_list
from authgate.gateway.client import Upstream
from authgate.gateway.content import GatewayContent
from authgate.gateway.credentials import upstream_auth
from authgate.gateway.referrer_index import ReferrerIndex
from authgate.gateway.fairness import BodyIdle, PerUserSlots, within
from authgate.gateway.responses import ProxiedBody, empty, relay
from authgate.gateway.tags import current_digest, immutable_tags_on
from authgate.gateway.upload_pipeline import cancel_upstream
from authgate.gateway.upload_proxy import UploadProxy
from authgate.gateway.upload_records import UploadSessions
from authgate.policy import filter_pullable, immutable_tag_rule
from authgate.reference import Digest, Tag
from authgate.registry.content import RegistryContent, referrers_response
from authgate.registry.context import Auditor
from authgate.registry.manifest_format import parse_manifest
from authgate.registry.numbers import check_byte_range, decimal
from authgate.registry.routes import Target
from authgate.registry.rules import IMMUTABLE_TAG, denied_immutable, failure_reason, read_manifest
from authgate.audit.events import AuditSink
from authgate.db.session import Database
from authgate.auth.tokens import TokenService
from authgate.db.session import Database
from authgate.policy import Authorizer
from authgate.readiness import Readiness
from authgate.settings import Settings
from authgate.scope import Scope
from authgate.subject import Identity
from authgate.tasks import cancel_and_wait

log = logging.getLogger(__name__)

Method = Callable[["GatewayBackend", Request, Target, Identity], Coroutine[Any, Any, Response]]
_MAX_REDIRECTS = 5
_REDIRECTS = (301, 302, 303, 307, 308)


def _in_slot(method: Method) -> Method:
    """Hold the caller's upstream slot until the response is over (a streamed body too)."""

    @wraps(method)
    async def held(self: GatewayBackend, request: Request, target: Target, identity: Identity) -> Response:
        release = await self.slots.acquire(_user_key(self.audit.address(request), identity))
        try:
            response = await method(self, request, target, identity)
        except BaseException:
            release()
            raise
        if isinstance(response, ProxiedBody):
            response.on_close.append(release)
        else:
            release()
        return response

    return held


class GatewayBackend:
    def __init__(self, settings: Settings, upstream: Upstream, policy: Authorizer, audit: Auditor,
                 db: Database) -> None:
        self.upstream = upstream
        #: Referrers of manifests pushed through authgate (the upstream may have no referrers API).
        self.referrer_index = ReferrerIndex(db)
        #: What the console reads.
        self.content: RegistryContent = GatewayContent(upstream, self.referrer_index, settings.max_manifest_size)
        self.policy = policy
        self.audit = audit
        self.sessions = UploadSessions(db, settings.upload_max_age, origin=_origin(settings.upstream))
        self.uploads = UploadProxy(upstream, self.sessions, settings.max_blob_size, settings.upstream_timeout)
        self.slots = PerUserSlots(settings.upstream_max_per_user, settings.upstream_connect_timeout)
        self.idle = settings.upstream_timeout
        self.max_manifest_size = settings.max_manifest_size
        self.audit_pulls = settings.audit_pulls

    # -- reads ---------------------------------------------------------------------------------

    async def base(self, request: Request, target: Target, identity: Identity) -> Response:
        return JSONResponse({})

    @_in_slot
    async def manifest_get(self, request: Request, target: Target, identity: Identity) -> Response:
        response = await self._passthrough(request, target)
        if request.method == "GET" and response.status_code == 200 and self.audit_pulls in ("manifests", "all"):
            await self.audit(request, identity, target, "manifest:pull", reference=str(target.reference),
                        digest=response.headers.get("docker-content-digest"), size=_length(response))
        return await relay(self.upstream, response)

    async def referrers(self, request: Request, target: Target, identity: Identity) -> Response:
        """From authgate's index, whatever the upstream supports (`referrer_index`)."""
        assert target.repository and target.digest
        descriptors = await self.referrer_index.referrers(str(target.repository), target.digest)
        return referrers_response(descriptors, request.query_params.get("artifactType"))

    async def _passthrough(self, request: Request, target: Target) -> httpx.Response:
        """Manifests: the same request upstream, its answer to stream back."""
        headers = [(name, value) for name, value in request.headers.items()
                   if name in ("accept", "if-none-match", "user-agent")]
        response = await self.upstream.send(request.method, _path(request), scopes=target.needed_scopes(),
                                            headers=headers)
        return response

    @_in_slot
    async def tags_list(self, request: Request, target: Target, identity: Identity) -> Response:
        return await tag_list(self.upstream, request, str(target.repository), target.needed_scopes())

    @_in_slot
    async def blob_get(self, request: Request, target: Target, identity: Identity) -> Response:
        """Blobs, with `Range`; an upstream redirect (object storage) is followed or passed on."""
        headers = {}
        if "range" in request.headers:
            check_byte_range(request.headers["range"])
            headers["Range"] = request.headers["range"]
        scopes = target.needed_scopes()
        response = await self.upstream.send(request.method, _path(request), scopes=scopes, headers=headers)
        if request.method == "GET" and response.status_code in (200, 206, *_REDIRECTS) and self.audit_pulls == "all":
            await self.audit(request, identity, target, "blob:pull", digest=str(target.digest), size=_length(response))
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
        # Named as asked: distribution answers a sha512 blob with its canonical sha256.
        named = {"docker-content-digest": str(target.digest)} if response.status_code in (200, 206) else None
        return await relay(self.upstream, response, headers=named)

    @_in_slot
    async def catalog(self, request: Request, target: Target, identity: Identity) -> Response:
        address = self.audit.address(request)
        policy = self.policy

        def visible(names: list[str]) -> list[str]:
            return filter_pullable(policy, identity.subject, names, address)

        return await filtered_catalog(self.upstream, request, visible)

    # -- writes --------------------------------------------------------------------------------

    @_in_slot
    async def manifest_put(self, request: Request, target: Target, identity: Identity) -> Response:
        """Read whole (bounded) so authgate knows the digest it audits; the upstream checks references."""
        reference = target.reference
        tag = target.tag
        previous = None
        try:
            try:
                body = await read_manifest(request, self.max_manifest_size, within(request.stream(), self.idle))
            except BodyIdle:
                raise RegistryError(ErrorCode.MANIFEST_INVALID, f"the client sent nothing for {self.idle:g} s",
                                    status=408) from None
            digest = Digest.of(body, reference.algorithm if isinstance(reference, Digest) else "sha256")
            if isinstance(reference, Digest) and digest != reference:
                raise RegistryError(ErrorCode.DIGEST_INVALID, f"manifest digest is {digest}, not {reference}")
            if tag is not None:
                previous = await current_digest(self.upstream, str(target.repository), str(tag),
                                                target.needed_scopes())
                rule = immutable_tag_rule(self.policy, str(target.repository), str(tag))
                if rule and previous not in (None, str(digest)):
                    raise denied_immutable(str(tag), rule)
        except RegistryError as error:
            await self.audit(request, identity, target, "manifest:push:failure", reference=str(reference),
                             reason=failure_reason(error))
            raise
        headers = {"Content-Type": request.headers.get("content-type", "application/octet-stream")}
        response = await self.upstream.send("PUT", _path(request), scopes=target.needed_scopes(),
                                            headers=headers, content=body)
        if response.status_code != 201:
            await self.audit(request, identity, target, "manifest:push:failure", reference=str(reference),
                        reason=f"upstream answered {response.status_code}")
            return await relay(self.upstream, response)
        fields = {"reference": str(tag) if tag else None, "digest": str(digest), "size": len(body)}
        await self.audit(request, identity, target, "manifest:push", **fields)
        if previous not in (None, str(digest)):
            await self.audit(request, identity, target, "tag:move", **fields, details={"from": previous})
        subject = await self._index(str(target.repository), digest, body, headers["Content-Type"])
        answer = await empty(self.upstream, response)
        if subject is not None:
            answer.headers["OCI-Subject"] = str(subject)
        return answer

    async def _index(self, repository: str, digest: Digest, body: bytes, content_type: str) -> Digest | None:
        """Index a stored manifest that has a subject; its subject, for the `OCI-Subject` header.
        The upstream already accepted the manifest; one authgate cannot parse is not a referrer."""
        try:
            parsed = parse_manifest(body, content_type)
        except RegistryError:
            return None
        await self.referrer_index.record(repository, digest, parsed.media_type, len(body), parsed)
        return parsed.subject.digest if parsed.subject else None

    @_in_slot
    async def manifest_delete(self, request: Request, target: Target, identity: Identity) -> Response:
        await self._check_deletable(request, target, identity)
        response = await self.upstream.send("DELETE", _path(request), scopes=target.needed_scopes())
        if response.status_code == 202:
            await self.audit(request, identity, target, "manifest:delete", reference=str(target.reference),
                        digest=response.headers.get("docker-content-digest")
                        or (str(target.reference) if isinstance(target.reference, Digest) else None))
            if isinstance(target.reference, Digest):  # a tag's delete leaves its manifest (and the row)
                await self.referrer_index.forget(str(target.repository), str(target.reference))
        return await relay(self.upstream, response)

    @_in_slot
    async def blob_delete(self, request: Request, target: Target, identity: Identity) -> Response:
        response = await self.upstream.send("DELETE", _path(request), scopes=target.needed_scopes())
        if response.status_code == 202:
            await self.audit(request, identity, target, "blob:delete", digest=str(target.digest))
        return await relay(self.upstream, response)

    async def _check_deletable(self, request: Request, target: Target, identity: Identity) -> None:
        """A manifest an immutable tag points at (or that tag itself) may not be deleted."""
        repository, reference = str(target.repository), target.reference
        if isinstance(reference, Tag):
            rule = immutable_tag_rule(self.policy, repository, str(reference))
            found = (str(reference), rule) if rule else None
        else:
            found = await immutable_tags_on(self.upstream, self.policy, repository, str(reference))
        if found:
            await self.audit(request, identity, target, "manifest:delete:failure", reference=str(reference),
                        reason=IMMUTABLE_TAG)
            raise denied_immutable(*found)

    @_in_slot
    async def upload_start(self, request: Request, target: Target, identity: Identity) -> Response:
        try:
            mount = ((str(target.mount_digest), str(target.mount_from))
                     if target.mount_digest and target.mount_from else None)
            result = await self.uploads.start(request, str(target.repository), str(identity.subject),
                                              target.needed_scopes(), mount)
        except RegistryError as error:
            await self._refused(request, identity, target, request.query_params.get("digest"), error)
            raise
        if result.mounted and target.mount_digest:
            await self.audit(request, identity, target, "blob:mount", digest=str(target.mount_digest),
                        details={"from": str(target.mount_from)})
        if result.committed:
            digest, size = result.committed
            await self.audit(request, identity, target, "blob:push", digest=digest, size=size)
        return result.response

    @_in_slot
    async def upload_patch(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        return await self.uploads.patch(request, str(target.repository), target.upload_id, str(identity.subject),
                                        target.needed_scopes())

    @_in_slot
    async def upload_put(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        try:
            result = await self.uploads.put(request, str(target.repository), target.upload_id,
                                            str(identity.subject), target.needed_scopes())
        except RegistryError as error:
            await self._refused(request, identity, target, request.query_params.get("digest"), error)
            raise
        if result.committed:
            digest, size = result.committed
            await self.audit(request, identity, target, "blob:push", digest=digest, size=size)
        return result.response

    async def _refused(self, request: Request, identity: Identity, target: Target, digest: str | None,
                       error: RegistryError) -> None:
        """A push authgate refused (digest mismatch, too large): audited as the embedded store does."""
        if error.code in (ErrorCode.DIGEST_INVALID, ErrorCode.TOO_LARGE, ErrorCode.BLOB_UPLOAD_INVALID):
            await self.audit(request, identity, target, "blob:push:failure", digest=digest,
                             reason=failure_reason(error))

    @_in_slot
    async def upload_status(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        return await self.uploads.status(request, str(target.repository), target.upload_id, str(identity.subject),
                                         target.needed_scopes())

    @_in_slot
    async def upload_cancel(self, request: Request, target: Target, identity: Identity) -> Response:
        assert target.upload_id is not None
        return await self.uploads.cancel(request, str(target.repository), target.upload_id, str(identity.subject),
                                         target.needed_scopes())

    # -- lifetime ------------------------------------------------------------------------------

    async def sweep(self) -> None:
        """Cancel upstream sessions of uploads untouched for `upload_max_age` (every replica
        sweeps; each session is cancelled by one)."""
        for session in await self.sessions.expired():
            scopes = [Scope("repository", session.repository, frozenset({"delete"}))]
            await cancel_upstream(self.upstream, session.location, scopes)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def _length(response: httpx.Response) -> int | None:
    return decimal(response.headers.get("content-length", "").strip())


def _user_key(address: str | None, identity: Identity) -> str:
    """Whose slots a request uses: the subject, or the address for anonymous callers."""
    if identity.subject.is_anonymous:
        return f"anonymous@{address}"
    return str(identity.subject)


def _path(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


async def _maintain(backend: GatewayBackend) -> None:
    while True:
        try:
            await backend.upstream.check()
            await backend.sweep()
        except Exception:  # a maintenance loop that dies silently would leave /readyz stale
            log.exception("upstream maintenance failed unexpectedly")
        await asyncio.sleep(backend.upstream.health_interval)


@asynccontextmanager
async def open_upstream(
    settings: Settings, tokens: TokenService, readiness: Readiness, policy: Authorizer, audit: AuditSink,
    db: Database, transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[GatewayBackend]:
    """The gateway backend for the app's lifetime: pooled client, health checks, upload sweeping.

    `readiness` hears whether the upstream answers; `db` holds the upload sessions; `transport` replaces the network (httpx
    MockTransport) in fault tests.
    """
    upstream = Upstream(settings, upstream_auth(settings, tokens), readiness, transport)
    auth = settings.upstream_auth_mode + (f", audience {settings.upstream_audience}"
                                          if settings.upstream_auth_mode == "token" else "")
    log.info("gateway mode: /v2/ goes to the upstream registry %s (upstream_auth %s)", upstream.describe(), auth,
             extra={"upstream": upstream.describe()})
    backend = GatewayBackend(settings, upstream, policy, Auditor(audit, settings), db)
    task = asyncio.create_task(_maintain(backend), name="upstream-health")
    try:
        yield backend
    finally:
        await cancel_and_wait(task)
        await upstream.aclose()
