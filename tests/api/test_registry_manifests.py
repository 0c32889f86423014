"""Manifests, tags, referrers and the catalog of the embedded store, in-process."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from tests.api.registry_support import Registry, basic, bearer, registry_client
from tests.api.test_registry_api import (ALICE, OCI_INDEX, OCI_MANIFEST, error_code, image_manifest, push_blob,
                                         push_image, sha)

pytestmark = pytest.mark.anyio
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[Registry]:
    async with registry_client(tmp_path, max_manifest_size=2048) as app:
        yield app


async def put(http: httpx.AsyncClient, reference: str, body: bytes, media_type: str = OCI_MANIFEST,
              repo: str = "alice/app") -> httpx.Response:
    return await http.put(f"/v2/{repo}/manifests/{reference}", content=body,
                          headers={**ALICE, "Content-Type": media_type})


async def test_push_get_by_tag_and_digest(client: Registry) -> None:
    http = client.http
    body = await push_image(http, "v1")
    digest = sha(body)
    for reference in ("v1", digest):
        got = await http.get(f"/v2/alice/app/manifests/{reference}", headers=ALICE)
        assert got.content == body
        assert got.headers["content-type"] == OCI_MANIFEST and got.headers["docker-content-digest"] == digest
        head = await http.head(f"/v2/alice/app/manifests/{reference}", headers=ALICE)
        assert head.headers["content-length"] == str(len(body)) and head.content == b""
    pushed = [e for e in (await client.events()) if e["action"] == "manifest:push"]
    assert [(e["repository"], e["reference"], e["digest"], e["size"]) for e in pushed] == [("alice/app", "v1", digest, len(body))]
    assert error_code(await http.get("/v2/alice/app/manifests/v2", headers=ALICE)) == "MANIFEST_UNKNOWN"


async def test_push_by_digest_must_match(client: Registry) -> None:
    http = client.http
    await push_blob(http, b"{}")
    body = image_manifest(b"{}")
    assert (await put(http, sha(body, "sha512"), body)).status_code == 201
    wrong = await put(http, sha(b"other"), body)
    assert error_code(wrong) == "DIGEST_INVALID"


async def test_missing_references_are_manifest_blob_unknown(client: Registry) -> None:
    http = client.http
    await push_blob(http, b"{}")
    response = await put(http, "v1", image_manifest(b"{}", b"never pushed"))
    assert response.status_code == 404 and error_code(response) == "MANIFEST_BLOB_UNKNOWN"
    assert response.json()["errors"][0]["detail"] == {"digest": sha(b"never pushed")}
    index = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [
        {"mediaType": OCI_MANIFEST, "digest": sha(b"x"), "size": 1}]}).encode()
    assert error_code(await put(http, "v1", index, OCI_INDEX)) == "MANIFEST_BLOB_UNKNOWN"
    assert error_code(await http.get("/v2/alice/app/tags/list", headers=ALICE)) == "NAME_UNKNOWN"
    assert (await client.actions())[-1] == "manifest:push:failure"


async def test_index_and_docker_list(client: Registry) -> None:
    http = client.http
    child = await push_image(http, "amd64")
    for media_type, child_type in ((OCI_INDEX, OCI_MANIFEST), (DOCKER_LIST, DOCKER_MANIFEST)):
        index = json.dumps({"schemaVersion": 2, "mediaType": media_type, "manifests": [
            {"mediaType": child_type, "digest": sha(child), "size": len(child)}]}).encode()
        assert (await put(http, "multi", index, media_type)).status_code == 201
        got = await http.get("/v2/alice/app/manifests/multi", headers=ALICE)
        assert got.headers["content-type"] == media_type


@pytest.mark.parametrize(("body", "media_type"), [
    (b"not json", OCI_MANIFEST),
    (b"[]", OCI_MANIFEST),
    (b'{"schemaVersion": 1}', OCI_MANIFEST),
    (json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}).encode(), OCI_MANIFEST),
    (b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "sha256:zz", "size": 1}}', OCI_MANIFEST),
    (b'{"schemaVersion": 2, "config": {"mediaType": "x", "digest": "' + sha(b"{}").encode() + b'", "size": -1}}',
     OCI_MANIFEST),
    (b'{"schemaVersion": 2, "layers": []}', OCI_MANIFEST),
    (b'{"schemaVersion": 2}', "application/vnd.example.unknown+json"),
])
async def test_malformed_manifests(client: Registry, body: bytes,
                                   media_type: str) -> None:
    http = client.http
    await push_blob(http, b"{}")
    response = await put(http, "v1", body, media_type)
    assert response.status_code == 400 and error_code(response) == "MANIFEST_INVALID"


async def test_oversized_manifest(client: Registry) -> None:
    response = await put(client.http, "v1", b"{" + b" " * 3000 + b"}")
    assert response.status_code == 413 and error_code(response) == "TOO_LARGE"


async def test_tag_move_and_delete(client: Registry) -> None:
    http = client.http
    first = await push_image(http, "latest", layer=b"one")
    second = await push_image(http, "latest", layer=b"two")
    moves = [e for e in (await client.events()) if e["action"] == "tag:move"]
    assert len(moves) == 1 and moves[0]["details"] == {"from": sha(first)} and moves[0]["digest"] == sha(second)
    assert (await http.delete(f"/v2/alice/app/manifests/{sha(second)}", headers=ALICE)).status_code == 202
    assert error_code(await http.get("/v2/alice/app/manifests/latest", headers=ALICE)) == "MANIFEST_UNKNOWN"
    assert (await http.get(f"/v2/alice/app/manifests/{sha(first)}", headers=ALICE)).status_code == 200
    await push_image(http, "keep", layer=b"one")
    assert (await http.delete("/v2/alice/app/manifests/keep", headers=ALICE)).status_code == 202
    assert (await http.get(f"/v2/alice/app/manifests/{sha(first)}", headers=ALICE)).status_code == 200
    assert "manifest:delete" in (await client.actions())


async def test_immutable_tags(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "rules.yaml").write_text(
        "rules:\n"
        "  - name: own\n    subjects: ['user:*']\n    repositories: ['${user}/**']\n    allow: ['*']\n"
        "  - name: releases-are-final\n    repositories: ['**']\n    immutable_tags: ['release*']\n"
    )
    async with registry_client(tmp_path, policies=policies) as app:
        await _immutable_tags(app)


async def _immutable_tags(app: Registry) -> None:
    http = app.http
    await push_image(http, "release-1", layer=b"one")
    await push_image(http, "release-1", layer=b"one")  # same digest again: not a move
    await push_blob(http, b"two")
    moved = await put(http, "release-1", image_manifest(b"{}", b"two"))
    assert moved.status_code == 403 and error_code(moved) == "DENIED"
    assert "releases-are-final" in moved.json()["errors"][0]["message"]
    assert (await http.delete("/v2/alice/app/manifests/release-1", headers=ALICE)).status_code == 403
    assert [e["reason"] for e in (await app.events()) if e["outcome"] == "failure"] == ["immutable tag", "immutable tag"]


async def test_tags_list_pagination(client: Registry) -> None:
    http = client.http
    for tag in ("c", "a", "b", "d"):
        await push_image(http, tag)
    whole = await http.get("/v2/alice/app/tags/list", headers=ALICE)
    assert whole.json() == {"name": "alice/app", "tags": ["a", "b", "c", "d"]} and "link" not in whole.headers
    page = await http.get("/v2/alice/app/tags/list?n=2", headers=ALICE)
    assert page.json()["tags"] == ["a", "b"]
    assert page.headers["link"] == '</v2/alice/app/tags/list?n=2&last=b>; rel="next"'
    rest = await http.get("/v2/alice/app/tags/list?n=2&last=b", headers=ALICE)
    assert rest.json()["tags"] == ["c", "d"] and "link" not in rest.headers
    assert error_code(await http.get("/v2/alice/app/tags/list?n=-1", headers=ALICE)) == "PAGINATION_NUMBER_INVALID"


async def test_catalog_lists_only_what_the_caller_may_pull(client: Registry) -> None:
    http = client.http
    await push_image(http, "v1", repo="alice/one")
    await push_image(http, "v1", repo="alice/two")
    bob_headers = basic("bob", "bob-pw")
    await push_blob(http, b"{}", "alice/one")
    response = await http.put("/v2/bob/x/manifests/v1", content=b"{}", headers=bob_headers)
    assert response.status_code == 400  # bob may push there; the manifest is just invalid
    token = await client.token_for("alice", ("registry", "catalog", "*"))
    listing = await http.get("/v2/_catalog", headers=bearer(token))
    assert listing.json() == {"repositories": ["alice/one", "alice/two"]}
    page = await http.get("/v2/_catalog?n=1", headers=bearer(token))
    assert page.json() == {"repositories": ["alice/one"]}
    assert page.headers["link"] == '</v2/_catalog?n=1&last=alice%2Fone>; rel="next"'
    bob = await http.get("/v2/_catalog", headers=bob_headers)
    assert bob.json() == {"repositories": []}


async def test_referrers(client: Registry) -> None:
    http = client.http
    image = await push_image(http, "v1")
    await push_blob(http, b"sig")
    signature = image_manifest(b"{}", b"sig", subject=image, artifact_type="application/vnd.example.sig")
    pushed = await put(http, sha(signature), signature)
    assert pushed.status_code == 201 and pushed.headers["oci-subject"] == sha(image)
    listing = await http.get(f"/v2/alice/app/referrers/{sha(image)}", headers=ALICE)
    assert listing.headers["content-type"] == OCI_INDEX
    assert listing.json()["manifests"] == [{"mediaType": OCI_MANIFEST, "digest": sha(signature),
                                            "size": len(signature), "artifactType": "application/vnd.example.sig"}]
    filtered = await http.get(f"/v2/alice/app/referrers/{sha(image)}?artifactType=other", headers=ALICE)
    assert filtered.json()["manifests"] == [] and filtered.headers["oci-filters-applied"] == "artifactType"
    unknown = await http.get(f"/v2/alice/app/referrers/{sha(b'unknown')}", headers=ALICE)
    assert unknown.status_code == 200 and unknown.json()["manifests"] == []
    await http.delete(f"/v2/alice/app/manifests/{sha(signature)}", headers=ALICE)
    after = await http.get(f"/v2/alice/app/referrers/{sha(image)}", headers=ALICE)
    assert after.json()["manifests"] == []


async def test_pull_audit(tmp_path: Path) -> None:
    async with registry_client(tmp_path, audit_pulls="manifests") as app:
        http = app.http
        await push_image(http, "v1")
        await http.get("/v2/alice/app/manifests/v1", headers=ALICE)
        await http.head("/v2/alice/app/manifests/v1", headers=ALICE)
        assert (await app.actions()).count("manifest:pull") == 1
