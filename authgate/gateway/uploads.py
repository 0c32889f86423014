"""An upload session as one request sees it, the running hashes this process holds, and the body
wrapper that hashes and counts what passes.

The session record lives in the database (`authgate.gateway.upload_records`), so any replica or
worker can continue it. The running hash cannot go there: hashlib cannot export a sha256 state.
So each process keeps the hash of the sessions whose bytes it saw (`RunningHashes`), tagged with
the session generation it wrote; a chunk landing on the same process continues hashing, a chunk
landing elsewhere continues without one. After each chunk the digest of everything so far is
written to the record when it is known, so an empty final `PUT` on any process can be checked
against it; where no process saw every byte, the final check is the read-back of
`authgate.gateway.readback`.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from authgate.db.base import utcnow
from authgate.errors import ErrorCode, RegistryError

#: Running hashes held at once; past it the oldest is dropped (that session is then verified by
#: reading it back), so abandoned uploads cannot grow memory without limit.
MAX_HASHES = 10_000


@dataclass(eq=False)
class UploadSession:
    """One upstream upload session: who may continue it and what has been accepted so far."""

    upload_id: str
    repository: str
    #: The subject that opened it (`user:alice`); nobody else may continue it.
    owner: str
    #: The upstream's latest URL for this session (with its signed `_state`): every step and the
    #: cancellation use it, so what a client puts in the query cannot steer the upstream.
    location: str
    #: The digest algorithm bytes are hashed with: sha256 unless the client named another before
    #: sending any (`POST ?digest=sha512:…`, or a final `PUT` carrying the whole blob).
    algorithm: str = "sha256"
    size: int = 0
    #: `algorithm:hex` of the first `size` bytes, when one process hashed them all; else None.
    digest: str | None = None
    #: Bumped by every accepted chunk: the record is written only over the generation it was read at.
    generation: int = 0
    created: datetime = field(default_factory=utcnow)
    #: This process's running hash of the first `size` bytes; None when it did not see them all.
    hasher: Any = None

    def __post_init__(self) -> None:
        if self.size == 0 and self.hasher is None:
            self._fresh()

    def _fresh(self) -> None:
        self.hasher = hashlib.new(self.algorithm)
        self.digest = f"{self.algorithm}:{self.hasher.hexdigest()}"

    def hash_with(self, algorithm: str) -> bool:
        """Hash with `algorithm` from here on; possible only before any byte passed (False then).

        One algorithm per session: hashing every upload with both sha256 and sha512 would cost
        the gateway about half its push throughput for a digest few clients use."""
        if algorithm == self.algorithm:
            return True
        if self.size:
            return False
        self.algorithm = algorithm
        self._fresh()
        return True


class RunningHashes:
    """The running hash of each session this process wrote last, and which sessions it is writing.

    A hash is good only for the generation it was kept at: when another process wrote the session
    since, the record's generation moved on and the hash here no longer covers its bytes."""

    def __init__(self, max_hashes: int = MAX_HASHES) -> None:
        self.max_hashes = max_hashes
        self._hashes: dict[str, tuple[int, Any]] = {}
        self._busy: set[str] = set()

    def __len__(self) -> int:
        return len(self._hashes)

    def attach(self, session: UploadSession) -> UploadSession:
        """Give `session` the running hash of its bytes, if this process holds it for its generation."""
        if session.size == 0:
            session.hasher = hashlib.new(session.algorithm)
            return session
        kept = self._hashes.get(session.upload_id)
        session.hasher = kept[1] if kept is not None and kept[0] == session.generation else None
        return session

    def keep(self, session: UploadSession) -> None:
        self._hashes.pop(session.upload_id, None)
        if session.hasher is None:
            return
        while len(self._hashes) >= self.max_hashes:
            del self._hashes[next(iter(self._hashes))]
        self._hashes[session.upload_id] = (session.generation, session.hasher)

    def drop(self, upload_id: str) -> None:
        self._hashes.pop(upload_id, None)

    @contextmanager
    def writing(self, session: UploadSession) -> Iterator[UploadSession]:
        """One request at a time per session in this process: the digest depends on the order
        bytes arrive in (across processes the record's generation check refuses the second)."""
        if session.upload_id in self._busy:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, "another request is writing to this upload",
                                status=409)
        self._busy.add(session.upload_id)
        try:
            yield session
        finally:
            self._busy.discard(session.upload_id)


class BodyTooLarge(Exception):
    """The upload grew past `max_blob_size`; raised inside the body stream to stop it."""


class Digesting:
    """Wraps a request body so hashing, counting and the size limit cannot be skipped.

    Works on a copy of the session's hasher: bytes count only once the upstream has accepted
    them (`commit`), so a refused or broken chunk leaves the session as it was. Without a
    hasher (the session's earlier bytes went through another process) it only counts.
    """

    def __init__(self, session: UploadSession, limit: int) -> None:
        self.hasher = session.hasher.copy() if session.hasher is not None else None
        self.base = session.size
        self.count = 0
        self.limit = limit

    async def wrap(self, body: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
        hasher = self.hasher
        async for chunk in body:
            if not chunk:
                continue
            self.count += len(chunk)
            if self.base + self.count > self.limit:
                raise BodyTooLarge()
            if hasher is not None:
                hasher.update(chunk)
            yield chunk

    @property
    def total(self) -> int:
        return self.base + self.count

    def commit(self, session: UploadSession) -> None:
        session.hasher = self.hasher
        session.size = self.total
        session.digest = f"{session.algorithm}:{self.hasher.hexdigest()}" if self.hasher is not None else None


def digest_of(session: UploadSession) -> str | None:
    """The digest of everything the session holds, if one process hashed it all."""
    return session.digest
