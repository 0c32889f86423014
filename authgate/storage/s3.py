"""The embedded blob store on S3-compatible object storage, shared by every process and replica.

Same contract as the filesystem store (`storage.base.BlobStore`): a blob is readable only once
complete and verified, uploads are resumable sessions, a digest mismatch leaves nothing visible.
Layout in `s3_layout`, sessions in `s3_uploads`. Pulls stream the object through, or with
`s3_redirect` answer with a presigned URL so the bytes go from the object store to the client.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterable, AsyncIterator

import anyio

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName
from authgate.storage import s3_layout as keys
from authgate.storage.s3_client import S3
from authgate.storage.s3_uploads import Sessions, unknown_upload

log = logging.getLogger(__name__)

#: Chunks handed to the ASGI server on pulls.
_READ_SIZE = 1024 * 1024


class S3BlobStore:
    def __init__(self, s3: S3, *, max_blob_size: int, upload_max_age: int, part_size: int,
                 redirect_ttl: int | None = None) -> None:
        self.s3 = s3
        self.max_blob_size = max_blob_size
        self.upload_max_age = upload_max_age
        self.redirect_ttl = redirect_ttl
        self.sessions = Sessions(s3, part_size=part_size, max_blob_size=max_blob_size)
        #: Serialises requests on one session within this process (across processes see `s3_uploads`).
        self._locks: dict[str, anyio.Lock] = {}

    # -- blobs ---------------------------------------------------------------------------------

    async def _record(self, digest: Digest) -> tuple[str, int] | None:
        return keys.parse_blob_record(await self.s3.get(keys.blob(digest), limit=4096))

    async def blob_size(self, name: RepositoryName, digest: Digest) -> int | None:
        if await self.s3.head(keys.layer(name, digest)) is None:
            return None
        record = await self._record(digest)
        return None if record is None else record[1]

    async def read_blob(self, digest: Digest, start: int = 0, length: int | None = None) -> AsyncIterator[bytes]:
        record = await self._record(digest)
        if record is None:
            raise RegistryError(ErrorCode.BLOB_UNKNOWN, f"blob {digest} is gone", detail={"digest": str(digest)})
        if length == 0:
            return
        async for chunk in self.s3.stream(record[0], start, length, chunk_size=_READ_SIZE):
            yield chunk

    async def redirect_url(self, digest: Digest) -> str | None:
        """A presigned GET URL for the blob's bytes when `s3_redirect` is on, else None."""
        if self.redirect_ttl is None:
            return None
        record = await self._record(digest)
        return None if record is None else await self.s3.presign(record[0], self.redirect_ttl)

    async def read_blob_bytes(self, digest: Digest, limit: int) -> bytes | None:
        record = await self._record(digest)
        if record is None or record[1] > limit:
            return None
        return await self.s3.get(record[0], limit=limit)

    async def link(self, name: RepositoryName, digest: Digest) -> bool:
        """Link into `name`, rewriting the record so its time tells gc the blob is in use."""
        if not await self._refresh(digest):
            return False
        await self.s3.put(keys.layer(name, digest), b"")
        return True

    async def unlink_blob(self, name: RepositoryName, digest: Digest) -> bool:
        if await self.s3.head(keys.layer(name, digest)) is None:
            return False
        await self.s3.delete(keys.layer(name, digest))
        return True

    async def put_small(self, digest: Digest, body: bytes) -> None:
        """Store a verified small blob (a manifest) whole: bytes first, then the record."""
        if await self._refresh(digest):
            return
        data = keys.new_data()
        await self.s3.put(data, body)
        await self.s3.put(keys.blob(digest), keys.blob_record(data, len(body)))

    # -- uploads -------------------------------------------------------------------------------

    async def start_upload(self, name: RepositoryName) -> str:
        upload_id = str(uuid.uuid4())
        await self.sessions.open(name, upload_id)
        return upload_id

    def _lock(self, upload_id: str) -> anyio.Lock:
        return self._locks.setdefault(upload_id, anyio.Lock())

    def _valid(self, upload_id: str) -> None:
        """Ours are canonical UUIDs; anything else never reaches a key name."""
        try:
            canonical = str(uuid.UUID(upload_id))
        except ValueError:
            raise unknown_upload() from None
        if upload_id != canonical:
            raise unknown_upload()

    async def upload_size(self, name: RepositoryName, upload_id: str) -> int:
        self._valid(upload_id)
        return (await self.sessions.load(name, upload_id)).size

    async def append(self, name: RepositoryName, upload_id: str, body: AsyncIterable[bytes],
                     start: int | None = None, algorithm: str = "sha256") -> int:
        self._valid(upload_id)
        state = await self.sessions.load(name, upload_id)  # before a lock exists for a made-up id
        try:
            async with self._lock(upload_id):
                state = await self.sessions.load(name, upload_id)
                if start is not None and start != state.size:
                    raise RegistryError(ErrorCode.RANGE_INVALID, f"chunk starts at {start} but the upload has "
                                        f"{state.size} bytes; resume from the Range this session reports",
                                        status=416, headers={"Range": f"0-{max(state.size - 1, 0)}"})
                try:
                    return (await self.sessions.append(upload_id, state, body, algorithm)).size
                except RegistryError as exc:
                    if exc.code is ErrorCode.TOO_LARGE:
                        with anyio.CancelScope(shield=True):
                            await self.sessions.discard(upload_id, await self.sessions.load(name, upload_id))
                    raise
        finally:
            self._release(upload_id)

    def _release(self, upload_id: str) -> None:
        lock = self._locks.get(upload_id)
        if lock is not None and not lock.locked() and lock.statistics().tasks_waiting == 0:
            del self._locks[upload_id]

    async def commit(self, name: RepositoryName, upload_id: str, digest: Digest) -> int:
        self._valid(upload_id)
        await self.sessions.load(name, upload_id)
        try:
            async with self._lock(upload_id):
                state = await self.sessions.load(name, upload_id)
                await self.sessions.finish(upload_id, state, digest)  # DIGEST_INVALID: nothing visible
                await self.sessions.forget(upload_id, state)
                if await self._refresh(digest):
                    await self.s3.delete(state.data)  # already stored (another repository): keep one copy
                else:
                    await self.s3.put(keys.blob(digest), keys.blob_record(state.data, state.size))
                await self.s3.put(keys.layer(name, digest), b"")
                return state.size
        finally:
            self._release(upload_id)

    async def _refresh(self, digest: Digest) -> bool:
        """Rewrite the blob's record so its time tells gc the blob is in use; False if there is none."""
        raw = await self.s3.get(keys.blob(digest), limit=4096)
        if keys.parse_blob_record(raw) is None or raw is None:
            return False
        await self.s3.put(keys.blob(digest), raw)
        return True

    async def cancel(self, name: RepositoryName, upload_id: str) -> None:
        self._valid(upload_id)
        state = await self.sessions.load(name, upload_id)
        await self.sessions.discard(upload_id, state)
        self._locks.pop(upload_id, None)

    async def put_blob(self, name: RepositoryName, digest: Digest, body: AsyncIterable[bytes]) -> int:
        upload_id = await self.start_upload(name)
        try:
            await self.append(name, upload_id, body, algorithm=digest.algorithm)
            return await self.commit(name, upload_id, digest)
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await self.cancel(name, upload_id)
                except RegistryError:
                    pass  # already discarded (mismatch, limit) or the store is down: gc sweeps
            raise

    async def expire_uploads(self) -> list[str]:
        expired = await self.sessions.expire(self.upload_max_age)
        if expired:
            log.info("removed %d abandoned upload sessions", len(expired))
        return expired
