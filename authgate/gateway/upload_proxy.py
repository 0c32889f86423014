"""Blob uploads through the gateway: every byte hashed on its way to the upstream, and the final
`PUT ?digest=` forwarded only when authgate's own digest matches (else the upstream session is
cancelled and the client gets 400 `DIGEST_INVALID`).

A body that would commit on arrival upstream (monolithic `POST ?digest=`, a `PUT ?digest=` carrying
the last chunk) is sent as a `PATCH` first, so the upstream holds it in an unfinished session until
the digest is checked: nothing reaches the upstream's blob namespace unverified.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass

import httpx
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.client import Upstream
from authgate.gateway.fairness import BodyIdle, within
from authgate.gateway.responses import empty, relay
from authgate.gateway.uploads import BodyTooLarge, Digesting, UploadSession, UploadSessions, digest_of
from authgate.reference import Digest
from authgate.registry.numbers import content_range, decimal, declared_length, out_of_order
from authgate.scope import Scope

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UploadResult:
    response: Response
    #: `(digest, size)` of a blob the upstream committed through this request (for the audit log).
    committed: tuple[str, int] | None = None
    mounted: bool = False


class UploadProxy:
    def __init__(self, upstream: Upstream, sessions: UploadSessions, max_blob_size: int, idle: float = 60.0) -> None:
        self.upstream = upstream
        self.sessions = sessions
        self.max_blob_size = max_blob_size
        #: Seconds a client may stay silent mid-body before the upload is cancelled.
        self.idle = idle

    async def start(self, request: Request, repository: str, scopes: Sequence[Scope],
                    mount: tuple[str, str] | None = None) -> UploadResult:
        """`POST …/blobs/uploads/`: open an upstream session (or mount); a monolithic body is
        streamed, hashed and verified before the commit.

        `mount` is the (digest, source repository) the guard parsed and checked; the client's raw
        `mount`/`from` never reach the upstream, so an unparsed value cannot mount what was not checked."""
        query = request.query_params
        claimed = _claimed_digest(query.get("digest")) if "digest" in query else None
        path = f"/v2/{repository}/blobs/uploads/"
        params = {"mount": mount[0], "from": mount[1]} if mount else None
        response = await self.upstream.send("POST", path, scopes=scopes, params=params,
                                            headers={"Content-Length": "0"})
        if response.status_code == 201 and mount:
            return UploadResult(await empty(self.upstream, response), mounted=True)
        if response.status_code != 202:
            return UploadResult(await relay(self.upstream, response))
        try:
            upload_id = _upload_id(response)
            location = self._upstream_location(response)
            session = self.sessions.open(upload_id, repository, location,
                                         claimed.algorithm if claimed else "sha256")
        except RegistryError:
            await response.aclose()
            raise
        if claimed is None:
            return UploadResult(await empty(self.upstream, response))
        # Monolithic upload: the body goes in as a PATCH, then the checked commit.
        await response.aclose()
        with self.sessions.writing(session):
            return await self._finish(request, session, scopes, with_body=True)

    async def patch(self, request: Request, repository: str, upload_id: str, scopes: Sequence[Scope]) -> Response:
        session = self.sessions.get(upload_id, repository)
        with self.sessions.writing(session):
            response = await self._append(request, session, scopes, put=False)
            return await (empty(self.upstream, response) if response.status_code == 202
                          else relay(self.upstream, response))

    async def put(self, request: Request, repository: str, upload_id: str, scopes: Sequence[Scope]) -> UploadResult:
        """`PUT …/uploads/<id>?digest=`: append any final chunk, then commit only a matching digest."""
        session = self.sessions.get(upload_id, repository)
        with self.sessions.writing(session):
            return await self._finish(request, session, scopes, with_body=_has_body(request))

    async def _finish(self, request: Request, session: UploadSession, scopes: Sequence[Scope],
                      with_body: bool) -> UploadResult:
        """Append the final body, then commit only a matching digest; any refusal abandons the
        upstream session, so nothing unverified can be committed later."""
        try:
            claimed = _claimed_digest(request.query_params.get("digest"))
        except RegistryError:
            await self._abandon(session, scopes)
            raise
        rehash = not session.hash_with(claimed.algorithm)
        if with_body:
            response = await self._append(request, session, scopes, put=True)
            if response.status_code != 202:
                await self._abandon(session, scopes)
                return UploadResult(await relay(self.upstream, response))
            await response.aclose()
        if rehash:
            return await self._commit_rehashed(session, claimed, scopes)
        return await self._commit(session, claimed, scopes)

    async def _commit_rehashed(self, session: UploadSession, claimed: Digest, scopes: Sequence[Scope]
                               ) -> UploadResult:
        """A chunked upload whose final PUT names another algorithm than its chunks were hashed
        with (sha512 after sha256 chunks). The bytes are committed under the digest authgate
        verified, then copied through the checksum pipeline into a new session committed only if
        the claimed digest matches: nothing unverified reaches the blob namespace, at the price
        of moving this (rare) blob twice."""
        verified = Digest.parse(digest_of(session))
        first = await self._commit(session, verified, scopes)
        if first.committed is None:
            return first  # the upstream refused; its answer is relayed
        pull = [scope.with_actions({"pull"}) for scope in scopes[:1]]
        source = await self.upstream.send("GET", f"/v2/{session.repository}/blobs/{verified}", scopes=pull)
        if source.status_code != 200:
            await source.aclose()
            raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry lost a blob it just committed; "
                                "try again later", headers={"Retry-After": "5"})
        try:
            opened = await self.upstream.send("POST", f"/v2/{session.repository}/blobs/uploads/", scopes=scopes,
                                              headers={"Content-Length": "0"})
            await opened.aclose()
            if opened.status_code != 202:
                raise RegistryError(ErrorCode.UNAVAILABLE, f"the upstream registry answered {opened.status_code} "
                                    "to a new upload; try again later", headers={"Retry-After": "5"})
            copy = UploadSession(_upload_id(opened), session.repository, self._upstream_location(opened),
                                 algorithm=claimed.algorithm, hasher=claimed.hasher())
            length = {"Content-Length": str(session.size)}
            response = await self._stream(copy, source.aiter_raw(), length, scopes)
        finally:
            await source.aclose()
        if response.status_code != 202:
            await self._abandon(copy, scopes)
            return UploadResult(await relay(self.upstream, response))
        await response.aclose()
        return await self._commit(copy, claimed, scopes)

    async def status(self, request: Request, repository: str, upload_id: str, scopes: Sequence[Scope]) -> Response:
        session = self.sessions.get(upload_id, repository)
        response = await self.upstream.send("GET", "", url=session.location, scopes=scopes)
        return await (empty(self.upstream, response) if response.status_code == 204
                      else relay(self.upstream, response))

    async def cancel(self, request: Request, repository: str, upload_id: str, scopes: Sequence[Scope]) -> Response:
        url = self.upstream.base + request.url.path + _query(request)
        try:
            session = self.sessions.get(upload_id, repository)
        except RegistryError:
            pass  # cancelling a session another replica opened is harmless: forward as asked
        else:
            self.sessions.discard(session)
            url = session.location
        response = await self.upstream.send("DELETE", "", url=url, scopes=scopes)
        return await (empty(self.upstream, response) if response.status_code == 204
                      else relay(self.upstream, response))

    # -- the checksum pipeline -----------------------------------------------------------------

    async def _append(self, request: Request, session: UploadSession, scopes: Sequence[Scope],
                      *, put: bool) -> httpx.Response:
        """Stream the request body to the upstream session as a PATCH, hashing as it passes; the
        bytes count for the session only once the upstream confirms it holds exactly them."""
        declared = declared_length(request.headers)
        chunk = content_range(request.headers)
        if chunk is not None and chunk[0] != session.size:
            # A retried or out-of-order chunk: appending it would corrupt the blob (as embedded).
            raise out_of_order(chunk[0], session.size)
        if declared is not None and session.size + declared > self.max_blob_size:
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.TOO_LARGE, f"blobs are limited to {self.max_blob_size} bytes")
        headers = {"Content-Type": "application/octet-stream"}
        if declared is not None:
            headers["Content-Length"] = str(declared)
        if not put and chunk is not None:
            headers["Content-Range"] = f"{chunk[0]}-{chunk[1]}"
        try:
            response = await self._stream(session, within(request.stream(), self.idle), headers, scopes)
        except BodyIdle:
            log.info("client sent nothing for %s s during upload %s; cancelling it", self.idle, session.upload_id)
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, f"the client sent nothing for {self.idle:g} s; "
                                "start the upload again", status=408) from None
        except ClientDisconnect:
            log.info("client went away during upload %s; cancelling it upstream", session.upload_id)
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, "the client disconnected mid-upload") from None
        if chunk is not None and response.status_code == 202 and session.size != chunk[1] + 1:
            await response.aclose()
            raise RegistryError(ErrorCode.SIZE_INVALID, f"the chunk ended at byte {session.size - 1}, not {chunk[1]} "
                                "as Content-Range said; check the upload status and resume")
        return response

    async def _stream(self, session: UploadSession, source: AsyncIterable[bytes], headers: dict[str, str],
                      scopes: Sequence[Scope]) -> httpx.Response:
        """PATCH `source` into the upstream session, hashing as it passes; the bytes count for the
        session only once the upstream confirms it holds exactly them. Failures abandon the session
        (the client's going away and silence are the caller's to explain)."""
        digesting = Digesting(session, self.max_blob_size)
        body = digesting.wrap(source)
        try:
            response = await self.upstream.send("PATCH", "", url=session.location, scopes=scopes, headers=headers,
                                                content=body)
        except BodyTooLarge:
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.TOO_LARGE, f"blobs are limited to {self.max_blob_size} bytes") from None
        except RegistryError:
            await self._abandon(session, scopes)
            raise
        finally:
            await body.aclose()
        if response.status_code != 202:
            return response
        stored = _range_end(response.headers.get("range"))
        if stored is None or not (stored + 1 == digesting.total or (stored == 0 and digesting.total == 0)):
            log.error("upstream %s holds %s bytes of upload %s, authgate passed %s; cancelling it",
                      self.upstream.base, None if stored is None else stored + 1, session.upload_id, digesting.total)
            await response.aclose()
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, "the upload is out of step with the registry; "
                                "start it again")
        digesting.commit(session)
        session.location = self._upstream_location(response, session.location)
        return response

    async def _commit(self, session: UploadSession, claimed: Digest, scopes: Sequence[Scope]) -> UploadResult:
        actual = digest_of(session)
        if not hmac.compare_digest(actual, str(claimed)):
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"uploaded content has digest {actual}, not {claimed}",
                                detail={"expected": str(claimed), "actual": actual})
        target = httpx.URL(session.location).copy_merge_params({"digest": str(claimed)})
        try:
            response = await self.upstream.send("PUT", "", url=str(target), scopes=scopes,
                                                headers={"Content-Length": "0"})
        except RegistryError:
            await self._abandon(session, scopes)
            raise
        if response.status_code != 201:
            await self._abandon(session, scopes)
            return UploadResult(await relay(self.upstream, response))
        self.sessions.discard(session)
        created = await empty(self.upstream, response)
        # The blob as the client named it: distribution 2.8 answers a sha512 upload with its
        # canonical sha256 (and serves the blob under both).
        created.headers["docker-content-digest"] = str(claimed)
        created.headers["location"] = self.upstream.public_url(f"/v2/{session.repository}/blobs/{claimed}")
        return UploadResult(created, committed=(actual, session.size))

    async def _abandon(self, session: UploadSession, scopes: Sequence[Scope]) -> None:
        """Forget the session and cancel it upstream (best effort: the upstream may be the thing
        that failed; its own upload purging removes what is left)."""
        self.sessions.discard(session)
        await cancel_upstream(self.upstream, session.location, scopes)

    def _upstream_location(self, response: httpx.Response, fallback: str | None = None) -> str:
        location = response.headers.get("location")
        if not location:
            if fallback is None:
                raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry opened an upload without a "
                                    "Location; try again later")
            return fallback
        return str(response.request.url.join(location))


async def cancel_upstream(upstream: Upstream, url: str, scopes: Sequence[Scope]) -> None:
    delete_scopes = [s.with_actions({"delete"}) for s in scopes[:1]]
    try:
        response = await upstream.send("DELETE", "", url=url, scopes=delete_scopes)
        await response.aclose()
    except RegistryError:
        log.warning("could not cancel upload at upstream %s; its upload purging will remove it", upstream.base)


def _upload_id(response: httpx.Response) -> str:
    upload_id = str(response.headers.get("docker-upload-uuid", ""))
    if not upload_id:
        location = str(response.headers.get("location", ""))
        upload_id = httpx.URL(location).path.rstrip("/").rsplit("/", 1)[-1]
    if not upload_id:
        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry opened an upload without an id")
    return upload_id


def _claimed_digest(raw: str | None) -> Digest:
    if not raw:
        raise RegistryError(ErrorCode.DIGEST_INVALID, "the final PUT needs ?digest=<algorithm>:<hex>")
    return Digest.parse(raw)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()


def _query(request: Request) -> str:
    return f"?{request.url.query}" if request.url.query else ""


def _range_end(value: str | None) -> int | None:
    """The last byte offset in an upload `Range: 0-<end>` header."""
    if not value:
        return None
    start, _, end = value.removeprefix("bytes=").partition("-")
    return decimal(end) if start == "0" else None
