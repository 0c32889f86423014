"""The OCI distribution API of the embedded store, in-process: every route, the protocol edge cases,
and every bad input answered with a 4xx in the OCI format and nothing half-written."""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.registry_support import Registry, basic, registry_client

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Registry]:
    async with registry_client(tmp_path, max_blob_size=4096, max_manifest_size=2048) as app:
        yield app


def sha(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


async def push_blob(http: httpx.AsyncClient, data: bytes, repo: str = "alice/app") -> str:
    response = await http.post(f"/v2/{repo}/blobs/uploads/?digest={sha(data)}", content=data, headers=ALICE)
    assert response.status_code == 201, response.text
    return sha(data)


def image_manifest(config: bytes, *layers: bytes, subject: bytes | None = None,
                   artifact_type: str | None = None) -> bytes:
    document: dict[str, object] = {
        "schemaVersion": 2, "mediaType": OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": sha(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": sha(layer), "size": len(layer)}
                   for layer in layers],
    }
    if subject is not None:
        document["subject"] = {"mediaType": OCI_MANIFEST, "digest": sha(subject), "size": len(subject)}
    if artifact_type:
        document["artifactType"] = artifact_type
    return json.dumps(document).encode()


async def push_image(http: httpx.AsyncClient, tag: str = "v1", repo: str = "alice/app", layer: bytes = b"layer"
                     ) -> bytes:
    await push_blob(http, b"{}", repo)
    await push_blob(http, layer, repo)
    body = image_manifest(b"{}", layer)
    response = await http.put(f"/v2/{repo}/manifests/{tag}", content=body,
                              headers={**ALICE, "Content-Type": OCI_MANIFEST})
    assert response.status_code == 201, response.text
    return body


def error_code(response: httpx.Response) -> str:
    assert 400 <= response.status_code < 500, response.status_code
    code: str = response.json()["errors"][0]["code"]
    return code


def store_files(tmp_path: Path, part: str) -> list[Path]:
    return [p for p in (tmp_path / "data" / "registry" / part).rglob("*") if p.is_file()]


# -- blobs and uploads ------------------------------------------------------------------------------

async def test_monolithic_push_then_get_head_range(client: Registry) -> None:
    http = client.http
    data = b"0123456789"
    digest = await push_blob(http, data)
    got = await http.get(f"/v2/alice/app/blobs/{digest}", headers=ALICE)
    assert got.content == data and got.headers["docker-content-digest"] == digest
    head = await http.head(f"/v2/alice/app/blobs/{digest}", headers=ALICE)
    assert head.status_code == 200 and head.headers["content-length"] == "10" and head.content == b""
    part = await http.get(f"/v2/alice/app/blobs/{digest}", headers={**ALICE, "Range": "bytes=2-4"})
    assert part.status_code == 206 and part.content == b"234"
    assert part.headers["content-range"] == "bytes 2-4/10"
    suffix = await http.get(f"/v2/alice/app/blobs/{digest}", headers={**ALICE, "Range": "bytes=-3"})
    assert suffix.content == b"789"
    for bad in ("bytes=10-", "bytes=5-2", "items=0-1", "bytes=0-1,3-4"):
        response = await http.get(f"/v2/alice/app/blobs/{digest}", headers={**ALICE, "Range": bad})
        assert response.status_code == 416 and response.headers["content-range"] == "bytes */10", bad
    assert (await client.actions()) == ["blob:push"] and (await client.events())[0]["size"] == 10


async def test_blob_is_per_repository_and_mount_links_it(client: Registry) -> None:
    http = client.http
    digest = await push_blob(http, b"shared", "alice/a")
    assert error_code(await http.get(f"/v2/alice/b/blobs/{digest}", headers=ALICE)) == "BLOB_UNKNOWN"
    mounted = await http.post(f"/v2/alice/b/blobs/uploads/?mount={digest}&from=alice/a", headers=ALICE)
    assert mounted.status_code == 201 and mounted.headers["location"] == f"/v2/alice/b/blobs/{digest}"
    assert (await http.get(f"/v2/alice/b/blobs/{digest}", headers=ALICE)).content == b"shared"
    # a source that does not have it: an ordinary upload session instead
    fallback = await http.post(f"/v2/alice/c/blobs/uploads/?mount={sha(b'nope')}&from=alice/a", headers=ALICE)
    assert fallback.status_code == 202 and "docker-upload-uuid" in fallback.headers


async def test_chunked_upload_resumable_status_and_out_of_order(
        client: Registry, tmp_path: Path) -> None:
    http = client.http
    started = await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
    assert started.status_code == 202 and started.headers["range"] == "0-0"
    location = started.headers["location"]
    first = await http.patch(location, content=b"hello ", headers={**ALICE, "Content-Range": "0-5"})
    assert first.status_code == 202 and first.headers["range"] == "0-5"
    out_of_order = await http.patch(location, content=b"xx", headers={**ALICE, "Content-Range": "10-11"})
    assert out_of_order.status_code == 416 and out_of_order.headers["range"] == "0-5"
    status = await http.get(location, headers=ALICE)
    assert status.status_code == 204 and status.headers["range"] == "0-5"
    streamed = await http.patch(location, content=b"world", headers=ALICE)  # no Content-Range: streamed
    assert streamed.headers["range"] == "0-10"
    done = await http.put(f"{location}?digest={sha(b'hello world!', 'sha512')}", content=b"!", headers=ALICE)
    assert done.status_code == 201, done.text
    assert (await http.get(done.headers["location"], headers=ALICE)).content == b"hello world!"
    assert error_code(await http.get(location, headers=ALICE)) == "BLOB_UPLOAD_UNKNOWN"
    assert store_files(tmp_path, "uploads") == []


async def test_digest_mismatch_aborts_and_leaves_nothing(
        client: Registry, tmp_path: Path) -> None:
    http = client.http
    monolithic = await http.post(f"/v2/alice/app/blobs/uploads/?digest={sha(b'other')}", content=b"data",
                                 headers=ALICE)
    assert monolithic.status_code == 400 and error_code(monolithic) == "DIGEST_INVALID"
    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    await http.patch(location, content=b"data", headers=ALICE)
    put = await http.put(f"{location}?digest={sha(b'other')}", headers=ALICE)
    assert error_code(put) == "DIGEST_INVALID"
    assert error_code(await http.get(location, headers=ALICE)) == "BLOB_UPLOAD_UNKNOWN"
    assert store_files(tmp_path, "blobs") == [] and store_files(tmp_path, "uploads") == []
    assert [e["reason"] for e in (await client.events())] == ["digest mismatch", "digest mismatch"]
    assert (await client.actions()) == ["blob:push:failure", "blob:push:failure"]


async def test_oversized_blob_is_refused_and_leaves_nothing(
        client: Registry, tmp_path: Path) -> None:
    http = client.http
    big = b"x" * 5000
    declared = await http.post(f"/v2/alice/app/blobs/uploads/?digest={sha(big)}", content=big, headers=ALICE)
    assert declared.status_code == 413 and error_code(declared) == "TOO_LARGE"

    async def undeclared() -> AsyncIterator[bytes]:  # chunked: no Content-Length to check up front
        for _ in range(5):
            yield b"x" * 1000

    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    streamed = await http.patch(location, content=undeclared(), headers=ALICE)
    assert streamed.status_code == 413
    assert error_code(await http.get(location, headers=ALICE)) == "BLOB_UPLOAD_UNKNOWN"
    assert store_files(tmp_path, "blobs") == [] and store_files(tmp_path, "uploads") == []


async def test_upload_cancel_and_foreign_session(client: Registry) -> None:
    http = client.http
    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    other_repo = location.replace("alice/app", "alice/other")
    assert error_code(await http.get(other_repo, headers=ALICE)) == "BLOB_UPLOAD_UNKNOWN"
    assert (await http.delete(location, headers=ALICE)).status_code == 204
    assert error_code(await http.delete(location, headers=ALICE)) == "BLOB_UPLOAD_UNKNOWN"
    for crafted in ("%2E%2E", "~", "a.b"):
        response = await http.delete(f"/v2/alice/app/blobs/uploads/{crafted}", headers=ALICE)
        assert response.status_code == 404
    assert (await http.get("/healthz")).status_code == 200


@pytest.mark.parametrize(("headers", "query", "code"), [
    ({"Content-Range": "abc"}, "", "RANGE_INVALID"),
    ({"Content-Range": "5-2"}, "", "RANGE_INVALID"),
    ({"Content-Length": "3", "Content-Range": "0-9"}, "", "SIZE_INVALID"),
])
async def test_bad_chunks(client: Registry, headers: dict[str, str], query: str,
                          code: str) -> None:
    http = client.http
    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    response = await http.patch(location + query, content=b"abc", headers={**ALICE, **headers})
    assert error_code(response) == code


@pytest.mark.parametrize("digest", ["", "sha256:zz", "md5:" + "0" * 32, "sha256:" + "A" * 64])
async def test_bad_digest_on_put(client: Registry, digest: str) -> None:
    http = client.http
    location = (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]
    assert error_code(await http.put(f"{location}?digest={digest}", content=b"a", headers=ALICE)) == "DIGEST_INVALID"


async def test_blob_delete(client: Registry) -> None:
    http = client.http
    digest = await push_blob(http, b"gone")
    assert (await http.delete(f"/v2/alice/app/blobs/{digest}", headers=ALICE)).status_code == 202
    assert (await http.head(f"/v2/alice/app/blobs/{digest}", headers=ALICE)).status_code == 404
    assert error_code(await http.delete(f"/v2/alice/app/blobs/{digest}", headers=ALICE)) == "BLOB_UNKNOWN"
    assert (await client.actions()) == ["blob:push", "blob:delete"]


@pytest.mark.parametrize(("method", "path", "headers", "body"), [
    ("GET", "/v2/" + "a" * 300 + "/tags/list", {}, b""),
    ("GET", "/v2/alice/app/manifests/" + "t" * 200, {}, b""),
    ("GET", "/v2/alice/app/manifests/sha256:" + "0" * 63, {}, b""),
    ("GET", "/v2/alice/app/blobs/sha512:" + "0" * 64, {}, b""),
    ("GET", "/v2/alice/app/blobs/sha256:" + "0" * 64, {"Range": "bytes=abc"}, b""),
    ("GET", "/v2/alice/app%00/tags/list", {}, b""),
    ("GET", "/v2/alice/APP/tags/list", {}, b""),
    ("GET", "/v2/alice/app/tags/list?n=abc", {}, b""),
    ("GET", "/v2/_catalog?n=1e9", {}, b""),
    ("POST", "/v2/alice/app/blobs/uploads/?digest=nope", {}, b"x"),
    ("PUT", "/v2/alice/app/manifests/v1", {"Content-Type": OCI_MANIFEST}, b"\xff\xfe"),
    ("PUT", "/v2/alice/app/manifests/v1", {"Content-Type": OCI_INDEX}, b'{"schemaVersion": 2, "manifests": [1]}'),
    ("PUT", "/v2/alice/app/manifests/v1", {"Content-Type": OCI_MANIFEST},
     b'{"schemaVersion": 2, "config": {}, "layers": {}}'),
    ("PUT", "/v2/alice/app/manifests/v1", {"Content-Type": OCI_MANIFEST}, b'{"schemaVersion": 2, "subject": 7}'),
    ("PATCH", "/v2/alice/app/blobs/uploads/00000000-0000-0000-0000-000000000000", {}, b"x"),
    ("PUT", "/v2/alice/app/blobs/uploads/00000000-0000-0000-0000-000000000000?digest=sha256:" + "0" * 64, {}, b""),
    ("DELETE", "/v2/alice/app/manifests/sha256:" + "0" * 64, {}, b""),
    ("GET", "/v2/alice/app/referrers/latest", {}, b""),
])
async def test_bad_input_is_a_clear_4xx(client: Registry, method: str, path: str,
                                        headers: dict[str, str], body: bytes) -> None:
    http = client.http
    await push_blob(http, b"{}")
    response = await http.request(method, path, headers={**ALICE, **headers}, content=body)
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.json()["errors"][0]["message"]
