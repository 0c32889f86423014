"""The embedded registry on S3 (a real SeaweedFS): the registry API tests again on the S3 store, and
what only S3 has: sessions continued by another process, the bucket left clean on every failure,
presigned redirects, an object store that is down, wrong credentials."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from aiobotocore.session import AioSession

from authgate.app import create_app
from authgate.settings import Settings
from authgate.storage.s3_client import ObjectStoreSetupError
from tests.api.registry_support import Registry, registry_client
from tests.api.test_registry_api import *  # noqa: F403 - every API test again, on S3
from tests.api.test_registry_api import ALICE, error_code, push_blob, sha
from tests.api.test_registry_manifests import *  # noqa: F403
from tests.support.processes import authgate_env, free_port, run_cli
from tests.support.seaweedfs import ACCESS_KEY, SECRET_KEY, SeaweedFS

pytestmark = pytest.mark.anyio


@pytest.fixture
def bucket(seaweedfs: SeaweedFS, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    return seaweedfs.new_prefix()


def s3_settings(seaweedfs: SeaweedFS, bucket: str, **extra: object) -> dict[str, object]:
    """`bucket` is this test's key prefix in the session's bucket (see `SeaweedFS.new_prefix`)."""
    return {**seaweedfs.settings(bucket), **extra}


@pytest.fixture
async def client(tmp_path: Path, seaweedfs: SeaweedFS, bucket: str
                 ) -> AsyncIterator[Registry]:
    async with registry_client(tmp_path, max_blob_size=4096, max_manifest_size=2048,
                               **s3_settings(seaweedfs, bucket)) as app:
        yield app


async def bucket_keys(seaweedfs: SeaweedFS, bucket: str, prefix: str = "") -> list[str]:
    async with AioSession().create_client("s3", region_name="us-east-1", endpoint_url=seaweedfs.endpoint,
                                          aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY) as s3:
        page = await s3.list_objects_v2(Bucket=seaweedfs.BUCKET, Prefix=bucket + prefix)
        return [item["Key"][len(bucket):] for item in page.get("Contents", [])]


async def test_failed_uploads_leave_the_bucket_clean(
        client: Registry, seaweedfs: SeaweedFS, bucket: str) -> None:
    http = client.http
    assert error_code(await http.post(f"/v2/alice/app/blobs/uploads/?digest={sha(b'other')}", content=b"data",
                                      headers=ALICE)) == "DIGEST_INVALID"
    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    await http.patch(location, content=b"x" * 3000, headers=ALICE)
    assert (await http.patch(location, content=b"x" * 3000, headers=ALICE)).status_code == 413
    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    await http.patch(location, content=b"abc", headers=ALICE)
    assert (await http.delete(location, headers=ALICE)).status_code == 204
    assert await bucket_keys(seaweedfs, bucket) == []


async def test_push_stores_one_record_and_one_object(
        client: Registry, seaweedfs: SeaweedFS, bucket: str) -> None:
    http = client.http
    digest = await push_blob(http, b"layer bytes")
    await push_blob(http, b"layer bytes", "alice/other")  # the same content again: still one copy
    keys = await bucket_keys(seaweedfs, bucket)
    assert [k for k in keys if k.startswith("blobs/")] == [f"blobs/sha256/{digest[7:]}"]
    assert len([k for k in keys if k.startswith("data/")]) == 1
    assert [k for k in keys if k.startswith("uploads/")] == []


async def test_session_continues_in_another_process(tmp_path: Path,
                                                    seaweedfs: SeaweedFS, bucket: str) -> None:
    """Chunk on A, chunk on B, PUT on C: three apps that share nothing but the bucket; the digest is
    verified by reading the object back on C (A's hash state cannot travel), and a wrong one is refused."""
    settings = s3_settings(seaweedfs, bucket, s3_part_size=5 * 1024 * 1024, max_blob_size=1024**3)
    part = 5 * 1024 * 1024
    chunks = [bytes([n]) * (part + 12345) for n in range(3)]
    whole = b"".join(chunks)

    for digest, expected in ((sha(b"wrong"), 400), (sha(whole), 201)):
        async with registry_client(tmp_path / "a", **settings) as app:
            a = app.http
            start = await a.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
            location = start.headers["location"]
            first = await a.patch(location, content=chunks[0], headers=ALICE)
            assert first.headers["range"] == f"0-{len(chunks[0]) - 1}"
        async with registry_client(tmp_path / "b", **settings) as app:
            b = app.http
            second = await b.patch(location, content=chunks[1], headers={
                **ALICE, "Content-Range": f"{len(chunks[0])}-{len(chunks[0]) * 2 - 1}"})
            assert second.status_code == 202 and second.headers["range"] == f"0-{len(chunks[0]) * 2 - 1}"
        async with registry_client(tmp_path / "c", **settings) as app:
            c = app.http
            done = await c.put(f"{location}?digest={digest}", content=chunks[2], headers=ALICE)
            assert done.status_code == expected, done.text
            if expected == 400:
                assert error_code(done) == "DIGEST_INVALID"
                assert error_code(await c.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE)) == "BLOB_UNKNOWN"
            else:
                pulled = await c.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE)
                assert hashlib.sha256(pulled.content).hexdigest() == digest[7:]
    keys = await bucket_keys(seaweedfs, bucket)
    assert [k for k in keys if k.startswith("uploads/")] == []
    assert len([k for k in keys if k.startswith("data/")]) == 1  # the refused upload's bytes are gone


async def test_redirect_answers_a_presigned_url(tmp_path: Path,
                                                seaweedfs: SeaweedFS, bucket: str) -> None:
    async with registry_client(tmp_path, **s3_settings(seaweedfs, bucket, s3_redirect=True)) as app:
        http = app.http
        digest = await push_blob(http, b"redirected bytes")
        head = await http.head(f"/v2/alice/app/blobs/{digest}", headers=ALICE)
        assert head.status_code == 200 and head.headers["content-length"] == "16"
        response = await http.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE)
        assert response.status_code == 307
        location = response.headers["location"]
        assert location.startswith(seaweedfs.endpoint) and "Signature" in location
    async with httpx.AsyncClient() as plain:  # the client fetches it without authgate or credentials
        assert (await plain.get(location)).content == b"redirected bytes"
        assert (await plain.get(location.replace("Signature=", "Signature=0"))).status_code == 403


async def test_object_store_down_is_a_503_and_readyz_says_why(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str) -> None:
    async with registry_client(tmp_path, **s3_settings(seaweedfs, bucket, s3_timeout=2)) as app:
        http = app.http
        digest = await push_blob(http, b"before the outage")
        assert (await http.get("/readyz")).status_code == 200
        seaweedfs.daemon.process.send_signal(__import__("signal").SIGSTOP)  # alive but silent: the slow case
        try:
            # The pull and the push at once: each waits out its own timeouts and retries (~7 s). /readyz
            # after them, as it answers from what the requests before it met.
            pull, push = await asyncio.gather(
                http.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE),
                http.post(f"/v2/alice/app/blobs/uploads/?digest={sha(b'x')}", content=b"x", headers=ALICE))
            ready = await http.get("/readyz")
        finally:
            seaweedfs.daemon.process.send_signal(__import__("signal").SIGCONT)
        for response in (pull, push):
            assert response.status_code == 503, response.text
            assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert ready.status_code == 503 and "object store" in ready.json()["reasons"]["object_store"]
        assert (await http.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE)).content == b"before the outage"
        assert (await http.get("/readyz")).status_code == 200


@pytest.mark.parametrize("variable", ["AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID"])
async def test_wrong_credentials_stop_the_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                seaweedfs: SeaweedFS, bucket: str, variable: str) -> None:
    monkeypatch.setenv(variable, "wrong")
    app = create_app(Settings(data=tmp_path, **s3_settings(seaweedfs, bucket)))  # type: ignore[arg-type]
    with pytest.raises(ObjectStoreSetupError, match="AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"):
        async with app.router.lifespan_context(app):
            pass


async def test_missing_bucket_names_the_setting(tmp_path: Path, seaweedfs: SeaweedFS, bucket: str) -> None:
    settings = {**s3_settings(seaweedfs, bucket), "s3_bucket": "no-such-bucket"}
    app = create_app(Settings(data=tmp_path, **settings))  # type: ignore[arg-type]
    with pytest.raises(ObjectStoreSetupError, match="s3_bucket 'no-such-bucket' does not exist"):
        async with app.router.lifespan_context(app):
            pass


def test_serve_with_wrong_credentials_is_one_line_naming_the_setting(tmp_path: Path, seaweedfs: SeaweedFS) -> None:
    env = authgate_env(tmp_path / "data", **seaweedfs.settings(seaweedfs.new_prefix()))
    env.update(seaweedfs.env(), AWS_SECRET_ACCESS_KEY="not-the-secret")
    result = run_cli(env, "serve", "--port", str(free_port()), check=False)
    assert result.returncode == 1
    assert result.stderr.startswith("authgate: storage s3: the object store refused the credentials")
    assert "AWS_SECRET_ACCESS_KEY" in result.stderr and "Traceback" not in result.stderr
    assert "not-the-secret" not in result.stderr + result.stdout
