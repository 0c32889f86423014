"""Upload sessions this process has seen, each with the running sha256 of every byte that passed.

Why in memory: hashlib cannot export a running digest, and the registry API has no way to read an
unfinished upload back, so the digest of a chunked upload exists only in the process that saw its
bytes. A chunk landing on another replica is refused there with 404 `BLOB_UPLOAD_UNKNOWN` before
anything reaches the upstream; docker, containerd and skopeo then restart that blob's upload. The
upstream never commits a blob authgate did not hash: a corrupt blob cannot result, only a restart.
Balancers can avoid restarts with affinity on the `/v2/<name>/blobs/uploads/<id>` path.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncGenerator, AsyncIterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from authgate.errors import ErrorCode, RegistryError

#: A bound on sessions held at once, so abandoned uploads cannot grow memory without limit.
MAX_SESSIONS = 10_000


@dataclass(eq=False)
class UploadSession:
    """One upstream upload session: who may continue it and what has been accepted so far."""

    upload_id: str
    repository: str
    #: The upstream's latest URL for this session (with its signed `_state`): every step and the
    #: cancellation use it, so what a client puts in the query cannot steer the upstream.
    location: str
    #: The digest algorithm bytes are hashed with: sha256 unless the client named another before
    #: sending any (`POST ?digest=sha512:…`, or a final `PUT` carrying the whole blob).
    algorithm: str = "sha256"
    hasher: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    created: float = field(default_factory=time.monotonic)
    busy: bool = False

    def hash_with(self, algorithm: str) -> bool:
        """Hash with `algorithm` from here on; possible only before any byte passed (False then).

        One algorithm per session: hashing every upload with both sha256 and sha512 would cost
        the gateway about half its push throughput for a digest few clients use."""
        if algorithm == self.algorithm:
            return True
        if self.size:
            return False
        self.algorithm, self.hasher = algorithm, hashlib.new(algorithm)
        return True


class UploadSessions:
    def __init__(self, max_age: float, max_sessions: int = MAX_SESSIONS) -> None:
        self.max_age = max_age
        self.max_sessions = max_sessions
        self._sessions: dict[str, UploadSession] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, upload_id: str, repository: str, location: str, algorithm: str = "sha256") -> UploadSession:
        """Track a new session; when full, the oldest idle one is forgotten (its client then gets
        BLOB_UPLOAD_UNKNOWN and restarts), so abandoned uploads cannot lock everyone out."""
        if len(self._sessions) >= self.max_sessions:
            oldest = next((s for s in self._sessions.values() if not s.busy), None)
            if oldest is None:
                raise RegistryError(ErrorCode.TOOMANYREQUESTS, "too many uploads in progress; try again later",
                                    headers={"Retry-After": "60"})
            del self._sessions[oldest.upload_id]
        session = UploadSession(upload_id, repository, location)
        session.hash_with(algorithm)
        self._sessions[upload_id] = session
        return session

    def get(self, upload_id: str, repository: str) -> UploadSession:
        """The session, if this process opened it for this repository; else BLOB_UPLOAD_UNKNOWN."""
        session = self._sessions.get(upload_id)
        if session is None or session.repository != repository or self._stale(session):
            raise RegistryError(
                ErrorCode.BLOB_UPLOAD_UNKNOWN,
                "upload unknown to this authgate process (expired, finished, or opened on another replica); "
                "start the upload again",
            )
        return session

    def discard(self, session: UploadSession) -> None:
        if self._sessions.get(session.upload_id) is session:
            del self._sessions[session.upload_id]

    def expired(self) -> list[UploadSession]:
        """Remove and return the sessions older than `max_age` (their upstream side should be cancelled)."""
        stale = [s for s in self._sessions.values() if self._stale(s) and not s.busy]
        for session in stale:
            del self._sessions[session.upload_id]
        return stale

    def _stale(self, session: UploadSession) -> bool:
        return time.monotonic() - session.created > self.max_age

    @contextmanager
    def writing(self, session: UploadSession) -> Iterator[UploadSession]:
        """One request at a time per session: the digest depends on the order bytes arrive in."""
        if session.busy:
            raise RegistryError(ErrorCode.BLOB_UPLOAD_INVALID, "another request is writing to this upload",
                                status=409)
        session.busy = True
        try:
            yield session
        finally:
            session.busy = False


class BodyTooLarge(Exception):
    """The upload grew past `max_blob_size`; raised inside the body stream to stop it."""


class Digesting:
    """Wraps a request body so hashing, counting and the size limit cannot be skipped.

    Works on a copy of the session's hasher: bytes count only once the upstream has accepted
    them (`commit`), so a refused or broken chunk leaves the session as it was.
    """

    def __init__(self, session: UploadSession, limit: int) -> None:
        self.hasher = session.hasher.copy()
        self.base = session.size
        self.count = 0
        self.limit = limit

    async def wrap(self, body: AsyncIterable[bytes]) -> AsyncGenerator[bytes, None]:
        async for chunk in body:
            if not chunk:
                continue
            self.count += len(chunk)
            if self.base + self.count > self.limit:
                raise BodyTooLarge()
            self.hasher.update(chunk)
            yield chunk

    @property
    def total(self) -> int:
        return self.base + self.count

    def commit(self, session: UploadSession) -> None:
        session.hasher = self.hasher
        session.size = self.total


def digest_of(session: UploadSession) -> str:
    return f"{session.algorithm}:{session.hasher.hexdigest()}"
