"""The checksum pipeline of gateway uploads: bytes streamed to the upstream session as `PATCH`es,
hashed as they pass, counted only once the upstream holds exactly them; the commit forwarded only
for a digest that matches (else the upstream session is cancelled, 400 `DIGEST_INVALID`).

Where no single process hashed every byte of a session (its chunks went through several replicas),
the upstream checks the digest on commit and authgate reads the blob back (`authgate.gateway.readback`).
The HTTP steps that drive this pipeline are `authgate.gateway.upload_proxy`.
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
from authgate.gateway.readback import delete_blob, read_back
from authgate.gateway.upload_records import UploadSessions
from authgate.gateway.uploads import BodyTooLarge, Digesting, UploadSession, digest_of
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


class ChecksumPipeline:
    def __init__(self, upstream: Upstream, sessions: UploadSessions, max_blob_size: int, idle: float = 60.0) -> None:
        self.upstream = upstream
        self.sessions = sessions
        self.max_blob_size = max_blob_size
        #: Seconds a client may stay silent mid-body before the upload is cancelled.
        self.idle = idle

    async def _commit_rehashed(self, session: UploadSession, claimed: Digest, scopes: Sequence[Scope]
                               ) -> UploadResult:
        """A chunked upload whose final PUT names another algorithm than its chunks were hashed
        with (sha512 after sha256 chunks). The bytes are committed under the digest authgate
        verified, then copied through the checksum pipeline into a new session committed only if
        the claimed digest matches: nothing unverified reaches the blob namespace, at the price
        of moving this (rare) blob twice."""
        known = digest_of(session)
        if known is None:
            return await self._commit_moved(session, claimed, scopes)  # checked by reading back anyway
        verified = Digest.parse(known)
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
            copy = await self.sessions.open(upload_id_of(opened), session.repository, session.owner,
                                            self._upstream_location(opened), claimed.algorithm)
            length = {"Content-Length": str(session.size)}
            response = await self._stream(copy, source.aiter_raw(), length, scopes)
        finally:
            await source.aclose()
        if response.status_code != 202:
            await self._abandon(copy, scopes)
            return UploadResult(await relay(self.upstream, response))
        await response.aclose()
        return await self._commit(copy, claimed, scopes)


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
        if not await self.sessions.advance(session):
            await response.aclose()
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, "another request wrote to this upload at the same "
                                "time; start it again", status=409)
        return response

    async def _commit(self, session: UploadSession, claimed: Digest, scopes: Sequence[Scope]) -> UploadResult:
        actual = digest_of(session)
        if actual is None:
            return await self._commit_moved(session, claimed, scopes)
        if not hmac.compare_digest(actual, str(claimed)):
            await self._abandon(session, scopes)
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"uploaded content has digest {actual}, not {claimed}",
                                detail={"expected": str(claimed), "actual": actual})
        response = await self._put_upstream(session, claimed, scopes)
        if response.status_code != 201:
            await self._abandon(session, scopes)
            return UploadResult(await relay(self.upstream, response))
        await self.sessions.discard(session)
        return UploadResult(await self._created(session, claimed, response), committed=(actual, session.size))

    async def _commit_moved(self, session: UploadSession, claimed: Digest, scopes: Sequence[Scope]
                            ) -> UploadResult:
        """Commit a session no process hashed whole: the upstream checks the digest (and refuses
        a mismatch, committing nothing), then authgate reads the blob back and hashes it; a blob
        that does not match is deleted again before anyone is told it exists."""
        response = await self._put_upstream(session, claimed, scopes)
        if response.status_code != 201:
            await self._abandon(session, scopes)
            if response.status_code == 400:
                await response.aclose()
                raise RegistryError(ErrorCode.DIGEST_INVALID, f"uploaded content does not have digest {claimed} "
                                    "(checked by the registry)", detail={"expected": str(claimed)})
            return UploadResult(await relay(self.upstream, response))
        await self.sessions.discard(session)
        created = await self._created(session, claimed, response)
        actual, size = await read_back(self.upstream, session.repository, claimed, scopes)
        if not hmac.compare_digest(actual, str(claimed)) or size != session.size:
            log.error("upstream %s committed %s in %s although its content has digest %s (%s bytes, %s sent): "
                      "deleting it", self.upstream.base, claimed, session.repository, actual, size, session.size)
            await delete_blob(self.upstream, session.repository, claimed, scopes)
            raise RegistryError(ErrorCode.DIGEST_INVALID, f"uploaded content has digest {actual}, not {claimed}",
                                detail={"expected": str(claimed), "actual": actual})
        return UploadResult(created, committed=(actual, session.size))

    async def _put_upstream(self, session: UploadSession, claimed: Digest, scopes: Sequence[Scope]
                            ) -> httpx.Response:
        """The final `PUT ?digest=` to the upstream session; a failure to reach it abandons the session."""
        target = httpx.URL(session.location).copy_merge_params({"digest": str(claimed)})
        try:
            return await self.upstream.send("PUT", "", url=str(target), scopes=scopes, headers={"Content-Length": "0"})
        except RegistryError:
            await self._abandon(session, scopes)
            raise

    async def _created(self, session: UploadSession, claimed: Digest, response: httpx.Response) -> Response:
        created = await empty(self.upstream, response)
        # The blob as the client named it: distribution 2.8 answers a sha512 upload with its
        # canonical sha256 (and serves the blob under both).
        created.headers["docker-content-digest"] = str(claimed)
        created.headers["location"] = self.upstream.public_url(f"/v2/{session.repository}/blobs/{claimed}")
        return created

    async def _abandon(self, session: UploadSession, scopes: Sequence[Scope]) -> None:
        """Forget the session and cancel it upstream (best effort: the upstream may be the thing
        that failed; its own upload purging removes what is left)."""
        await self.sessions.discard(session)
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


def upload_id_of(response: httpx.Response) -> str:
    upload_id = str(response.headers.get("docker-upload-uuid", ""))
    if not upload_id:
        location = str(response.headers.get("location", ""))
        upload_id = httpx.URL(location).path.rstrip("/").rsplit("/", 1)[-1]
    if not upload_id:
        raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry opened an upload without an id")
    return upload_id


def _range_end(value: str | None) -> int | None:
    """The last byte offset in an upload `Range: 0-<end>` header."""
    if not value:
        return None
    start, _, end = value.removeprefix("bytes=").partition("-")
    return decimal(end) if start == "0" else None
