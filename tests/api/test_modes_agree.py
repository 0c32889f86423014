"""One table of cases run against both modes: embedded, and gateway in front of a real distribution.

Where the registry's rules are authgate's (pagination, numbers, upload ranges, digests), a client
must not be able to tell the modes apart, whatever the upstream itself would have answered
(distribution 2.8 ignores `n` on tag lists and `Content-Range` on chunks).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.registry_support import basic, registry_client
from tests.support.processes import Distribution

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
HUGE = "9" * 5000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    server = Distribution(tmp_path_factory.mktemp("upstream"))
    yield server
    server.stop()


@pytest.fixture(params=["embedded", "gateway"])
async def http(request: pytest.FixtureRequest, tmp_path: Path
               ) -> AsyncIterator[httpx.AsyncClient]:
    settings: dict[str, Any] = {}
    if request.param == "gateway":
        settings["upstream"] = request.getfixturevalue("upstream").url
    async with registry_client(tmp_path, **settings) as app:
        client = app.http
        yield client


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _sha512(data: bytes) -> str:
    return "sha512:" + hashlib.sha512(data).hexdigest()


async def _push(http: httpx.AsyncClient, repository: str, tags: list[str]) -> None:
    config = b"{}"
    pushed = await http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": _sha256(config)},
                             content=config, headers=ALICE)
    assert pushed.status_code == 201, pushed.text
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [],
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": _sha256(config), "size": 2},
    }).encode()
    for tag in tags:
        response = await http.put(f"/v2/{repository}/manifests/{tag}", content=manifest,
                                  headers={**ALICE, "Content-Type": OCI_MANIFEST})
        assert response.status_code == 201, response.text


@pytest.fixture
async def listed(http: httpx.AsyncClient) -> httpx.AsyncClient:
    """alice/list-a with tags t1..t3, alice/list-b and alice/list-c (alice sees only alice/…)."""
    await _push(http, "alice/list-a", ["t1", "t2", "t3"])
    for repository in ("alice/list-b", "alice/list-c"):
        await _push(http, repository, ["t1"])
    return http


A, B, C = "alice/list-a", "alice/list-b", "alice/list-c"
NEXT = 'rel="next"'


@pytest.mark.parametrize(("params", "status", "expected", "link"), [
    ({}, 200, [A, B, C], None),  # the default page is 1000 in both modes
    ({"n": "0"}, 200, [], None),
    ({"n": "1"}, 200, [A], f"</v2/_catalog?n=1&last=alice%2Flist-a>; {NEXT}"),
    ({"n": "2", "last": A}, 200, [B, C], None),
    ({"last": B}, 200, [C], None),
    ({"n": "0001"}, 200, [A], f"</v2/_catalog?n=1&last=alice%2Flist-a>; {NEXT}"),
    ({"n": "9" * 30}, 200, [A, B, C], None),
    ({"n": HUGE}, 200, [A, B, C], None),
    ({"n": ""}, 400, "PAGINATION_NUMBER_INVALID", None),
    ({"n": "\u00b2"}, 400, "PAGINATION_NUMBER_INVALID", None),  # passes str.isdigit(); int() refuses it
    ({"n": "\u0661"}, 400, "PAGINATION_NUMBER_INVALID", None),
    ({"n": "-1"}, 400, "PAGINATION_NUMBER_INVALID", None),
    ({"n": "1e3"}, 400, "PAGINATION_NUMBER_INVALID", None),
])
async def test_catalog_pages(listed: httpx.AsyncClient, params: dict[str, str], status: int, expected: Any,
                             link: str | None) -> None:
    response = await listed.get("/v2/_catalog", params=params, headers=ALICE)
    assert response.status_code == status, response.text
    if status == 200:
        names = [name for name in response.json()["repositories"] if name.startswith("alice/list-")]
        assert names == expected
        assert response.headers.get("link") == link
    else:
        assert response.json()["errors"][0]["code"] == expected


@pytest.mark.parametrize(("params", "status", "expected", "link"), [
    ({}, 200, ["t1", "t2", "t3"], None),
    ({"n": "0"}, 200, [], None),
    ({"n": "2"}, 200, ["t1", "t2"], f"</v2/alice/list-a/tags/list?n=2&last=t2>; {NEXT}"),
    ({"n": "2", "last": "t2"}, 200, ["t3"], None),
    ({"last": "t1"}, 200, ["t2", "t3"], None),
    ({"n": "9" * 30}, 200, ["t1", "t2", "t3"], None),
    ({"n": "\u00b2"}, 400, "PAGINATION_NUMBER_INVALID", None),
    ({"n": "x"}, 400, "PAGINATION_NUMBER_INVALID", None),
])
async def test_tag_list_pages(listed: httpx.AsyncClient, params: dict[str, str], status: int, expected: Any,
                              link: str | None) -> None:
    response = await listed.get(f"/v2/{A}/tags/list", params=params, headers=ALICE)
    assert response.status_code == status, response.text
    if status == 200:
        assert response.json() == {"name": A, "tags": expected}
        assert response.headers.get("link") == link
    else:
        assert response.json()["errors"][0]["code"] == expected


async def test_tag_list_of_an_unknown_repository(http: httpx.AsyncClient) -> None:
    response = await http.get("/v2/alice/never-pushed/tags/list", headers=ALICE)
    assert response.status_code == 404 and response.json()["errors"][0]["code"] == "NAME_UNKNOWN"


# -- uploads (bob's namespace, so the catalog cases above see none of it) ---------------------

async def _start(http: httpx.AsyncClient, repository: str = "bob/uploads") -> str:
    response = await http.post(f"/v2/{repository}/blobs/uploads/", headers=BOB)
    assert response.status_code == 202, response.text
    return str(response.headers["location"])


async def _patch(http: httpx.AsyncClient, location: str, data: bytes, content_range: str | None
                 ) -> httpx.Response:
    headers = {**BOB, "Content-Type": "application/octet-stream"}
    if content_range is not None:
        headers["Content-Range"] = content_range
    return await http.patch(location, content=data, headers=headers)


def _with_digest(location: str, digest: str) -> str:
    return str(httpx.URL(location).copy_merge_params({"digest": digest}))


async def test_a_chunk_out_of_order_is_416(http: httpx.AsyncClient) -> None:
    location = await _start(http)
    response = await _patch(http, location, b"0123456789", "10-19")
    assert response.status_code == 416 and response.json()["errors"][0]["code"] == "RANGE_INVALID"
    assert response.headers["range"] == "0-0"
    assert (await http.get(location, headers=BOB)).headers["range"] == "0-0"  # nothing was appended


async def test_a_retried_chunk_is_416_not_appended_twice(http: httpx.AsyncClient) -> None:
    location = await _start(http)
    first = await _patch(http, location, b"0123456789", "0-9")
    assert first.status_code == 202 and first.headers["range"] == "0-9"
    location = first.headers["location"]
    retried = await _patch(http, location, b"0123456789", "0-9")
    assert retried.status_code == 416 and retried.json()["errors"][0]["code"] == "RANGE_INVALID"
    assert retried.headers["range"] == "0-9"
    second = await _patch(http, location, b"abc", "10-12")
    assert second.status_code == 202 and second.headers["range"] == "0-12"
    done = await http.put(_with_digest(second.headers["location"], _sha256(b"0123456789abc")), headers=BOB)
    assert done.status_code == 201, done.text


@pytest.mark.parametrize(("content_range", "status", "code"), [
    ("abc", 416, "RANGE_INVALID"),
    ("5-2", 416, "RANGE_INVALID"),
    (f"0-{HUGE}", 416, "RANGE_INVALID"),
    ("0-\u00b2", 416, "RANGE_INVALID"),
    ("0-3", 400, "SIZE_INVALID"),  # four bytes said, ten sent
])
async def test_bad_content_ranges(http: httpx.AsyncClient, content_range: str, status: int, code: str) -> None:
    location = await _start(http)
    response = await http.patch(location, content=b"0123456789", headers=[
        *BOB.items(), ("Content-Range", content_range.encode("utf-8"))])
    assert response.status_code == status and response.json()["errors"][0]["code"] == code


@pytest.mark.parametrize("content_length", [HUGE.encode(), "\u00b2".encode("latin-1"), b"12x"])
async def test_content_length_that_is_not_a_number(http: httpx.AsyncClient, content_length: bytes) -> None:
    location = await _start(http)
    response = await http.patch(location, headers=[*BOB.items(), ("Content-Length", content_length)])
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "SIZE_INVALID"


async def test_sha512_monolithic(http: httpx.AsyncClient) -> None:
    data = b"a blob named by its sha512" * 100
    response = await http.post("/v2/bob/sha512/blobs/uploads/", params={"digest": _sha512(data)}, content=data,
                               headers=BOB)
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == _sha512(data)
    pulled = await http.get(f"/v2/bob/sha512/blobs/{_sha512(data)}", headers=BOB)
    assert pulled.status_code == 200 and pulled.content == data


async def test_sha512_post_then_put(http: httpx.AsyncClient) -> None:
    data = b"put in one request" * 100
    location = await _start(http, "bob/sha512")
    response = await http.put(_with_digest(location, _sha512(data)), content=data, headers=BOB)
    assert response.status_code == 201, response.text
    assert response.headers["docker-content-digest"] == _sha512(data)


async def test_sha512_chunked(http: httpx.AsyncClient) -> None:
    """The algorithm is named only by the final PUT, after the chunks passed."""
    chunks = [b"first chunk " * 500, b"second chunk " * 300, b"last"]
    data = b"".join(chunks)
    location = await _start(http, "bob/sha512")
    offset = 0
    for chunk in chunks[:-1]:
        response = await _patch(http, location, chunk, f"{offset}-{offset + len(chunk) - 1}")
        assert response.status_code == 202, response.text
        offset += len(chunk)
        location = response.headers["location"]
    done = await http.put(_with_digest(location, _sha512(data)), content=chunks[-1], headers=BOB)
    assert done.status_code == 201, done.text
    assert done.headers["docker-content-digest"] == _sha512(data)
    pulled = await http.get(f"/v2/bob/sha512/blobs/{_sha512(data)}", headers=BOB)
    assert pulled.status_code == 200 and pulled.content == data
    wrong = await _start(http, "bob/sha512")
    assert (await _patch(http, wrong, b"abc", "0-2")).status_code == 202
    refused = await http.put(_with_digest(wrong, _sha512(b"abd")), headers=BOB)
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert (await http.head(f"/v2/bob/sha512/blobs/{_sha512(b'abd')}", headers=BOB)).status_code == 404


async def test_a_wrong_sha512_is_refused(http: httpx.AsyncClient) -> None:
    data = b"the real bytes"
    response = await http.post("/v2/bob/sha512/blobs/uploads/", params={"digest": _sha512(b"other bytes")},
                               content=data, headers=BOB)
    assert response.status_code == 400 and response.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert (await http.head(f"/v2/bob/sha512/blobs/{_sha512(data)}", headers=BOB)).status_code == 404


# -- headers that are not ASCII (Starlette reads them as latin-1; httpx once refused to send them) ---

@pytest.mark.parametrize("name", ["User-Agent", "Accept", "If-None-Match"])
async def test_non_ascii_header_on_a_manifest_read(http: httpx.AsyncClient, name: str) -> None:
    await _push(http, "alice/headers", ["v1"])
    response = await http.get("/v2/alice/headers/manifests/v1", headers=[*ALICE.items(), (name, "é".encode())])
    assert response.status_code in (200, 304, 400, 404, 406), response.text


async def test_non_ascii_headers_on_blob_and_upload(http: httpx.AsyncClient) -> None:
    agent = ("User-Agent", "é".encode())
    data = b"bytes"
    pushed = await http.post("/v2/bob/headers/blobs/uploads/", params={"digest": _sha256(data)}, content=data,
                             headers=[*BOB.items(), agent, ("Content-Type", "é".encode())])
    assert pushed.status_code == 201, pushed.text
    pulled = await http.get(f"/v2/bob/headers/blobs/{_sha256(data)}", headers=[*BOB.items(), agent])
    assert pulled.status_code == 200 and pulled.content == data
    ranged = await http.get(f"/v2/bob/headers/blobs/{_sha256(data)}",
                            headers=[*BOB.items(), agent, ("Range", "bytes=é-".encode())])
    assert ranged.status_code in (200, 206, 416)
    manifest = await http.put("/v2/bob/headers/manifests/v1", content=b"{}",
                              headers=[*BOB.items(), agent, ("Content-Type", "é".encode())])
    assert 400 <= manifest.status_code < 500


# -- referrers and OCI-Subject (distribution 2.8 has neither: the gateway answers from its index) ---

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
EMPTY = "application/vnd.oci.empty.v1+json"
SBOM = "application/spdx+json"
SIGNATURE = "application/vnd.dev.cosign.artifact.sig.v1+json"


async def _put(http: httpx.AsyncClient, repository: str, reference: str, document: dict[str, Any]
               ) -> httpx.Response:
    return await http.put(f"/v2/{repository}/manifests/{reference}", content=json.dumps(document).encode(),
                          headers={**ALICE, "Content-Type": str(document["mediaType"])})


async def _subject_and_referrers(http: httpx.AsyncClient, repository: str = "alice/refs"
                                 ) -> tuple[str, dict[str, str]]:
    """An image tagged v1, an SBOM and a signature referring to it (pushed by digest, as oras and
    cosign do); returns the image's digest and {artifact type: referrer digest}."""
    await _push(http, repository, ["v1"])
    subject = (await http.head(f"/v2/{repository}/manifests/v1", headers={**ALICE, "Accept": OCI_MANIFEST}))
    subject_digest = subject.headers["docker-content-digest"]
    empty = b"{}"
    assert (await http.post(f"/v2/{repository}/blobs/uploads/", params={"digest": _sha256(empty)}, content=empty,
                            headers=ALICE)).status_code == 201
    descriptor = {"mediaType": OCI_MANIFEST, "digest": subject_digest, "size": int(subject.headers["content-length"])}
    made = {}
    for artifact_type, annotations in ((SBOM, {"org.example.kind": "sbom"}), (SIGNATURE, None)):
        document: dict[str, Any] = {
            "schemaVersion": 2, "mediaType": OCI_MANIFEST, "artifactType": artifact_type,
            "config": {"mediaType": EMPTY, "digest": _sha256(empty), "size": 2},
            "layers": [{"mediaType": EMPTY, "digest": _sha256(empty), "size": 2}], "subject": descriptor,
        }
        if annotations:
            document["annotations"] = annotations
        body = json.dumps(document).encode()
        response = await _put(http, repository, _sha256(body), document)
        assert response.status_code == 201, response.text
        assert response.headers["oci-subject"] == subject_digest
        assert response.headers["docker-content-digest"] == _sha256(body)
        made[artifact_type] = _sha256(body)
    return subject_digest, made


async def test_referrers_list_what_refers_to_a_manifest(http: httpx.AsyncClient) -> None:
    subject, made = await _subject_and_referrers(http)
    response = await http.get(f"/v2/alice/refs/referrers/{subject}", headers=ALICE)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == OCI_INDEX
    assert "oci-filters-applied" not in response.headers
    index = response.json()
    assert index["schemaVersion"] == 2 and index["mediaType"] == OCI_INDEX
    listed = {entry["digest"]: entry for entry in index["manifests"]}
    assert [entry["digest"] for entry in index["manifests"]] == sorted(made.values())
    sbom = listed[made[SBOM]]
    assert sbom["mediaType"] == OCI_MANIFEST and sbom["artifactType"] == SBOM
    assert sbom["annotations"] == {"org.example.kind": "sbom"}
    assert sbom["size"] == len((await http.get(f"/v2/alice/refs/manifests/{made[SBOM]}", headers={
        **ALICE, "Accept": OCI_MANIFEST})).content)
    assert "annotations" not in listed[made[SIGNATURE]]


@pytest.mark.parametrize(("artifact_type", "expected"), [(SBOM, [SBOM]), (SIGNATURE, [SIGNATURE]),
                                                         ("application/x-nothing", [])])
async def test_referrers_filtered_by_artifact_type(http: httpx.AsyncClient, artifact_type: str,
                                                   expected: list[str]) -> None:
    subject, _made = await _subject_and_referrers(http)
    response = await http.get(f"/v2/alice/refs/referrers/{subject}", params={"artifactType": artifact_type},
                              headers=ALICE)
    assert response.status_code == 200, response.text
    assert response.headers["oci-filters-applied"] == "artifactType"
    assert [entry["artifactType"] for entry in response.json()["manifests"]] == expected


async def test_referrers_of_an_unknown_digest_or_repository_are_an_empty_index(http: httpx.AsyncClient) -> None:
    for repository in ("alice/refs", "alice/never-pushed"):
        response = await http.get(f"/v2/{repository}/referrers/{_sha256(b'nothing refers to this')}",
                                  headers=ALICE)
        assert response.status_code == 200, response.text
        assert response.json() == {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []}


async def test_referrers_are_per_repository(http: httpx.AsyncClient) -> None:
    subject, _made = await _subject_and_referrers(http, "alice/refs-a")
    await _push(http, "alice/refs-b", ["v1"])  # the same image, nothing refers to it here
    response = await http.get(f"/v2/alice/refs-b/referrers/{subject}", headers=ALICE)
    assert response.json()["manifests"] == []


async def test_a_deleted_referrer_is_no_longer_listed(http: httpx.AsyncClient) -> None:
    subject, made = await _subject_and_referrers(http)
    deleted = await http.delete(f"/v2/alice/refs/manifests/{made[SBOM]}", headers=ALICE)
    assert deleted.status_code == 202, deleted.text
    response = await http.get(f"/v2/alice/refs/referrers/{subject}", headers=ALICE)
    assert [entry["digest"] for entry in response.json()["manifests"]] == [made[SIGNATURE]]


async def test_an_index_can_refer_and_a_manifest_without_subject_says_nothing(http: httpx.AsyncClient) -> None:
    subject, _made = await _subject_and_referrers(http)
    plain = await _put(http, "alice/refs", "plain", {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": []})
    assert plain.status_code == 201 and "oci-subject" not in plain.headers
    document = {"schemaVersion": 2, "mediaType": OCI_INDEX, "artifactType": "application/x-bundle",
                "manifests": [], "subject": {"mediaType": OCI_MANIFEST, "digest": subject, "size": 1}}
    response = await _put(http, "alice/refs", "bundle", document)
    assert response.status_code == 201 and response.headers["oci-subject"] == subject
    listed = (await http.get(f"/v2/alice/refs/referrers/{subject}", params={"artifactType": "application/x-bundle"},
                             headers=ALICE)).json()["manifests"]
    assert listed == [{"mediaType": OCI_INDEX, "digest": response.headers["docker-content-digest"],
                       "size": len(json.dumps(document).encode()), "artifactType": "application/x-bundle"}]


@pytest.mark.parametrize(("path", "status", "code"), [
    ("alice/refs/referrers/sha256:abc", 400, "DIGEST_INVALID"),
    ("alice/refs/referrers/nonsense", 400, "DIGEST_INVALID"),
])
async def test_referrers_with_a_bad_digest(http: httpx.AsyncClient, path: str, status: int, code: str) -> None:
    response = await http.get(f"/v2/{path}", headers=ALICE)
    assert response.status_code == status and response.json()["errors"][0]["code"] == code


async def test_referrers_of_a_repository_one_cannot_pull(http: httpx.AsyncClient) -> None:
    subject, _made = await _subject_and_referrers(http)
    response = await http.get(f"/v2/alice/refs/referrers/{subject}", headers=BOB)
    assert response.status_code in (401, 403) and response.json()["errors"][0]["code"] in ("UNAUTHORIZED", "DENIED")
