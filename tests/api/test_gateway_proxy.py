"""Gateway mode through HTTP, in-process, against a real distribution as the upstream.

What a client sees: uploads hashed on the way through (a wrong digest never reaches the upstream's
blob namespace), manifests and blobs round-trip, upstream addresses never leak, the catalog is
filtered by permission, and a chunk for an upload session authgate never opened is refused before
it reaches the upstream.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.registry_support import Registry, basic, registry_client
from tests.support.processes import Distribution

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    server = Distribution(tmp_path_factory.mktemp("upstream"))
    yield server
    server.stop()


@pytest.fixture
async def gateway(tmp_path: Path, registry: Distribution
                  ) -> AsyncIterator[Registry]:
    async with registry_client(tmp_path, upstream=registry.url) as app:
        yield app


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _upstream_has_blob(registry: Distribution, repository: str, digest: str) -> bool:
    return httpx.head(f"{registry.url}/v2/{repository}/blobs/{digest}").status_code == 200


def _no_upstream_address(response: httpx.Response, registry: Distribution) -> None:
    for name, value in response.headers.items():
        assert f"127.0.0.1:{registry.port}" not in value, (name, value)


async def _chunked_push(http: httpx.AsyncClient, repository: str, chunks: list[bytes], digest: str,
                        headers: dict[str, str]) -> httpx.Response:
    start = await http.post(f"/v2/{repository}/blobs/uploads/", headers=headers)
    assert start.status_code == 202, start.text
    location = start.headers["location"]
    offset = 0
    for chunk in chunks:
        patch = await http.patch(location, content=chunk, headers={
            **headers, "Content-Range": f"{offset}-{offset + len(chunk) - 1}", "Content-Type": "application/octet-stream",
        })
        assert patch.status_code == 202, patch.text
        offset += len(chunk)
        assert patch.headers["range"] == f"0-{offset - 1}"
        location = patch.headers["location"]
    return await http.put(_with_digest(location, digest), headers=headers)


def _with_digest(location: str, digest: str) -> str:
    """Append `digest=` to an upload URL, keeping its query (httpx `params=` would replace it)."""
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


async def test_chunked_push_is_hashed_committed_and_audited(
        gateway: Registry, registry: Distribution) -> None:
    http = gateway.http
    chunks = [b"a" * 70_000, b"b" * 50_000, b"c" * 3]
    data = b"".join(chunks)
    response = await _chunked_push(http, "alice/chunked", chunks, _digest(data), ALICE)
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == _digest(data)
    assert response.headers["location"] == f"/v2/alice/chunked/blobs/{_digest(data)}"
    _no_upstream_address(response, registry)
    assert _upstream_has_blob(registry, "alice/chunked", _digest(data))
    pushed = [e for e in (await gateway.events()) if e["action"] == "blob:push"]
    assert [(e["digest"], e["size"], e["repository"], e["actor"]) for e in pushed] == [
        (_digest(data), len(data), "alice/chunked", "user:alice")]
    pulled = await http.get(f"/v2/alice/chunked/blobs/{_digest(data)}", headers=ALICE)
    assert pulled.status_code == 200 and pulled.content == data
    ranged = await http.get(f"/v2/alice/chunked/blobs/{_digest(data)}", headers={**ALICE, "Range": "bytes=5-9"})
    assert ranged.status_code == 206 and ranged.content == data[5:10]
    head = await http.head(f"/v2/alice/chunked/blobs/{_digest(data)}", headers=ALICE)
    assert head.status_code == 200 and head.headers["content-length"] == str(len(data))


async def test_wrong_digest_is_refused_and_never_committed(
        gateway: Registry, registry: Distribution) -> None:
    http = gateway.http
    data = b"the real content"
    claimed = _digest(b"what the client claims")
    response = await _chunked_push(http, "alice/tampered", [data], claimed, ALICE)
    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert not _upstream_has_blob(registry, "alice/tampered", claimed)
    assert not _upstream_has_blob(registry, "alice/tampered", _digest(data))
    assert [(e["action"], e["outcome"], e["reason"]) for e in (await gateway.events())] == [("blob:push:failure", "failure", "digest mismatch")]


async def test_monolithic_post_and_final_chunk_put(
        gateway: Registry, registry: Distribution) -> None:
    http = gateway.http
    data = b"monolithic" * 1000
    response = await http.post("/v2/alice/mono/blobs/uploads/", params={"digest": _digest(data)}, content=data,
                               headers={**ALICE, "Content-Type": "application/octet-stream"})
    assert response.status_code == 201, response.text
    assert _upstream_has_blob(registry, "alice/mono", _digest(data))
    wrong = await http.post("/v2/alice/mono/blobs/uploads/", params={"digest": _digest(b"x")}, content=b"y" * 10,
                            headers=ALICE)
    assert wrong.status_code == 400 and not _upstream_has_blob(registry, "alice/mono", _digest(b"y" * 10))
    start = await http.post("/v2/alice/mono/blobs/uploads/", headers=ALICE)
    last = b"final chunk in the PUT"
    put = await http.put(_with_digest(start.headers["location"], _digest(last)), content=last, headers=ALICE)
    assert put.status_code == 201, put.text
    assert _upstream_has_blob(registry, "alice/mono", _digest(last))


async def test_manifest_round_trip_is_audited_with_its_digest(
        gateway: Registry, registry: Distribution) -> None:
    http = gateway.http
    config = b"{}"
    layer = b"layer bytes"
    for blob in (config, layer):
        pushed = await http.post("/v2/alice/web/blobs/uploads/", params={"digest": _digest(blob)}, content=blob,
                                 headers=ALICE)
        assert pushed.status_code == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}],
    }).encode()
    media = "application/vnd.oci.image.manifest.v1+json"
    put = await http.put("/v2/alice/web/manifests/v1", content=manifest, headers={**ALICE, "Content-Type": media})
    assert put.status_code == 201, put.text
    assert put.headers["docker-content-digest"] == _digest(manifest)
    _no_upstream_address(put, registry)
    event = [e for e in (await gateway.events()) if e["action"] == "manifest:push"][0]
    assert (event["digest"], event["reference"], event["size"]) == (_digest(manifest), "v1", len(manifest))
    got = await http.get("/v2/alice/web/manifests/v1", headers={**ALICE, "Accept": media})
    assert got.status_code == 200 and got.content == manifest and got.headers["content-type"] == media
    tags = await http.get("/v2/alice/web/tags/list", headers=ALICE)
    assert tags.json() == {"name": "alice/web", "tags": ["v1"]}
    mismatch = await http.put(f"/v2/alice/web/manifests/{_digest(b'other')}", content=manifest,
                              headers={**ALICE, "Content-Type": media})
    assert mismatch.status_code == 400 and mismatch.json()["errors"][0]["code"] == "DIGEST_INVALID"


async def test_catalog_shows_only_what_the_caller_may_pull(
        gateway: Registry, registry: Distribution) -> None:
    http = gateway.http
    for repository, who in [("alice/one", ALICE), ("alice/two", ALICE), ("bob/secret", BOB)]:
        response = await http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": _digest(b"c")},
                                   content=b"c", headers=who)
        assert response.status_code == 201
    catalog = (await http.get("/v2/_catalog", headers=ALICE)).json()["repositories"]
    assert "bob/secret" not in catalog and {"alice/one", "alice/two"} <= set(catalog)
    assert all(name.startswith("alice/") for name in catalog)
    first = await http.get("/v2/_catalog", params={"n": "1"}, headers=ALICE)
    assert len(first.json()["repositories"]) == 1
    link = first.headers["link"]
    assert link.startswith("</v2/_catalog?n=1&last=alice%2F") and 'rel="next"' in link
    rest = await http.get(link[1:link.index(">")], headers=ALICE)
    assert rest.json()["repositories"] == catalog[1:2]
    bad = await http.get("/v2/_catalog", params={"n": "-1"}, headers=ALICE)
    assert bad.status_code == 400 and bad.json()["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"


async def test_an_upload_authgate_never_opened_is_unknown(gateway: Registry, registry: Distribution) -> None:
    """A session opened on the upstream directly (no record in authgate's database) is refused with
    BLOB_UPLOAD_UNKNOWN and nothing is forwarded, so no unhashed byte reaches the upstream that way."""
    http = gateway.http
    direct = httpx.post(f"{registry.url}/v2/alice/replica/blobs/uploads/")
    assert direct.status_code == 202
    path = httpx.URL(direct.headers["location"]).raw_path.decode()
    data = b"chunk that must not reach the upstream"
    response = await http.patch(path, content=data, headers=ALICE)
    assert response.status_code == 404
    assert response.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    status = httpx.get(direct.headers["location"])
    assert status.status_code == 204 and status.headers["range"] == "0-0"
    put = await http.put(_with_digest(path, _digest(data)), headers=ALICE)
    assert put.status_code == 404 and not _upstream_has_blob(registry, "alice/replica", _digest(data))


async def test_denied_requests_never_reach_the_upstream(
        gateway: Registry, registry: Distribution) -> None:
    http = gateway.http
    response = await http.post("/v2/alice/private/blobs/uploads/", params={"digest": _digest(b"z")},
                               content=b"z", headers=BOB)
    assert response.status_code == 401
    assert (await http.get("/v2/alice/private/tags/list", headers=BOB)).status_code == 401
    assert "alice/private" not in registry.daemon.output()


async def _push_manifest(http: httpx.AsyncClient, repository: str, reference: str, layer: bytes) -> httpx.Response:
    config = b"{}"
    for blob in (config, layer):
        pushed = await http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": _digest(blob)}, content=blob,
                                 headers=ALICE)
        assert pushed.status_code == 201
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _digest(config), "size": 2},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": _digest(layer),
                    "size": len(layer)}],
    }).encode()
    return await http.put(f"/v2/{repository}/manifests/{reference}", content=manifest,
                          headers={**ALICE, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})


async def test_immutable_tags_hold_in_gateway_mode(tmp_path: Path,
                                                   registry: Distribution) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "rules.yaml").write_text(
        "rules:\n"
        "  - name: own\n    subjects: ['user:*']\n    repositories: ['${user}/**']\n    allow: ['*']\n"
        "  - name: frozen\n    repositories: ['alice/frozen']\n    immutable_tags: ['v*']\n"
    )
    async with registry_client(tmp_path, upstream=registry.url, policies=policies) as app:
        http = app.http
        first = await _push_manifest(http, "alice/frozen", "v1", b"one")
        assert first.status_code == 201, first.text
        moved = await _push_manifest(http, "alice/frozen", "v1", b"two")
        assert moved.status_code == 403 and moved.json()["errors"][0]["code"] == "DENIED"
        assert (await _push_manifest(http, "alice/frozen", "v1", b"one")).status_code == 201  # same content: fine
        digest = first.headers["docker-content-digest"]
        head = await http.head("/v2/alice/frozen/manifests/v1", headers={
            **ALICE, "Accept": "application/vnd.oci.image.manifest.v1+json"})
        assert head.headers["docker-content-digest"] == digest
        refused = await http.delete(f"/v2/alice/frozen/manifests/{digest}", headers=ALICE)
        assert refused.status_code == 403
        assert (await _push_manifest(http, "alice/frozen", "latest", b"one")).status_code == 201
        assert (await _push_manifest(http, "alice/frozen", "latest", b"two")).status_code == 201
        assert [e["details"] for e in (await app.events()) if e["action"] == "tag:move"] == [{"from": digest}]
        assert ("manifest:push:failure", "immutable tag") in [(e["action"], e["reason"]) for e in (await app.events())]
        assert ("manifest:delete:failure", "immutable tag") in [(e["action"], e["reason"]) for e in (await app.events())]


async def test_locations_use_the_public_url_when_set(tmp_path: Path,
                                                     registry: Distribution) -> None:
    async with registry_client(tmp_path, upstream=registry.url,
                               public_url="https://registry.example.test") as app:
        http = app.http
        start = await http.post("/v2/alice/public/blobs/uploads/", headers=ALICE)
        assert start.status_code == 202
        assert start.headers["location"].startswith("https://registry.example.test/v2/alice/public/blobs/uploads/")
        _no_upstream_address(start, registry)


async def test_cross_repository_mount(gateway: Registry,
                                      registry: Distribution) -> None:
    http = gateway.http
    data = b"shared base layer"
    pushed = await http.post("/v2/alice/base/blobs/uploads/", params={"digest": _digest(data)}, content=data,
                             headers=ALICE)
    assert pushed.status_code == 201
    mounted = await http.post("/v2/alice/derived/blobs/uploads/",
                              params={"mount": _digest(data), "from": "alice/base"}, headers=ALICE)
    assert mounted.status_code == 201 and mounted.headers["location"].startswith("/v2/alice/derived/blobs/")
    assert _upstream_has_blob(registry, "alice/derived", _digest(data))
    assert [(e["action"], e["details"]) for e in (await gateway.events()) if e["action"] == "blob:mount"] == [
        ("blob:mount", {"from": "alice/base"})]
    # an unknown blob: the registry opens an ordinary session instead, which the gateway tracks
    fallback = await http.post("/v2/alice/derived/blobs/uploads/",
                               params={"mount": _digest(b"nope"), "from": "alice/base"}, headers=ALICE)
    assert fallback.status_code == 202
    put = await http.put(_with_digest(fallback.headers["location"], _digest(b"nope")), content=b"nope",
                         headers=ALICE)
    assert put.status_code == 201
