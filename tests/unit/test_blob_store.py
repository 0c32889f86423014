"""The filesystem blob store without HTTP: limits, resumed hashing, expiry and start-up recovery."""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from authgate.errors import ErrorCode, RegistryError
from authgate.reference import Digest, RepositoryName, Tag
from authgate.storage.digesting import DigestingWriter, SizeLimitExceeded
from authgate.storage.filesystem import FilesystemBlobStore
from authgate.storage.layout import Layout, write_atomic
from authgate.storage.recovery import recover

pytestmark = pytest.mark.anyio
NAME = RepositoryName("alice/app")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def digest(data: bytes, algorithm: str = "sha256") -> Digest:
    return Digest(algorithm, hashlib.new(algorithm, data).hexdigest())


def store(tmp_path: Path, max_age: int = 3600) -> FilesystemBlobStore:
    layout = Layout(tmp_path / "registry")
    layout.create()
    return FilesystemBlobStore(layout, max_blob_size=3 * 1024 * 1024, upload_max_age=max_age)


async def test_writer_hashes_counts_and_limits() -> None:
    out = io.BytesIO()
    writer = DigestingWriter(out, limit=10)
    await writer.consume(chunks(b"hello", b" ", b"you"))
    assert (out.getvalue(), writer.count, writer.digest()) == (b"hello you", 9, digest(b"hello you"))
    with pytest.raises(SizeLimitExceeded) as info:
        await DigestingWriter(io.BytesIO(), limit=10).consume(chunks(b"x" * 6, b"x" * 6))
    assert info.value.code is ErrorCode.TOO_LARGE


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
async def test_big_bodies_are_batched_and_complete(tmp_path: Path, algorithm: str) -> None:
    blobs = store(tmp_path)
    data = os.urandom(2 * 1024 * 1024 + 123)
    pieces = [data[i:i + 65536] for i in range(0, len(data), 65536)]
    size = await blobs.put_blob(NAME, digest(data, algorithm), chunks(*pieces))
    assert size == len(data)
    assert blobs.layout.blob(digest(data, algorithm)).read_bytes() == data
    read = b"".join([chunk async for chunk in blobs.read_blob(digest(data, algorithm), 5, len(data) - 10)])
    assert read == data[5:-5]


async def test_a_session_resumed_after_restart_is_rehashed(tmp_path: Path) -> None:
    first = store(tmp_path)
    upload = await first.start_upload(NAME)
    await first.append(NAME, upload, chunks(b"part one, "))
    again = store(tmp_path)  # a restart: the hash state is gone, the bytes are not
    assert await again.upload_size(NAME, upload) == 10
    await again.append(NAME, upload, chunks(b"part two"), start=10)
    assert await again.commit(NAME, upload, digest(b"part one, part two")) == 18
    assert await again.blob_size(NAME, digest(b"part one, part two")) == 18


async def test_past_the_limit_leaves_nothing(tmp_path: Path) -> None:
    blobs = store(tmp_path)
    upload = await blobs.start_upload(NAME)
    with pytest.raises(RegistryError):
        await blobs.append(NAME, upload, chunks(*[b"x" * 1024 * 1024] * 4))
    assert list(blobs.layout.uploads.iterdir()) == []


@pytest.mark.parametrize("crafted", ["..", ".", "../..", "0" * 36])
async def test_crafted_upload_ids_are_unknown(tmp_path: Path, crafted: str) -> None:
    blobs = store(tmp_path)
    for call in (blobs.upload_size(NAME, crafted), blobs.cancel(NAME, crafted)):
        with pytest.raises(RegistryError) as info:
            await call
        assert info.value.code is ErrorCode.BLOB_UPLOAD_UNKNOWN
    assert blobs.layout.blobs.is_dir()


async def test_abandoned_sessions_expire(tmp_path: Path) -> None:
    blobs = store(tmp_path, max_age=60)
    old, fresh = await blobs.start_upload(NAME), await blobs.start_upload(NAME)
    past = time.time() - 120
    os.utime(blobs.layout.upload(old) / "data", (past, past))
    assert await blobs.expire_uploads() == [old]
    assert [p.name for p in blobs.layout.uploads.iterdir()] == [fresh]


def test_recovery_empties_tmp_and_drops_dangling_tags(tmp_path: Path) -> None:
    layout = Layout(tmp_path / "registry")
    layout.create()
    (layout.tmp / "half-written").write_bytes(b"x")
    good = digest(b"{}")
    layout.blob(good).parent.mkdir(parents=True)
    layout.blob(good).write_bytes(b"{}")
    write_atomic(layout, layout.revision(NAME, good), b"application/vnd.oci.image.manifest.v1+json")
    write_atomic(layout, layout.tag(NAME, Tag("ok")), str(good).encode())
    write_atomic(layout, layout.tag(NAME, Tag("gone")), str(digest(b"missing")).encode())
    repaired = recover(layout)
    assert len(repaired) == 2
    assert list(layout.tmp.iterdir()) == []
    assert sorted(p.name for p in layout.tags(NAME).iterdir()) == ["ok"]


async def test_made_up_upload_ids_leave_no_state_behind(tmp_path: Path) -> None:
    # Every user may PATCH in their own namespace; a lock kept per made-up id (valid UUIDs,
    # or any `[A-Za-z0-9._=~-]` the route accepts) grew the process's memory one request at a time.
    import uuid

    blobs = store(tmp_path)
    for i in range(50):
        made_up = str(uuid.uuid4()) if i % 2 else f"id-{i}"
        for call in (blobs.append(NAME, made_up, chunks(b"x")), blobs.commit(NAME, made_up, digest(b"x")),
                     blobs.cancel(NAME, made_up)):
            with pytest.raises(RegistryError):
                await call
    assert blobs._locks == {} and blobs._hashers == {}
    # Another repository's real session: refused, and its lock (it may be in use) is not taken away.
    real = await blobs.start_upload(RepositoryName("bob/app"))
    with pytest.raises(RegistryError):
        await blobs.append(NAME, real, chunks(b"x"))
    assert await blobs.append(RepositoryName("bob/app"), real, chunks(b"x")) == 1
