"""Upload session bookkeeping: bound to their repository, one writer at a time, bounded in number,
and a chunk counts only once the upstream accepted it."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.uploads import BodyTooLarge, Digesting, UploadSessions, digest_of


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_sessions_are_bound_to_their_repository() -> None:
    sessions = UploadSessions(max_age=60)
    sessions.open("u1", "alice/app", "http://upstream/v2/alice/app/blobs/uploads/u1")
    assert sessions.get("u1", "alice/app").upload_id == "u1"
    for upload_id, repository in [("u1", "bob/app"), ("u2", "alice/app")]:
        with pytest.raises(RegistryError) as caught:
            sessions.get(upload_id, repository)
        assert caught.value.code is ErrorCode.BLOB_UPLOAD_UNKNOWN


def test_one_writer_at_a_time() -> None:
    sessions = UploadSessions(max_age=60)
    session = sessions.open("u1", "alice/app", "loc")
    with sessions.writing(session):
        with pytest.raises(RegistryError) as caught:
            with sessions.writing(session):
                pass
        assert caught.value.status == 409
    with sessions.writing(session):
        pass


def test_full_table_forgets_the_oldest_idle_session() -> None:
    sessions = UploadSessions(max_age=60, max_sessions=2)
    first = sessions.open("u1", "r/a", "loc")
    sessions.open("u2", "r/a", "loc")
    first.busy = True
    sessions.open("u3", "r/a", "loc")
    assert {s for s in ("u1", "u2", "u3") if _known(sessions, s)} == {"u1", "u3"}
    sessions.get("u3", "r/a").busy = True
    with pytest.raises(RegistryError) as caught:
        sessions.open("u4", "r/a", "loc")
    assert caught.value.code is ErrorCode.TOOMANYREQUESTS


def test_expired_sessions_are_unknown_and_swept() -> None:
    sessions = UploadSessions(max_age=-1)
    sessions.open("u1", "r/a", "loc")
    with pytest.raises(RegistryError):
        sessions.get("u1", "r/a")
    assert [s.upload_id for s in sessions.expired()] == ["u1"] and len(sessions) == 0


def _known(sessions: UploadSessions, upload_id: str) -> bool:
    try:
        sessions.get(upload_id, "r/a")
    except RegistryError:
        return False
    return True


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_bytes_count_only_once_committed(anyio_backend: str) -> None:
    sessions = UploadSessions(max_age=60)
    session = sessions.open("u1", "r/a", "loc")
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
