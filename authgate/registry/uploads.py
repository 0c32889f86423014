"""Blob uploads (OCI distribution spec "Pushing blobs"): monolithic, chunked, resumable, mounted.

Bodies stream through the store's digesting writer; a blob becomes visible only once its digest
matched. Refused pushes are audited with the reason.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest
from authgate.registry.context import Stores, blob_location, declared_length, empty, upload_headers
from authgate.registry.numbers import content_range
from authgate.registry.routes import Target
from authgate.registry.rules import failure_reason
from authgate.subject import Identity


def _check_declared_size(stores: Stores, request: Request, already: int = 0) -> None:
    length = declared_length(request)
    if length is not None and already + length > stores.settings.max_blob_size:
        raise RegistryError(ErrorCode.TOO_LARGE, f"blob exceeds the configured maximum of "
                            f"{stores.settings.max_blob_size} bytes")


def _query_digest(request: Request) -> Digest:
    raw = request.query_params.get("digest")
    if not raw:
        raise RegistryError(ErrorCode.DIGEST_INVALID, "completing an upload needs ?digest=<algorithm>:<hex>")
    return Digest.parse(raw)


def _blob_created(target: Target, digest: Digest) -> Response:
    assert target.repository
    return empty(201, {"Location": blob_location(target.repository, digest), "Docker-Content-Digest": str(digest)})


async def _pushed(stores: Stores, request: Request, identity: Identity, target: Target, digest: Digest,
                  size: int) -> None:
    await stores.audit(request, identity, target, "blob:push", digest=str(digest), size=size)


async def _refused(stores: Stores, request: Request, identity: Identity, target: Target, digest: Digest | None,
                   error: RegistryError) -> None:
    await stores.audit(request, identity, target, "blob:push:failure", digest=str(digest) if digest else None,
                       reason=failure_reason(error))


async def upload_start(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    name = target.repository
    assert name
    if target.mount_from and target.mount_digest:
        # A mount is the registry's rule on top of two store operations: the source must hold the
        # blob (its link is what `pull` on `from` was checked against), then it is linked here.
        size = await stores.blobs.blob_size(target.mount_from, target.mount_digest)
        if size is not None and await stores.blobs.link(name, target.mount_digest):
            await stores.audit(request, identity, target, "blob:mount", digest=str(target.mount_digest), size=size,
                        details={"from": str(target.mount_from)})
            return _blob_created(target, target.mount_digest)
    if "digest" in request.query_params:
        digest = _query_digest(request)
        try:
            _check_declared_size(stores, request)
            size = await stores.blobs.put_blob(name, digest, request.stream())
        except RegistryError as error:
            await _refused(stores, request, identity, target, digest, error)
            raise
        await _pushed(stores, request, identity, target, digest, size)
        return _blob_created(target, digest)
    upload_id = await stores.blobs.start_upload(name)
    return empty(202, upload_headers(name, upload_id, 0))


async def upload_status(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.upload_id
    size = await stores.blobs.upload_size(target.repository, target.upload_id)
    return empty(204, upload_headers(target.repository, target.upload_id, size))


async def _append(stores: Stores, request: Request, target: Target) -> int:
    assert target.repository and target.upload_id
    chunk = content_range(request.headers)
    size = await stores.blobs.upload_size(target.repository, target.upload_id)
    try:
        _check_declared_size(stores, request, size)
    except RegistryError:
        await stores.blobs.cancel(target.repository, target.upload_id)
        raise
    new_size = await stores.blobs.append(target.repository, target.upload_id, request.stream(),
                                         start=chunk[0] if chunk else None)
    if chunk and new_size != chunk[1] + 1:
        raise RegistryError(ErrorCode.SIZE_INVALID, f"the chunk ended at byte {new_size - 1}, not {chunk[1]} as "
                            "Content-Range said; check the upload status and resume")
    return new_size


async def upload_patch(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.upload_id
    try:
        size = await _append(stores, request, target)
    except RegistryError as error:
        if error.code is ErrorCode.TOO_LARGE:
            await _refused(stores, request, identity, target, None, error)
        raise
    return empty(202, upload_headers(target.repository, target.upload_id, size))


async def upload_put(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.upload_id
    digest = _query_digest(request)
    try:
        await _append(stores, request, target)
        size = await stores.blobs.commit(target.repository, target.upload_id, digest)
    except RegistryError as error:
        if error.code in (ErrorCode.DIGEST_INVALID, ErrorCode.TOO_LARGE):
            await _refused(stores, request, identity, target, digest, error)
        raise
    await _pushed(stores, request, identity, target, digest, size)
    return _blob_created(target, digest)


async def upload_cancel(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.upload_id
    await stores.blobs.cancel(target.repository, target.upload_id)
    return empty(204, {})
