"""Gateway upload sessions in the database, so a chunk may land on any replica or worker.

The upstream carries its own state in the session URL (distribution signs it; replicas sharing
storage and `http.secret` continue each other's sessions); authgate keeps beside it who opened the
session, for which repository, how many bytes it accepted, and the digest of those bytes when one
process hashed them all. Every accepted chunk bumps the record's generation with a compare and
swap, so two requests writing one session at once through two processes cannot both count: the
second is refused and the session abandoned (no client does this; the protocol is sequential).

Bounded: a subject may hold `MAX_PER_OWNER` open sessions, and every replica's maintenance loop
removes (and cancels upstream) sessions untouched for `upload_max_age`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from sqlalchemy import delete, func, select, update

from authgate.db.base import utcnow
from authgate.db.models import GatewayUpload
from authgate.db.session import Database
from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.uploads import RunningHashes, UploadSession

#: Open sessions one subject may hold; docker pushes a few layers at once, CI a few images.
MAX_PER_OWNER = 1_000
#: Expired sessions removed per sweep (each is one upstream DELETE); the rest wait for the next.
SWEEP_BATCH = 100


def _unknown() -> RegistryError:
    return RegistryError(ErrorCode.BLOB_UPLOAD_UNKNOWN,
                         "upload unknown (expired, finished, or not yours); start the upload again")


class UploadSessions:
    """The records in the database, and this process's running hashes beside them."""

    def __init__(self, db: Database, max_age: float, max_per_owner: int = MAX_PER_OWNER,
                 hashes: RunningHashes | None = None, origin: str = "") -> None:
        self.db = db
        #: `scheme://host:port` of this process's upstream. A location there is stored as its path,
        #: so replicas that reach the same registry at different addresses (each its own
        #: distribution sharing storage and `http.secret`) each continue on their own.
        self.origin = origin.rstrip("/")
        self.max_age = max_age
        self.max_per_owner = max_per_owner
        self.hashes = hashes or RunningHashes()

    async def open(self, upload_id: str, repository: str, owner: str, location: str,
                   algorithm: str = "sha256") -> UploadSession:
        """Record a new session; refused with 429 when `owner` already holds `max_per_owner`."""
        session = UploadSession(upload_id, repository, owner, location, algorithm)
        async with self.db.session() as db:
            held = await db.scalar(select(func.count()).select_from(GatewayUpload)
                                   .where(GatewayUpload.owner == owner))
            if (held or 0) >= self.max_per_owner:
                raise RegistryError(ErrorCode.TOOMANYREQUESTS, "too many uploads in progress; finish or cancel "
                                    "some, or try again later", headers={"Retry-After": "60"})
            db.add(GatewayUpload(upload_id=upload_id, repository=repository, owner=owner,
                                 location=self._stored(location),
                                 size=0, algorithm=session.algorithm, digest=session.digest, generation=0,
                                 created_at=session.created, updated_at=session.created))
        self.hashes.keep(session)
        return session

    async def get(self, upload_id: str, repository: str, owner: str) -> UploadSession:
        """The session if `owner` opened it for `repository` and it has not expired; else
        BLOB_UPLOAD_UNKNOWN (the same answer whoever's it is, so ids cannot be probed)."""
        async with self.db.session() as db:
            row = await db.get(GatewayUpload, upload_id)
        if (row is None or row.repository != repository or row.owner != owner
                or row.updated_at < utcnow() - timedelta(seconds=self.max_age)):
            raise _unknown()
        session = UploadSession(row.upload_id, row.repository, row.owner, self._here(row.location), row.algorithm,
                                size=row.size, digest=row.digest, generation=row.generation,
                                created=row.created_at)
        return self.hashes.attach(session)

    async def advance(self, session: UploadSession) -> bool:
        """Write what `session` holds now over the generation it was read at; False when another
        request wrote the session in between (then nothing is written)."""
        async with self.db.session() as db:
            result = await db.execute(
                update(GatewayUpload)
                .where(GatewayUpload.upload_id == session.upload_id,
                       GatewayUpload.generation == session.generation)
                .values(size=session.size, location=self._stored(session.location), algorithm=session.algorithm,
                        digest=session.digest, generation=session.generation + 1, updated_at=utcnow()))
            if getattr(result, "rowcount", 0) != 1:
                return False
        session.generation += 1
        self.hashes.keep(session)
        return True

    async def discard(self, session: UploadSession) -> None:
        self.hashes.drop(session.upload_id)
        async with self.db.session() as db:
            await db.execute(delete(GatewayUpload).where(GatewayUpload.upload_id == session.upload_id))

    async def expired(self) -> list[UploadSession]:
        """Remove and return sessions untouched for `max_age` (their upstream side should be
        cancelled). Replicas sweep at the same time: each session is returned to one of them."""
        cutoff = utcnow() - timedelta(seconds=self.max_age)
        async with self.db.session() as db:
            rows = (await db.scalars(select(GatewayUpload).where(GatewayUpload.updated_at < cutoff)
                                     .order_by(GatewayUpload.updated_at).limit(SWEEP_BATCH))).all()
        removed = []
        for row in rows:
            self.hashes.drop(row.upload_id)
            async with self.db.session() as db:
                result = await db.execute(delete(GatewayUpload).where(GatewayUpload.upload_id == row.upload_id,
                                                                      GatewayUpload.generation == row.generation))
            if getattr(result, "rowcount", 0) == 1:
                removed.append(UploadSession(row.upload_id, row.repository, row.owner, self._here(row.location),
                                             row.algorithm, size=row.size, generation=row.generation))
        return removed

    def _stored(self, location: str) -> str:
        if self.origin and location.startswith(self.origin + "/"):
            return location[len(self.origin):]
        return location

    def _here(self, stored: str) -> str:
        return self.origin + stored if stored.startswith("/") else stored

    @contextmanager
    def writing(self, session: UploadSession) -> Iterator[UploadSession]:
        with self.hashes.writing(session):
            yield session
