"""The registry's rules that are not the store's, written once for both backends (embedded and
gateway): the immutable-tag refusal, the reasons a refused push is audited with, and the bounded
read of a manifest body."""

from __future__ import annotations

from collections.abc import AsyncIterable

from starlette.requests import Request

from authgate.bodies import BodyTooLarge, read_bounded
from authgate.errors import ErrorCode, RegistryError
from authgate.registry import numbers

#: Refusals an operator scans the audit log for, by a short name; any other keeps its message.
_REASONS = {ErrorCode.DIGEST_INVALID: "digest mismatch", ErrorCode.DENIED: "immutable tag"}
IMMUTABLE_TAG = _REASONS[ErrorCode.DENIED]


def denied_immutable(tag: str, rule: str) -> RegistryError:
    """A tag an immutable-tag rule protects may not move or be deleted; the rule's name only
    (clients see it; its file:line would show them the server's paths)."""
    return RegistryError(ErrorCode.DENIED, f"tag {tag} is immutable (policy rule {rule!r}); push a new tag instead",
                         detail={"tag": tag, "rule": rule})


def failure_reason(error: RegistryError) -> str:
    """The `reason` of a `…:push:failure` audit event for `error`."""
    return _REASONS.get(error.code, error.message)


async def read_manifest(request: Request, limit: int, chunks: AsyncIterable[bytes] | None = None) -> bytes:
    """The manifest body, whole, at most `limit` bytes (refused on a larger `Content-Length` before
    anything is read). `chunks` replaces `request.stream()` (the gateway bounds idle time)."""
    too_large = RegistryError(ErrorCode.TOO_LARGE, f"manifest exceeds the maximum of {limit} bytes", status=413)
    length = numbers.declared_length(request.headers)
    if length is not None and length > limit:
        raise too_large
    try:
        return await read_bounded(request.stream() if chunks is None else chunks, limit)
    except BodyTooLarge:
        raise too_large from None
