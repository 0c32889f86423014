"""Read-ahead between two sockets: bytes flow through authgate as a pipeline, not stop-and-go.

Without it, one coroutine alternates: read a chunk, then wait until the other side has drained it
(uvicorn and anyio pause writers past a 64 KiB buffer), then read again, so each side idles while
the other works. A task reading up to `depth` chunks ahead overlaps the two; memory stays bounded
by `depth` chunks whatever the blob size.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable
from dataclasses import dataclass

from authgate.tasks import cancel_and_wait

#: Chunks read ahead (uvicorn gives ≤ 256 KiB per chunk): ≤ 4 MiB per upload.
DEPTH = 4


@dataclass(frozen=True, slots=True)
class _Failed:
    error: Exception


_END = object()


async def read_ahead(source: AsyncIterable[bytes], depth: int = DEPTH) -> AsyncGenerator[bytes, None]:
    """Yield `source`'s chunks, read by a task up to `depth` ahead; its errors re-raise here."""
    queue: asyncio.Queue[object] = asyncio.Queue(depth)

    async def pump() -> None:
        try:
            async for chunk in source:
                await queue.put(chunk)
        except Exception as exc:  # handed to the consumer, which decides what it means
            await queue.put(_Failed(exc))
        else:
            await queue.put(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, _Failed):
                raise item.error
            assert isinstance(item, bytes)
            yield item
    finally:
        await cancel_and_wait(task)
