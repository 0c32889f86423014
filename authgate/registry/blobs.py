"""Blob GET/HEAD (with a single `Range`) and DELETE (unlinks from the repository; gc frees the bytes)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from authgate.errors import ErrorCode, RegistryError
from authgate.registry.context import Stores, empty
from authgate.registry.numbers import BYTE_RANGE_RE
from authgate.registry.routes import Target
from authgate.subject import Identity


def parse_range(header: str, size: int) -> tuple[int, int]:
    """(start, length) of a single `bytes=` range (RFC 9110 14.1.2); anything else is a 416."""
    found = BYTE_RANGE_RE.fullmatch(header.strip())
    unsatisfiable = RegistryError(ErrorCode.RANGE_INVALID, f"cannot serve range {header[:80]!r} of a {size}-byte "
                                  "blob; ask for one range bytes=START-END", status=416,
                                  headers={"Content-Range": f"bytes */{size}"})
    if not found or found.groups() == ("", ""):
        raise unsatisfiable
    first, last = found.groups()
    if not first:
        length = min(int(last), size)
        if length == 0:
            raise unsatisfiable
        return size - length, length
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or end < start:
        raise unsatisfiable
    return start, end - start + 1


async def blob_get(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.digest
    size = await stores.blobs.blob_size(target.repository, target.digest)
    if size is None:
        raise RegistryError(ErrorCode.BLOB_UNKNOWN, f"blob {target.digest} is not in {target.repository}",
                            detail={"digest": str(target.digest)})
    headers = {
        "Docker-Content-Digest": str(target.digest),
        "Accept-Ranges": "bytes",
        "ETag": f'"{target.digest}"',
        "Content-Type": "application/octet-stream",
    }
    start, length, status = 0, size, 200
    if "range" in request.headers:
        start, length = parse_range(request.headers["range"], size)
        status = 206
        headers["Content-Range"] = f"bytes {start}-{start + length - 1}/{size}"
    headers["Content-Length"] = str(length)
    if request.method == "HEAD":
        return Response(status_code=status, headers=headers)
    if stores.settings.audit_pulls == "all":
        await stores.audit(request, identity, target, "blob:pull", digest=str(target.digest), size=size)
    location = await stores.blobs.redirect_url(target.digest)
    if location is not None:  # the bytes go from the object store to the client (`s3_redirect`)
        return Response(status_code=307, headers={"Location": location, "Docker-Content-Digest": str(target.digest)})
    return StreamingResponse(stores.blobs.read_blob(target.digest, start, length), status_code=status,
                             headers=headers)


async def blob_delete(stores: Stores, request: Request, target: Target, identity: Identity) -> Response:
    assert target.repository and target.digest
    if not await stores.blobs.unlink_blob(target.repository, target.digest):
        raise RegistryError(ErrorCode.BLOB_UNKNOWN, f"blob {target.digest} is not in {target.repository}",
                            detail={"digest": str(target.digest)})
    await stores.audit(request, identity, target, "blob:delete", digest=str(target.digest))
    return empty(202, {"Docker-Content-Digest": str(target.digest)})
