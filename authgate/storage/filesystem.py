"""The embedded blob store: content-addressed files in the data dir, uploads as session files.

A blob enters `blobs/` only by a rename after its digest was verified, so every readable blob is
complete and matches its name, whatever moment the process dies. Upload sessions survive a
restart (their hash state does not: a commit then re-hashes the file from disk).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import AsyncIterable, AsyncIterator
from pathlib import Path
from typing import BinaryIO

import anyio
import anyio.to_thread

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName
from authgate.storage.digesting import BATCH_SIZE, DigestingWriter, SizeLimitExceeded, hash_file
from authgate.storage.layout import Layout, commit_file, remove, write_atomic

log = logging.getLogger(__name__)

_run = anyio.to_thread.run_sync
_UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: Blob reads: large enough that the per-chunk cost (thread hop, ASGI message) is small.
_READ_SIZE = 4 * 1024 * 1024


async def _close(file: BinaryIO) -> None:
    """Close in a worker thread even when the request is being cancelled (no leaked descriptors)."""
    with anyio.CancelScope(shield=True):
        await _run(file.close)


def _unknown_upload() -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, "upload session unknown or expired; start a new upload")


class FilesystemBlobStore:
    def __init__(self, layout: Layout, *, max_blob_size: int, upload_max_age: int) -> None:
        self.layout = layout
        self.max_blob_size = max_blob_size
        self.upload_max_age = upload_max_age
        self._locks: dict[str, anyio.Lock] = {}
        #: upload id -> (hasher, byte count it has seen); valid only while the count is the file size.
        self._hashers: dict[str, tuple["hashlib._Hash", int]] = {}

    # -- blobs ---------------------------------------------------------------------------------

    async def blob_size(self, name: RepositoryName, digest: Digest) -> int | None:
        """Two `stat`s on the event loop: each costs a microsecond or two on page-cached metadata, the
        hop to a worker thread and back ~100 us (every layer `HEAD` of a push or pull lands here)."""
        try:
            if not stat.S_ISREG(os.stat(self.layout.layer_link_file(name, digest)).st_mode):
                return None
            return os.stat(self.layout.blob_file(digest)).st_size
        except (FileNotFoundError, NotADirectoryError):
            return None

    async def read_blob(self, digest: Digest, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        """Stream a blob in 4 MiB reads, the next read running in a thread while this one is sent."""
        loop = asyncio.get_running_loop()
        file: BinaryIO = await _run(open, self.layout.blob(digest), "rb")
        remaining = length
        pending: asyncio.Future[bytes] | None = None

        def next_read() -> asyncio.Future[bytes] | None:
            nonlocal remaining
            if remaining is not None and remaining <= 0:
                return None
            size = _READ_SIZE if remaining is None else min(_READ_SIZE, remaining)
            if remaining is not None:
                remaining -= size
            return loop.run_in_executor(None, file.read, size)

        try:
            await _run(file.seek, start)
            pending = next_read()
            while pending is not None:
                chunk = await pending
                pending = next_read() if chunk else None
                if chunk:
                    yield chunk
        finally:
            with anyio.CancelScope(shield=True):
                if pending is not None:
                    await asyncio.wait([pending])
                await _close(file)

    async def redirect_url(self, digest: Digest) -> str | None:
        return None  # the data dir has no URL of its own: pulls stream through authgate

    async def read_blob_bytes(self, digest: Digest, limit: int) -> bytes | None:
        def read() -> bytes | None:
            try:
                with open(self.layout.blob(digest), "rb") as file:
                    data = file.read(limit + 1)
            except FileNotFoundError:
                return None
            return data if len(data) <= limit else None

        return await _run(read)

    async def link(self, name: RepositoryName, digest: Digest) -> bool:
        """Link an existing blob into `name`, refreshing its time so gc's grace period covers it;
        False if the blob is gone (gc took it meanwhile)."""

        def link() -> bool:
            try:
                os.utime(self.layout.blob(digest))
            except FileNotFoundError:
                return False
            if not self.layout.layer_link(name, digest).exists():
                write_atomic(self.layout, self.layout.layer_link(name, digest), b"")
            return True

        return await _run(link)

    async def unlink_blob(self, name: RepositoryName, digest: Digest) -> bool:
        return await _run(remove, self.layout.layer_link(name, digest))

    # -- uploads -------------------------------------------------------------------------------

    async def start_upload(self, name: RepositoryName) -> str:
        upload_id = str(uuid.uuid4())

        def create() -> None:
            directory = self.layout.upload(upload_id)
            directory.mkdir(parents=True)
            (directory / "data").touch()
            (directory / "repository").write_text(name.value)

        await _run(create)
        return upload_id

    def _lock(self, upload_id: str) -> anyio.Lock:
        """The session's lock; only a session that exists gets one, or any caller could grow
        `_locks` by one entry per made-up id (it is dropped with the session in `_discard`)."""
        lock = self._locks.get(upload_id)
        if lock is None:
            if not _UUID_RE.fullmatch(upload_id) or not self.layout.upload(upload_id).is_dir():
                raise _unknown_upload()
            lock = self._locks.setdefault(upload_id, anyio.Lock())
        return lock

    async def _size(self, name: RepositoryName, upload_id: str) -> int:
        if not _UUID_RE.fullmatch(upload_id):  # ours are UUIDs; never let an id walk the directory tree
            raise _unknown_upload()

        def size() -> int:
            directory = self.layout.upload(upload_id)
            try:
                owner = (directory / "repository").read_text()
                if owner != name.value:
                    raise _unknown_upload()
                return (directory / "data").stat().st_size
            except (FileNotFoundError, NotADirectoryError):
                raise _unknown_upload() from None

        return await _run(size)

    async def upload_size(self, name: RepositoryName, upload_id: str) -> int:
        return await self._size(name, upload_id)

    async def append(self, name: RepositoryName, upload_id: str, body: AsyncIterable[bytes],
                     start: int | None = None, algorithm: str = "sha256") -> int:
        """See `BlobStore.append`; `algorithm` is hashed on the way (sha256 unless the digest is known)."""
        async with self._lock(upload_id):
            size = await self._size(name, upload_id)
            if start is not None and start != size:
                raise RegistryError(ErrorCode.RANGE_INVALID, f"chunk starts at {start} but the upload has {size} bytes;"
                                    " resume from the Range this session reports", status=416,
                                    headers={"Range": f"0-{max(size - 1, 0)}"})
            cached = self._hashers.pop(upload_id, None)
            hasher = cached[0] if cached and cached[1] == size and cached[0].name == algorithm else None
            file: BinaryIO = await _run(open, self.layout.upload(upload_id) / "data", "ab")
            writer = DigestingWriter(file, limit=self.max_blob_size, offset=size, algorithm=algorithm, hasher=hasher)
            try:
                await writer.consume(body)
            except SizeLimitExceeded:
                await _close(file)
                await self._discard(upload_id)  # past the limit: nothing is left behind
                raise
            finally:
                await _close(file)
            # Without the hash of the earlier bytes (restart, failed chunk) `commit` re-hashes from disk.
            if hasher is not None or size == 0:
                self._hashers[upload_id] = (writer.hasher, writer.total)
            return writer.total

    async def commit(self, name: RepositoryName, upload_id: str, digest: Digest) -> int:
        async with self._lock(upload_id):
            size = await self._size(name, upload_id)
            data = self.layout.upload(upload_id) / "data"
            cached = self._hashers.pop(upload_id, None)
            if cached and cached[1] == size and cached[0].name == digest.algorithm:
                actual = Digest(digest.algorithm, cached[0].hexdigest())
            else:
                actual, size = await _run(hash_file, lambda: open(data, "rb"), digest.algorithm)
            if actual != digest:
                await self._discard(upload_id)
                raise RegistryError(ErrorCode.DIGEST_INVALID, f"the uploaded content has digest {actual}, not"
                                    f" {digest}; the upload was discarded", detail={"digest": str(digest)})

            def move() -> None:
                target = self.layout.blob(digest)
                if target.exists():
                    os.utime(target)
                else:
                    with open(data, "rb") as file:
                        os.fsync(file.fileno())
                    commit_file(data, target)
                write_atomic(self.layout, self.layout.layer_link(name, digest), b"")

            await _run(move)
            await self._discard(upload_id)
            return size

    async def cancel(self, name: RepositoryName, upload_id: str) -> None:
        async with self._lock(upload_id):
            await self._size(name, upload_id)
            await self._discard(upload_id)

    async def _discard(self, upload_id: str) -> None:
        self._hashers.pop(upload_id, None)
        self._locks.pop(upload_id, None)
        await _run(lambda: shutil.rmtree(self.layout.upload(upload_id), ignore_errors=True))

    async def put_blob(self, name: RepositoryName, digest: Digest, body: AsyncIterable[bytes]) -> int:
        upload_id = await self.start_upload(name)
        try:
            await self.append(name, upload_id, body, algorithm=digest.algorithm)
            return await self.commit(name, upload_id, digest)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._discard(upload_id)
            raise

    async def expire_uploads(self) -> list[str]:
        """Remove sessions untouched for `upload_max_age` seconds; the ids removed."""
        cutoff = time.time() - self.upload_max_age

        def stale() -> list[str]:
            found = []
            for entry in os.scandir(self.layout.uploads):
                data = Path(entry.path) / "data"
                try:
                    touched = data.stat().st_mtime
                except FileNotFoundError:
                    touched = entry.stat().st_mtime
                if touched < cutoff:
                    found.append(entry.name)
            return found

        expired = [u for u in await _run(stale) if not (u in self._locks and self._locks[u].locked())]
        for upload_id in expired:
            await self._discard(upload_id)
        if expired:
            log.info("removed %d abandoned upload sessions", len(expired))
        return expired
