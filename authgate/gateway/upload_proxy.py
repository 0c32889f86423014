"""Blob uploads through the gateway: every byte hashed on its way to the upstream, and the final
`PUT ?digest=` forwarded only when authgate's own digest matches (else the upstream session is
cancelled and the client gets 400 `DIGEST_INVALID`).

A body that would commit on arrival upstream (monolithic `POST ?digest=`, a `PUT ?digest=` carrying
the last chunk) is sent as a `PATCH` first, so the upstream holds it in an unfinished session until
the digest is checked: nothing reaches the upstream's blob namespace unverified.

Sessions are records in the database (`authgate.gateway.upload_records`), so any replica continues
any session; where the bytes went through more than one process, the digest is checked by the
upstream and then by reading the blob back (`authgate.gateway.readback`).
"""

from __future__ import annotations

from collections.abc import Sequence

from starlette.requests import Request
from starlette.responses import Response

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.responses import empty, relay
from authgate.gateway.upload_pipeline import ChecksumPipeline, UploadResult, cancel_upstream, upload_id_of
from authgate.gateway.uploads import UploadSession
from authgate.reference import Digest
from authgate.scope import Scope


class UploadProxy(ChecksumPipeline):
    """The upload steps of the registry API through the gateway, on the checksum pipeline."""

    async def start(self, request: Request, repository: str, owner: str, scopes: Sequence[Scope],
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
        await response.aclose()  # its headers stay readable
        upload_id = upload_id_of(response)
        location = self._upstream_location(response)
        try:
            session = await self.sessions.open(upload_id, repository, owner, location,
                                               claimed.algorithm if claimed else "sha256")
        except RegistryError:
            await cancel_upstream(self.upstream, location, scopes)  # refused here: not left open upstream
            raise
        if claimed is None:
            return UploadResult(await empty(self.upstream, response))
        # Monolithic upload: the body goes in as a PATCH, then the checked commit.
        with self.sessions.writing(session):
            return await self._finish(request, session, scopes, with_body=True)

    async def patch(self, request: Request, repository: str, upload_id: str, owner: str,
                    scopes: Sequence[Scope]) -> Response:
        with self.sessions.writing(await self.sessions.get(upload_id, repository, owner)) as session:
            response = await self._append(request, session, scopes, put=False)
            return await (empty(self.upstream, response) if response.status_code == 202
                          else relay(self.upstream, response))

    async def put(self, request: Request, repository: str, upload_id: str, owner: str,
                  scopes: Sequence[Scope]) -> UploadResult:
        """`PUT …/uploads/<id>?digest=`: append any final chunk, then commit only a matching digest."""
        with self.sessions.writing(await self.sessions.get(upload_id, repository, owner)) as session:
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

    async def status(self, request: Request, repository: str, upload_id: str, owner: str,
                     scopes: Sequence[Scope]) -> Response:
        session = await self.sessions.get(upload_id, repository, owner)
        response = await self.upstream.send("GET", "", url=session.location, scopes=scopes)
        return await (empty(self.upstream, response) if response.status_code == 204
                      else relay(self.upstream, response))

    async def cancel(self, request: Request, repository: str, upload_id: str, owner: str,
                     scopes: Sequence[Scope]) -> Response:
        session = await self.sessions.get(upload_id, repository, owner)
        await self.sessions.discard(session)
        response = await self.upstream.send("DELETE", "", url=session.location, scopes=scopes)
        return await (empty(self.upstream, response) if response.status_code == 204
                      else relay(self.upstream, response))


def _claimed_digest(raw: str | None) -> Digest:
    if not raw:
        raise RegistryError(ErrorCode.DIGEST_INVALID, "the final PUT needs ?digest=<algorithm>:<hex>")
    return Digest.parse(raw)


def _has_body(request: Request) -> bool:
    length = request.headers.get("content-length")
    if length is not None:
        return length != "0"
    return "chunked" in request.headers.get("transfer-encoding", "").lower()
