"""Gateway upload sessions: records in the database bound to their repository and owner, written
only over the generation they were read at, bounded in number and age; running hashes kept per
process only for the generation they cover; a chunk counts only once the upstream accepted it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from authgate.db.base import utcnow
from authgate.db.models import GatewayUpload
from authgate.db.session import Database
from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.upload_records import UploadSessions
from authgate.gateway.uploads import BodyTooLarge, Digesting, RunningHashes, UploadSession, digest_of

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url)
    await database.upgrade()
    yield database
    await database.close()


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


async def _write(sessions: UploadSessions, session: UploadSession, data: bytes) -> bool:
    digesting = Digesting(session, limit=1 << 20)
    _ = [c async for c in digesting.wrap(_chunks(data))]
    digesting.commit(session)
    return await sessions.advance(session)


async def _unknown(sessions: UploadSessions, upload_id: str, repository: str, owner: str) -> bool:
    try:
        await sessions.get(upload_id, repository, owner)
    except RegistryError as error:
        assert error.code is ErrorCode.BLOB_UPLOAD_UNKNOWN and error.status == 404
        return True
    return False


async def test_a_session_is_bound_to_its_repository_and_owner(db: Database) -> None:
    sessions = UploadSessions(db, max_age=60)
    await sessions.open("u1", "alice/app", "user:alice", "http://upstream/v2/alice/app/blobs/uploads/u1")
    assert (await sessions.get("u1", "alice/app", "user:alice")).location.endswith("/u1")
    assert await _unknown(sessions, "u1", "bob/app", "user:alice")
    assert await _unknown(sessions, "u1", "alice/app", "user:bob")
    assert await _unknown(sessions, "u2", "alice/app", "user:alice")


async def test_another_process_continues_without_the_hash_but_with_the_digest(db: Database) -> None:
    """Process A writes a chunk: B (its own running hashes) reads the record with A's digest of the
    bytes so far, but no hash to continue; A itself still continues hashing."""
    a, b = UploadSessions(db, max_age=60), UploadSessions(db, max_age=60)
    opened = await a.open("u1", "r/a", "user:alice", "loc")
    assert await _write(a, opened, b"abc")
    on_b = await b.get("u1", "r/a", "user:alice")
    assert (on_b.size, on_b.generation, on_b.hasher) == (3, 1, None)
    assert digest_of(on_b) == "sha256:" + hashlib.sha256(b"abc").hexdigest()
    assert await _write(b, on_b, b"def")
    assert digest_of(on_b) is None  # nobody saw all six bytes
    back_on_a = await a.get("u1", "r/a", "user:alice")
    assert (back_on_a.size, back_on_a.hasher, digest_of(back_on_a)) == (6, None, None)  # A's hash is stale


async def test_two_writers_of_one_generation_cannot_both_count(db: Database) -> None:
    a, b = UploadSessions(db, max_age=60), UploadSessions(db, max_age=60)
    await a.open("u1", "r/a", "user:alice", "loc")
    first, second = await a.get("u1", "r/a", "user:alice"), await b.get("u1", "r/a", "user:alice")
    assert await _write(a, first, b"one")
    assert not await _write(b, second, b"two")
    assert (await b.get("u1", "r/a", "user:alice")).size == 3


async def test_one_writer_at_a_time_in_a_process(db: Database) -> None:
    sessions = UploadSessions(db, max_age=60)
    session = await sessions.open("u1", "r/a", "user:alice", "loc")
    with sessions.writing(session):
        with pytest.raises(RegistryError) as caught:
            with sessions.writing(await sessions.get("u1", "r/a", "user:alice")):
                pass
        assert caught.value.status == 409
    with sessions.writing(session):
        pass


async def test_an_owner_holds_a_bounded_number_of_sessions(db: Database) -> None:
    sessions = UploadSessions(db, max_age=60, max_per_owner=2)
    await sessions.open("u1", "r/a", "user:alice", "loc")
    second = await sessions.open("u2", "r/a", "user:alice", "loc")
    with pytest.raises(RegistryError) as caught:
        await sessions.open("u3", "r/a", "user:alice", "loc")
    assert caught.value.code is ErrorCode.TOOMANYREQUESTS
    await sessions.open("u3", "r/a", "user:bob", "loc")  # others are not held up
    await sessions.discard(second)
    await sessions.open("u4", "r/a", "user:alice", "loc")


async def test_untouched_sessions_expire_and_are_swept_once(db: Database) -> None:
    a, b = UploadSessions(db, max_age=60), UploadSessions(db, max_age=60)
    await a.open("old", "r/a", "user:alice", "loc-old")
    await a.open("new", "r/a", "user:alice", "loc-new")
    async with db.session() as session:
        await session.execute(update(GatewayUpload).where(GatewayUpload.upload_id == "old")
                              .values(updated_at=utcnow() - timedelta(seconds=61)))
    assert await _unknown(a, "old", "r/a", "user:alice")
    assert [s.location for s in await a.expired()] == ["loc-old"]
    assert await b.expired() == []  # a second replica sweeping finds nothing left to cancel
    assert (await b.get("new", "r/a", "user:alice")).location == "loc-new"


def test_running_hashes_are_bounded() -> None:
    hashes = RunningHashes(max_hashes=2)
    for name in ("u1", "u2", "u3"):
        session = UploadSession(name, "r/a", "user:alice", "loc", size=1, hasher=hashlib.sha256(b"x"))
        hashes.keep(session)
    assert len(hashes) == 2
    assert hashes.attach(UploadSession("u1", "r/a", "user:alice", "loc", size=1)).hasher is None
    assert hashes.attach(UploadSession("u3", "r/a", "user:alice", "loc", size=1)).hasher is not None


async def test_bytes_count_only_once_committed() -> None:
    session = UploadSession("u1", "r/a", "user:alice", "loc")
    refused = Digesting(session, limit=100)
    assert b"".join([c async for c in refused.wrap(_chunks(b"lost"))]) == b"lost"
    accepted = Digesting(session, limit=100)
    _ = [c async for c in accepted.wrap(_chunks(b"ab", b"", b"c"))]
    accepted.commit(session)
    assert (session.size, digest_of(session)) == (3, "sha256:" + hashlib.sha256(b"abc").hexdigest())
    too_big = Digesting(session, limit=5)
    with pytest.raises(BodyTooLarge):
        _ = [c async for c in too_big.wrap(_chunks(b"xyz"))]
    assert session.size == 3


async def test_each_replica_continues_at_its_own_upstream_address(db: Database) -> None:
    """Two replicas reaching one registry at two addresses (each its own distribution on shared
    storage): the session continues at the address of the replica that has it."""
    a = UploadSessions(db, max_age=60, origin="http://10.0.0.1:5000")
    b = UploadSessions(db, max_age=60, origin="http://10.0.0.2:5000")
    await a.open("u1", "r/a", "user:alice", "http://10.0.0.1:5000/v2/r/a/blobs/uploads/u1?_state=s")
    assert (await b.get("u1", "r/a", "user:alice")).location == "http://10.0.0.2:5000/v2/r/a/blobs/uploads/u1?_state=s"
    await a.open("u2", "r/a", "user:alice", "https://storage.example/elsewhere")
    assert (await b.get("u2", "r/a", "user:alice")).location == "https://storage.example/elsewhere"
