"""Gateway mode without pinning: three `authgate serve` processes sharing one SQLite file in front
of one real docker-registry. An upload's POST, PATCHes and PUT land on three different processes
and end with the right blob; a session that moved is still verified (a corrupt chunk is refused and
nothing becomes visible upstream); only the subject that opened a session may continue it; and
`serve --workers 2` runs in gateway mode."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.balancer import on, replica
from tests.support.processes import AuthgateServer, Daemon, Distribution, http_ok

pytestmark = pytest.mark.e2e
PASSWORD = "alice-secret-pw"
ALICE = ("alice", PASSWORD)
BOB = ("bob", PASSWORD)
MiB = 1024 * 1024
POLICY = """\
rules:
  - name: own-namespace
    subjects: ["user:*"]
    repositories: ["${user}/**"]
    allow: ["*"]
  - name: team
    subjects: ["user:*"]
    repositories: ["team/**"]
    allow: [push, pull, delete]
"""


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Distribution]:
    registry = Distribution(tmp_path_factory.mktemp("upstream"))
    yield registry
    registry.stop()


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory, upstream: Distribution) -> dict[str, str]:
    database = tmp_path_factory.mktemp("db") / "authgate.db"
    policies = tmp_path_factory.mktemp("policies")  # one directory every process reads
    (policies / "registry.yaml").write_text(POLICY)
    return {"upstream": upstream.url, "database_url": f"sqlite+aiosqlite:///{database}", "bcrypt_rounds": "4",
            "policies": str(policies)}


@pytest.fixture(scope="module")
def processes(tmp_path_factory: pytest.TempPathFactory, shared: dict[str, str]) -> Iterator[list[AuthgateServer]]:
    first = replica(tmp_path_factory.mktemp("gw-a"), shared)
    servers = [first] + [replica(tmp_path_factory.mktemp(f"gw-{n}"), shared, keys_from=first) for n in "bc"]
    for user in ("alice", "bob"):
        first.cli("user", "add", user, "--password-stdin", input=PASSWORD + "\n")
    yield servers
    for server in servers:
        server.stop()


def _digest(data: bytes) -> str:
    return f"sha256:{hashlib.sha256(data).hexdigest()}"


def _upstream_has(upstream: Distribution, repository: str, digest: str) -> bool:
    return httpx.head(f"{upstream.url}/v2/{repository}/blobs/{digest}").status_code == 200


def _patch(server: AuthgateServer, location: str, chunk: bytes, offset: int) -> httpx.Response:
    response = httpx.patch(on(server, location), content=chunk, auth=ALICE, timeout=60,
                           headers={"Content-Range": f"{offset}-{offset + len(chunk) - 1}"})
    assert response.status_code == 202, response.text
    assert response.headers["range"] == f"0-{offset + len(chunk) - 1}"
    return response


def test_post_patches_and_put_on_three_processes(processes: list[AuthgateServer], upstream: Distribution) -> None:
    a, b, c = processes
    chunks = [bytes([n]) * (MiB + 4321 * n) for n in range(1, 4)]
    whole = b"".join(chunks)
    location = httpx.post(f"{a.url}/v2/alice/spread/blobs/uploads/", auth=ALICE).headers["location"]
    offset = 0
    for server, chunk in zip((b, c, a), chunks):
        location = _patch(server, location, chunk, offset).headers["location"]
        offset += len(chunk)
    status = httpx.get(on(c, location), auth=ALICE)
    assert status.status_code == 204 and status.headers["range"] == f"0-{len(whole) - 1}"
    digest = _digest(whole + b"tail")
    done = httpx.put(on(b, location), params={"digest": digest}, content=b"tail", auth=ALICE, timeout=60)
    assert done.status_code == 201, done.text
    assert done.headers["docker-content-digest"] == digest
    pulled = httpx.get(f"{c.url}/v2/alice/spread/blobs/{digest}", auth=ALICE, timeout=60)
    assert pulled.status_code == 200 and pulled.content == whole + b"tail"
    assert _upstream_has(upstream, "alice/spread", digest)


def test_one_chunk_then_put_elsewhere_is_checked_against_the_recorded_digest(
        processes: list[AuthgateServer], upstream: Distribution) -> None:
    """docker's way (POST, one PATCH with the layer, empty PUT), each on another process: the PUT's
    process checks the digest the PATCH's process recorded, before anything is committed."""
    a, b, c = processes
    data = b"layer bytes " * 1000
    location = httpx.post(f"{a.url}/v2/alice/docker-way/blobs/uploads/", auth=ALICE).headers["location"]
    location = _patch(b, location, data, 0).headers["location"]
    wrong = _digest(b"not the layer")
    refused = httpx.put(on(c, location), params={"digest": wrong}, auth=ALICE)
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    assert refused.json()["errors"][0]["detail"]["actual"] == _digest(data)
    assert not _upstream_has(upstream, "alice/docker-way", wrong)
    assert not _upstream_has(upstream, "alice/docker-way", _digest(data))


def test_a_moved_session_with_a_corrupt_chunk_is_refused(processes: list[AuthgateServer],
                                                        upstream: Distribution) -> None:
    a, b, c = processes
    good = [b"x" * MiB, b"y" * MiB]
    meant = _digest(b"".join(good))
    location = httpx.post(f"{a.url}/v2/alice/corrupt/blobs/uploads/", auth=ALICE).headers["location"]
    location = _patch(b, location, good[0], 0).headers["location"]
    corrupt = b"y" * (MiB - 1) + b"!"  # one byte flipped on the way
    location = _patch(c, location, corrupt, MiB).headers["location"]
    refused = httpx.put(on(a, location), params={"digest": meant}, auth=ALICE, timeout=60)
    assert refused.status_code == 400 and refused.json()["errors"][0]["code"] == "DIGEST_INVALID"
    for digest in (meant, _digest(good[0] + corrupt)):
        assert not _upstream_has(upstream, "alice/corrupt", digest)
    again = httpx.get(on(b, location), auth=ALICE)
    assert again.status_code == 404 and again.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"


def test_only_the_owner_continues_a_session(processes: list[AuthgateServer], upstream: Distribution) -> None:
    """bob may push to team/shared as alice may, yet not continue her session there."""
    a, b, c = processes
    location = httpx.post(f"{a.url}/v2/team/shared/blobs/uploads/", auth=ALICE).headers["location"]
    for request in (lambda: httpx.patch(on(b, location), content=b"bob's bytes", auth=BOB),
                    lambda: httpx.put(on(c, location), params={"digest": _digest(b"")}, auth=BOB),
                    lambda: httpx.get(on(b, location), auth=BOB),
                    lambda: httpx.delete(on(c, location), auth=BOB)):
        refused = request()
        assert refused.status_code == 404 and refused.json()["errors"][0]["code"] == "BLOB_UPLOAD_UNKNOWN"
    location = _patch(c, location, b"alice's bytes", 0).headers["location"]
    done = httpx.put(on(b, location), params={"digest": _digest(b"alice's bytes")}, auth=ALICE)
    assert done.status_code == 201, done.text


def test_gateway_mode_runs_several_workers(tmp_path: Path, upstream: Distribution) -> None:
    """`serve --workers 2` in gateway mode: every request on a new connection (the kernel hands
    each to either worker) and the chunked upload still ends with the right blob."""
    server = AuthgateServer(tmp_path, upstream=upstream.url, bcrypt_rounds="4")
    server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    server.daemon = Daemon([sys.executable, "-m", "authgate", "serve", "--workers", "2"], tmp_path / "authgate.log",
                           env=server.env)
    try:
        server.daemon.wait_until(http_ok(f"{server.url}/readyz"), "authgate workers", 60)
        chunks = [bytes([n]) * (256 * 1024 + n) for n in range(8)]
        location = httpx.post(f"{server.url}/v2/alice/workers/blobs/uploads/", auth=ALICE).headers["location"]
        offset = 0
        for chunk in chunks:
            location = _patch(server, location, chunk, offset).headers["location"]
            offset += len(chunk)
        digest = _digest(b"".join(chunks))
        done = httpx.put(on(server, location), params={"digest": digest}, auth=ALICE, timeout=60)
        assert done.status_code == 201, done.text
        assert httpx.get(f"{server.url}/v2/alice/workers/blobs/{digest}", auth=ALICE).content == b"".join(chunks)
    finally:
        server.stop()
