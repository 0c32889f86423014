"""Hostile input from a signed-in caller: numbers too long for `int()`, digits that are not ASCII,
JSON nested past the recursion limit. Each must be a clear 4xx (or a sane 2xx), never a 500."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.registry_support import Registry, basic, registry_client

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
#: Python refuses `int()` of more than 4300 digits (ValueError), so 5000 digits once meant a 500.
HUGE = "9" * 5000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with registry_client(tmp_path, max_manifest_size=1024 * 1024) as app:
        client = app.http
        assert (await client.put("/v2/alice/app/manifests/v1", headers={**ALICE, "Content-Type": OCI_MANIFEST},
                                 content=b"{}")).status_code == 400  # the repository stays empty; fine for these
        yield client


async def _upload(http: httpx.AsyncClient) -> str:
    return (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).headers["location"]


@pytest.mark.parametrize("n", [HUGE, "\u00b2", "\u0661"])  # superscript two and Arabic-Indic one pass isdigit()
async def test_page_size_that_int_cannot_read(http: httpx.AsyncClient, n: str) -> None:
    for path in ("/v2/_catalog", "/v2/alice/app/tags/list"):
        response = await http.get(path, params={"n": n}, headers=ALICE)
        assert response.status_code in (200, 400, 404), (path, response.status_code)
        if response.status_code == 400:
            assert response.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"


async def test_huge_page_size_is_capped_not_refused(http: httpx.AsyncClient) -> None:
    response = await http.get("/v2/_catalog", params={"n": "9" * 30}, headers=ALICE)
    assert response.status_code == 200 and response.json() == {"repositories": []}


@pytest.mark.parametrize("content_range", [f"0-{HUGE}", f"{HUGE}-{HUGE}", f"bytes 0-0/{HUGE}"])
async def test_content_range_that_int_cannot_read(http: httpx.AsyncClient, content_range: str) -> None:
    location = await _upload(http)
    response = await http.patch(location, headers={**ALICE, "Content-Range": content_range}, content=b"x")
    assert response.status_code == 416 and response.json()["errors"][0]["code"] == "RANGE_INVALID"
    assert (await http.get(location, headers=ALICE)).headers["range"] == "0-0"  # nothing was written


@pytest.mark.parametrize("content_length", [HUGE.encode(), "\u00b2".encode("latin-1")])
async def test_content_length_that_int_cannot_read(http: httpx.AsyncClient, content_length: bytes) -> None:
    location = await _upload(http)
    response = await http.patch(location, headers=[*ALICE.items(), ("Content-Length", content_length)])
    assert 400 <= response.status_code < 500 and response.json()["errors"][0]["message"]


@pytest.mark.parametrize("byte_range", [f"bytes=0-{HUGE}", f"bytes={HUGE}-", f"bytes=-{HUGE}"])
async def test_blob_range_that_int_cannot_read(http: httpx.AsyncClient, byte_range: str) -> None:
    location = await _upload(http)
    digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
    assert (await http.put(location, params={"digest": digest}, headers=ALICE, content=b"hello")).status_code == 201
    response = await http.get(f"/v2/alice/app/blobs/{digest}", headers={**ALICE, "Range": byte_range})
    assert response.status_code in (200, 206, 416), response.status_code


async def test_manifest_nested_past_the_recursion_limit(http: httpx.AsyncClient) -> None:
    depth = 100_000
    body = b'{"schemaVersion": 2, "annotations": ' + b"[" * depth + b"]" * depth + b"}"
    response = await http.put("/v2/alice/app/manifests/v1", headers={**ALICE, "Content-Type": OCI_MANIFEST},
                              content=body)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "MANIFEST_INVALID"


async def test_a_blob_named_many_times_is_checked_once(http: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
                                                       ) -> None:
    # 25 000 copies of one layer fit in 4 MiB and cost ~13 s of worker threads (two file-system
    # calls each), enough for a few pushes to starve every other request of threads.
    import json

    from authgate.storage.filesystem import FilesystemBlobStore

    calls: list[str] = []
    real_size = FilesystemBlobStore.blob_size

    async def counting_size(self: FilesystemBlobStore, name: object, digest: object) -> int | None:
        calls.append(str(digest))
        return await real_size(self, name, digest)  # type: ignore[arg-type]

    monkeypatch.setattr(FilesystemBlobStore, "blob_size", counting_size)
    location = await _upload(http)
    digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
    assert (await http.put(location, params={"digest": digest}, headers=ALICE, content=b"hello")).status_code == 201
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": 5}
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": layer, "layers": [layer] * 2000})
    response = await http.put("/v2/alice/app/manifests/v1", headers={**ALICE, "Content-Type": OCI_MANIFEST},
                              content=body.encode())
    assert response.status_code == 201
    assert calls == [digest]


async def test_knowing_a_digest_is_not_access_to_the_blob(http: httpx.AsyncClient) -> None:
    # Blobs are stored once for all repositories; bob knows the digest of a layer in alice/app.
    bob = basic("bob", "bob-pw")
    location = await _upload(http)
    digest = "sha256:2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"  # sha256("hello")
    assert (await http.put(location, params={"digest": digest}, headers=ALICE, content=b"hello")).status_code == 201
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": digest, "size": 5}
    manifest = {"schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": layer, "layers": [layer]}
    import json

    pushed = await http.put("/v2/bob/loot/manifests/v1", headers={**bob, "Content-Type": OCI_MANIFEST},
                            content=json.dumps(manifest).encode())
    assert pushed.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
    mounted = await http.post("/v2/bob/loot/blobs/uploads/", params={"mount": digest, "from": "alice/app"},
                              headers=bob)
    assert mounted.status_code == 401
    assert (await http.get(f"/v2/bob/loot/blobs/{digest}", headers=bob)).status_code == 404
    assert (await http.get(f"/v2/alice/app/blobs/{digest}", headers=bob)).status_code == 401
