"""A session whose bytes no single authgate process hashed is committed by the upstream, then read
back and hashed by authgate before the client hears `201`. Against an upstream that commits without
checking the digest (made at the transport seam: a real distribution always checks), a blob whose
content does not match is deleted again and the client gets `DIGEST_INVALID`."""

from __future__ import annotations

import hashlib
from pathlib import Path

import httpx
import pytest

from tests.api.test_gateway_faults import ALICE, gateway

pytestmark = pytest.mark.anyio
UPLOAD = "/v2/alice/app/blobs/uploads/u1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class CarelessUpstream:
    """Keeps one upload session; commits whatever digest the PUT names, unchecked."""

    def __init__(self) -> None:
        self.received = b""
        self.blobs: dict[str, bytes] = {}
        self.requests: list[tuple[str, str]] = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        path = request.url.path
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": UPLOAD, "Range": "0-0", "Docker-Upload-UUID": "u1"})
        if request.method == "PATCH":
            self.received += await request.aread()
            return httpx.Response(202, headers={"Location": UPLOAD, "Range": f"0-{len(self.received) - 1}"})
        if request.method == "PUT":
            digest = request.url.params["digest"]
            self.blobs[digest] = self.received
            return httpx.Response(201, headers={"Location": f"/v2/alice/app/blobs/{digest}",
                                                "Docker-Content-Digest": digest})
        digest = path.rsplit("/", 1)[-1]
        if request.method == "GET" and digest in self.blobs:
            return httpx.Response(200, content=self.blobs[digest])
        if request.method == "DELETE" and digest in self.blobs:
            del self.blobs[digest]
            return httpx.Response(202)
        return httpx.Response(404)


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


async def _moved_upload(http: httpx.AsyncClient, backend: object, chunks: list[bytes], claimed: str) -> httpx.Response:
    """POST and PATCHes, the running hash lost between the chunks (as when the second chunk lands
    on another replica), then the final PUT."""
    start = await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
    location = start.headers["location"]
    for chunk in chunks:
        patched = await http.patch(location, content=chunk, headers=ALICE)
        assert patched.status_code == 202, patched.text
        location = patched.headers["location"]
        backend.sessions.hashes.drop("u1")  # type: ignore[attr-defined]
    return await http.put(str(httpx.URL(location).copy_merge_params({"digest": claimed})), headers=ALICE)


async def test_a_mismatch_the_upstream_committed_is_deleted_and_refused(tmp_path: Path) -> None:
    upstream = CarelessUpstream()
    async with gateway(tmp_path, handler=upstream) as (http, backend):  # type: ignore[arg-type]
        claimed = _digest(b"what the client meant")
        response = await _moved_upload(http, backend, [b"first part ", b"corrupted second part"], claimed)
        assert response.status_code == 400, response.text
        error = response.json()["errors"][0]
        assert error["code"] == "DIGEST_INVALID"
        assert error["detail"]["actual"] == _digest(b"first part corrupted second part")
        assert upstream.blobs == {}  # deleted again: never reachable under the claimed digest
        assert ("DELETE", f"/v2/alice/app/blobs/{claimed}") in upstream.requests


async def test_a_match_is_read_back_before_it_is_reported(tmp_path: Path) -> None:
    upstream = CarelessUpstream()
    async with gateway(tmp_path, handler=upstream) as (http, backend):  # type: ignore[arg-type]
        data = [b"first part ", b"second part"]
        response = await _moved_upload(http, backend, data, _digest(b"".join(data)))
        assert response.status_code == 201, response.text
        assert response.headers["docker-content-digest"] == _digest(b"".join(data))
        assert ("GET", f"/v2/alice/app/blobs/{_digest(b''.join(data))}") in upstream.requests
        assert upstream.blobs == {_digest(b"".join(data)): b"".join(data)}


async def test_past_the_owners_bound_the_new_session_is_refused_and_cancelled(tmp_path: Path) -> None:
    upstream = CarelessUpstream()
    async with gateway(tmp_path, handler=upstream) as (http, backend):  # type: ignore[arg-type]
        backend.sessions.max_per_owner = 1
        assert (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).status_code == 202
        await backend.sessions.discard(await backend.sessions.get("u1", "alice/app", "user:alice"))
        assert (await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)).status_code == 202
        refused = await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
        assert refused.status_code == 429 and refused.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
        assert upstream.requests[-1] == ("DELETE", UPLOAD)
