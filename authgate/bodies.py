"""Reading a request body whole, bounded: the one reader for manifests, forms and notifications.

Each caller says what too large means to its client (413 in OCI format, a form's 400, an OAuth
error); the reading, and stopping at the limit without reading the rest, is the same everywhere.
"""

from __future__ import annotations

from collections.abc import AsyncIterable


class BodyTooLarge(Exception):
    """The body went past the limit; what was read is dropped."""


async def read_bounded(chunks: AsyncIterable[bytes], limit: int) -> bytes:
    """All of `chunks`, or `BodyTooLarge` as soon as they add up to more than `limit` bytes."""
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(f"more than {limit} bytes")
    return bytes(body)
