"""Upload sessions on S3 that any process or replica can continue: chunk on A, chunk on B, PUT on C.

A session is one multipart upload plus a small JSON state object (its parts, their ETags, the byte
count and a `generation` that changes on every append). Parts must be at least 5 MiB except the
last, but clients send chunks of any size, so the bytes past the last whole part are kept as a
`tail` object and prepended to the next chunk. Memory per upload: one part being filled and one
being sent, whatever the blob size.

The digest is hashed while the bytes stream through, and the hash state is kept in this process
under the generation it produced. A commit here with that generation still current uses it; any
other commit (the session moved, or a chunk failed) reads the completed object back and hashes
it. Either way the blob becomes visible (its `blobs/` record is written) only after the digest
matched; a mismatch deletes the bytes.

Crash safety: the state is written last, so a process dying mid-append leaves the previous state,
whose parts and tail are intact (new tails are new keys; parts past the state's list are simply
uploaded again).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterable
from dataclasses import asdict, dataclass, field, replace

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName
from authgate.storage import s3_layout as keys
from authgate.storage.digesting import SizeLimitExceeded
from authgate.storage.s3_client import S3

_HASH_BATCH = 4 * 1024 * 1024
#: Hash states kept at once: a session finished or expired by another replica leaves its entry here,
#: so the oldest go first; a session whose state was dropped is verified by reading it back.
MAX_HASHERS = 10_000


def unknown_upload() -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN, "upload session unknown or expired; start a new upload")


@dataclass(frozen=True)
class SessionState:
    repository: str
    data: str
    multipart: str
    size: int = 0
    #: (part number, ETag, byte count) of every uploaded part, in order.
    parts: list[tuple[int, str, int]] = field(default_factory=list)
    tail: str | None = None
    tail_size: int = 0
    generation: str = ""

    def to_json(self) -> bytes:
        return json.dumps(asdict(self)).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> SessionState:
        data = json.loads(raw)
        data["parts"] = [tuple(part) for part in data["parts"]]
        return cls(**data)


class Sessions:
    """The session half of `S3BlobStore`: open, append, finish, discard."""

    def __init__(self, s3: S3, *, part_size: int, max_blob_size: int) -> None:
        self.s3 = s3
        self.part_size = part_size
        self.max_blob_size = max_blob_size
        #: upload id -> (hasher over every byte so far, the generation that state was written as).
        self.hashers: dict[str, tuple[hashlib._Hash, str]] = {}

    async def open(self, name: RepositoryName, upload_id: str) -> SessionState:
        data = keys.new_data()
        multipart = await self.s3.create_multipart(data)
        state = SessionState(name.value, data, multipart, generation=uuid.uuid4().hex)
        await self.s3.put(keys.session(upload_id), state.to_json())
        return state

    async def load(self, name: RepositoryName, upload_id: str) -> SessionState:
        raw = await self.s3.get(keys.session(upload_id), limit=4 * 1024 * 1024)
        if raw is None:
            raise unknown_upload()
        try:
            state = SessionState.from_json(raw)
        except (ValueError, TypeError, KeyError):
            raise unknown_upload() from None
        if state.repository != name.value:
            raise unknown_upload()
        return state

    async def append(self, upload_id: str, state: SessionState, body: AsyncIterable[bytes],
                     algorithm: str) -> SessionState:
        """Stream `body` onto the session; on a client disconnect what arrived is kept (resumable)."""
        cached = self.hashers.pop(upload_id, None)
        hasher = cached[0] if cached and cached[1] == state.generation and cached[0].name == algorithm else None
        if hasher is None and state.size == 0:
            hasher = hashlib.new(algorithm)
        buffer = bytearray()
        if state.tail:
            buffer += await self._read(state.tail)
        parts = list(state.parts)
        size = state.size
        sending: asyncio.Task[tuple[int, str, int]] | None = None

        async def send_part() -> None:
            nonlocal sending, buffer
            if sending is not None:
                parts.append(await sending)
            number = len(parts) + 1
            piece, buffer = bytes(buffer[:self.part_size]), buffer[self.part_size:]
            sending = asyncio.ensure_future(self._upload_part(state, number, piece))

        pending_hash = bytearray()
        failure: BaseException | None = None
        try:
            async for chunk in body:
                if size + len(chunk) > self.max_blob_size:
                    raise SizeLimitExceeded(self.max_blob_size)
                size += len(chunk)
                buffer += chunk
                if hasher is not None:
                    pending_hash += chunk
                    if len(pending_hash) >= _HASH_BATCH:
                        await asyncio.to_thread(hasher.update, bytes(pending_hash))
                        pending_hash.clear()
                while len(buffer) >= self.part_size:
                    await send_part()
        except SizeLimitExceeded:
            if sending is not None:
                await asyncio.gather(sending, return_exceptions=True)
            raise
        except Exception as exc:  # a disconnect: keep what arrived, then report the failure
            failure = exc
        if sending is not None:
            parts.append(await sending)
        if hasher is not None and pending_hash:
            hasher.update(bytes(pending_hash))
        generation = uuid.uuid4().hex
        new_tail = keys.tail(upload_id, generation) if buffer else None
        if new_tail:
            await self.s3.put(new_tail, bytes(buffer))
        updated = replace(state, size=size, parts=parts, tail=new_tail, tail_size=len(buffer), generation=generation)
        await self.s3.put(keys.session(upload_id), updated.to_json())
        if state.tail and state.tail != new_tail:
            await self.s3.delete(state.tail)
        if hasher is not None:
            self.hashers[upload_id] = (hasher, generation)
            while len(self.hashers) > MAX_HASHERS:
                del self.hashers[next(iter(self.hashers))]
        if failure is not None:
            raise failure
        return updated

    async def _upload_part(self, state: SessionState, number: int, data: bytes) -> tuple[int, str, int]:
        return number, await self.s3.upload_part(state.data, state.multipart, number, data), len(data)

    async def _read(self, key: str) -> bytes:
        data = await self.s3.get(key, limit=self.part_size)
        if data is None:
            raise unknown_upload()
        return data

    async def finish(self, upload_id: str, state: SessionState, digest: Digest) -> None:
        """Complete the multipart upload and verify `digest`; raises DIGEST_INVALID (bytes deleted)."""
        cached = self.hashers.pop(upload_id, None)
        known = None
        if cached and cached[1] == state.generation and cached[0].name == digest.algorithm:
            known = Digest(digest.algorithm, cached[0].hexdigest())
            if known != digest:
                await self.discard(upload_id, state)
                raise _mismatch(known, digest)
        if state.size == 0:
            await self.s3.abort_multipart(state.data, state.multipart)
            await self.s3.put(state.data, b"")
        else:
            parts = [(number, etag) for number, etag, _ in state.parts]
            if state.tail:
                number, etag, _ = await self._upload_part(state, len(parts) + 1, await self._read(state.tail))
                parts.append((number, etag))
            await self.s3.complete_multipart(state.data, state.multipart, parts)
        if known is None:
            actual, size = await self.hash_object(state.data, digest.algorithm)
            if actual != digest or size != state.size:
                await self.s3.delete(state.data)
                await self.forget(upload_id, state)
                raise _mismatch(actual, digest)

    async def hash_object(self, key: str, algorithm: str) -> tuple[Digest, int]:
        """Read an object back and hash it (the session moved between processes)."""
        hasher = hashlib.new(algorithm)
        size = 0
        async for chunk in self.s3.stream(key, chunk_size=_HASH_BATCH):
            await asyncio.to_thread(hasher.update, chunk)
            size += len(chunk)
        return Digest(algorithm, hasher.hexdigest()), size

    async def discard(self, upload_id: str, state: SessionState) -> None:
        """Abort the multipart upload and forget the session."""
        await self.s3.abort_multipart(state.data, state.multipart)
        await self.forget(upload_id, state)

    async def forget(self, upload_id: str, state: SessionState) -> None:
        self.hashers.pop(upload_id, None)
        if state.tail:
            await self.s3.delete(state.tail)
        await self.s3.delete(keys.session(upload_id))

    async def expire(self, max_age: float) -> list[str]:
        """Discard sessions whose state was last written more than `max_age` seconds ago."""
        cutoff = time.time() - max_age
        expired = []
        async for info in self.s3.list_objects("uploads/"):
            if not info.key.endswith("/state") or info.modified >= cutoff:
                continue
            upload_id = info.key.split("/")[1]
            raw = await self.s3.get(info.key)
            try:
                state = SessionState.from_json(raw or b"")
            except (ValueError, TypeError, KeyError):
                await self.s3.delete(info.key)
                continue
            await self.discard(upload_id, state)
            expired.append(upload_id)
        return expired


def _mismatch(actual: Digest, digest: Digest) -> RegistryError:
    return RegistryError(ErrorCode.DIGEST_INVALID, f"the uploaded content has digest {actual}, not {digest}; the "
                         "upload was discarded", detail={"digest": str(digest)})
