"""Hash, count and limit a body on its way to disk, so no upload can skip any of the three.

The request body arrives in small pieces (~64 KiB from uvicorn). They are gathered into ~1 MiB
batches and handed to one writer thread, which hashes and writes them: hashlib releases the GIL on
large buffers, so hashing and disk I/O overlap with receiving the next batch, and the event loop
never blocks on either. At most `_QUEUE_DEPTH + 2` batches are in memory whatever the body size.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import hashlib
import sys
from collections.abc import AsyncIterable, Callable
from typing import BinaryIO, cast

import anyio
import anyio.to_thread
from anyio.streams.memory import MemoryObjectReceiveStream

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest

BATCH_SIZE = 1024 * 1024
_QUEUE_DEPTH = 4
#: Ask the kernel to start writing back every this many bytes, so the fsync at commit is short.
_WRITEBACK_EVERY = 16 * 1024 * 1024
_SYNC_FILE_RANGE_WRITE = 2


def _sync_file_range() -> Callable[[int, int, int, int], int] | None:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        function = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_longlong, ctypes.c_longlong, ctypes.c_uint]
    return cast(Callable[[int, int, int, int], int], function)


_SYNC_RANGE = _sync_file_range() if sys.platform == "linux" else None


def start_writeback(fd: int, offset: int, length: int) -> None:
    """Linux `sync_file_range(SYNC_FILE_RANGE_WRITE)`: start writing dirty pages, without waiting
    and without evicting them (a pull right after a push still reads from the page cache)."""
    if _SYNC_RANGE is not None:
        _SYNC_RANGE(fd, offset, length, _SYNC_FILE_RANGE_WRITE)


class SizeLimitExceeded(RegistryError):
    def __init__(self, limit: int) -> None:
        super().__init__(ErrorCode.TOO_LARGE, f"blob exceeds the configured maximum of {limit} bytes")


class DigestingWriter:
    """Append a stream to `file` at its current position, hashing (sha256 unless told) and counting.

    `hasher` continues a hash already computed over the first `offset` bytes (a resumed upload);
    `limit` is the maximum total size, checked before each byte is written.
    """

    def __init__(self, file: BinaryIO, *, limit: int, offset: int = 0, algorithm: str = "sha256",
                 hasher: "hashlib._Hash | None" = None) -> None:
        self.file = file
        self.limit = limit
        self.offset = offset
        self.count = 0
        self.algorithm = algorithm
        self.hasher = hasher if hasher is not None else hashlib.new(algorithm)
        self._flushed = 0

    @property
    def total(self) -> int:
        return self.offset + self.count

    def digest(self) -> Digest:
        return Digest(self.algorithm, self.hasher.hexdigest())

    def _write(self, batch: bytes) -> None:
        self.hasher.update(batch)
        self.file.write(batch)
        self.count += len(batch)
        if self.count - self._flushed >= _WRITEBACK_EVERY:
            self.file.flush()
            start_writeback(self.file.fileno(), self.offset + self._flushed, self.count - self._flushed)
            self._flushed = self.count

    async def _drain(self, receive: MemoryObjectReceiveStream[bytes]) -> None:
        async with receive:
            async for batch in receive:
                await anyio.to_thread.run_sync(self._write, batch)

    async def consume(self, source: AsyncIterable[bytes]) -> None:
        """Write all of `source`. On failure (disconnect, limit) the file holds a prefix of the body and
        `hasher`/`count` describe exactly that prefix, so a session can resume from it."""
        try:
            await self._consume(source)
        except BaseExceptionGroup as group:
            raise _first_leaf(group) from None

    async def _consume(self, source: AsyncIterable[bytes]) -> None:
        send, receive = anyio.create_memory_object_stream[bytes](_QUEUE_DEPTH)
        received = self.total
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._drain, receive)
            async with send:
                pending: list[bytes] = []
                pending_size = 0
                async for chunk in source:
                    received += len(chunk)
                    if received > self.limit:
                        raise SizeLimitExceeded(self.limit)
                    pending.append(chunk)
                    pending_size += len(chunk)
                    if pending_size >= BATCH_SIZE:
                        await send.send(b"".join(pending))
                        pending, pending_size = [], 0
                if pending:
                    await send.send(b"".join(pending))


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first


def hash_file(path_open: Callable[[], BinaryIO], algorithm: str) -> tuple[Digest, int]:
    """Hash a file in batches (run in a thread): for resumed uploads whose hash state was lost."""
    hasher = hashlib.new(algorithm)
    size = 0
    with path_open() as file:
        while batch := file.read(BATCH_SIZE):
            hasher.update(batch)
            size += len(batch)
    return Digest(algorithm, hasher.hexdigest()), size
