"""The S3 store below the HTTP layer (a real SeaweedFS): a client that disconnects mid-chunk, the
credentials the usual AWS ways (a profile), and the settings that cannot work."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from starlette.requests import ClientDisconnect

from authgate.reference import Digest, RepositoryName
from authgate.registry.embedded_s3 import check_object_store, s3_blob_store
from authgate.settings import Settings, SettingsError, load_settings
from authgate.storage.s3_client import S3
from tests.api.test_registry_s3 import bucket  # noqa: F401 - the fixture
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

pytestmark = pytest.mark.anyio
NAME = RepositoryName("alice/app")
MiB = 1024 * 1024


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def settings(seaweedfs: SeaweedFS, prefix: str, **extra: object) -> Settings:
    return Settings(**{**seaweedfs.settings(prefix), "s3_part_size": 5 * MiB, **extra})  # type: ignore[arg-type]


async def test_disconnect_mid_chunk_keeps_what_arrived(seaweedfs: SeaweedFS, bucket: str) -> None:  # noqa: F811
    data = bytes(range(256)) * (32 * 1024)  # 8 MiB: one whole part and a tail
    async with S3(settings(seaweedfs, bucket)) as s3:
        store = s3_blob_store(s3, settings(seaweedfs, bucket))
        upload = await store.start_upload(NAME)

        async def cut_off() -> AsyncIterator[bytes]:
            for n in range(0, 7 * MiB, MiB):
                yield data[n:n + MiB]
            raise ClientDisconnect()

        with pytest.raises(ClientDisconnect):
            await store.append(NAME, upload, cut_off())
        assert await store.upload_size(NAME, upload) == 7 * MiB  # resumable from there

        async def rest() -> AsyncIterator[bytes]:
            yield data[7 * MiB:]

        assert await store.append(NAME, upload, rest(), start=7 * MiB) == len(data)
        digest = Digest("sha256", hashlib.sha256(data).hexdigest())
        assert await store.commit(NAME, upload, digest) == len(data)
        assert b"".join([chunk async for chunk in store.read_blob(digest, 5 * MiB - 3, 6)]) == data[5 * MiB - 3:5 * MiB + 3]


def test_a_profile_is_used_and_a_missing_one_is_named(tmp_path: Path, seaweedfs: SeaweedFS, bucket: str,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")
    credentials = tmp_path / "credentials"
    credentials.write_text(f"[registry]\naws_access_key_id = {ACCESS_KEY}\naws_secret_access_key = {SECRET_KEY}\n")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    assert check_object_store(settings(seaweedfs, bucket, s3_profile="registry")) is None
    problem = check_object_store(settings(seaweedfs, bucket, s3_profile="nope"))
    assert problem is not None and "s3_profile 'nope'" in problem


def test_a_ca_bundle_that_is_not_there_is_named(seaweedfs: SeaweedFS, bucket: str,  # noqa: F811
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_CA_BUNDLE", "/nonexistent/ca.pem")
    problem = check_object_store(settings(seaweedfs, bucket))
    assert problem is not None and "AWS_CA_BUNDLE=/nonexistent/ca.pem" in problem


@pytest.mark.parametrize(("environ", "message"), [
    ({"AUTHGATE_STORAGE": "s3"}, "storage s3 needs s3_bucket"),
    ({"AUTHGATE_STORAGE": "s3", "AUTHGATE_S3_BUCKET": "b", "AUTHGATE_S3_PART_SIZE": "1M"}, "s3_part_size must be"),
    ({"AUTHGATE_STORAGE": "s3", "AUTHGATE_S3_BUCKET": "b", "AUTHGATE_MAX_BLOB_SIZE": "100G"},
     "max_blob_size exceeds 10,000 parts"),
    ({"AUTHGATE_STORAGE": "s3", "AUTHGATE_S3_BUCKET": "b", "AUTHGATE_UPSTREAM": "http://127.0.0.1:5001"},
     "storage s3 is for the embedded registry"),
    ({"AUTHGATE_STORAGE": "s3", "AUTHGATE_S3_BUCKET": "b", "AUTHGATE_S3_ENDPOINT": "127.0.0.1:8333"},
     "s3_endpoint must be an http:// or https:// URL"),
    ({"AUTHGATE_STORAGE": "gcs"}, "invalid value for storage"),
])
def test_settings_that_cannot_work_are_refused(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        load_settings(environ=environ)


async def test_hash_states_are_bounded_and_a_dropped_one_is_verified_by_reading_back(
        seaweedfs: SeaweedFS, bucket: str, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    from authgate.storage import s3_uploads

    monkeypatch.setattr(s3_uploads, "MAX_HASHERS", 2)
    async with S3(settings(seaweedfs, bucket)) as s3:
        store = s3_blob_store(s3, settings(seaweedfs, bucket))
        uploads = []
        for n in range(3):
            upload = await store.start_upload(NAME)

            async def body(n: int = n) -> AsyncIterator[bytes]:
                yield f"blob {n}".encode()

            await store.append(NAME, upload, body())
            uploads.append(upload)
        assert len(store.sessions.hashers) == 2 and uploads[0] not in store.sessions.hashers
        for n, upload in enumerate(uploads):
            digest = Digest("sha256", hashlib.sha256(f"blob {n}".encode()).hexdigest())
            assert await store.commit(NAME, upload, digest) == 6
            assert await store.read_blob_bytes(digest, 100) == f"blob {n}".encode()
