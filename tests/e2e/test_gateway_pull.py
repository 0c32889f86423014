"""Blob pulls through the gateway as a client sees them, including a client that hangs up mid-blob.

Real parts: `authgate serve` in gateway mode in front of distribution 2.8, with one upstream
connection in its pool, so a pull that left its connection (or its slot) behind would make the next
pull wait for the pool and fail with 503.
"""

from __future__ import annotations

import hashlib
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from tests.support.processes import AuthgateServer, Distribution, authgate_env, run_cli

pytestmark = pytest.mark.e2e
PASSWORD = "alice-Pa55-word"
REPOSITORY = "alice/pulls"
MiB = 1024 * 1024
BIG = os.urandom(MiB) * 12 + os.urandom(12_345)  # larger than anything authgate reads ahead
SMALL = os.urandom(3_000)  # answered whole


def _digest(blob: bytes) -> str:
    return "sha256:" + hashlib.sha256(blob).hexdigest()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AuthgateServer, dict[str, str]]]:
    workdir = tmp_path_factory.mktemp("pulls")
    registry = Distribution(workdir / "upstream")
    (workdir / "gateway").mkdir()
    server = AuthgateServer(workdir / "gateway", upstream=registry.url, bcrypt_rounds="4",
                            upstream_max_connections="1", upstream_connect_timeout="3")
    try:
        server.start()
        server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
        token = httpx.get(f"{server.url}/token", auth=("alice", PASSWORD), params={
            "service": "authgate", "scope": f"repository:{REPOSITORY}:pull,push"}).json()["token"]
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
            for blob in (BIG, SMALL):
                _push(http, blob)
        yield server, headers
    finally:
        server.stop()
        registry.stop()


def _push(http: httpx.Client, blob: bytes) -> None:
    opened = http.post(f"/v2/{REPOSITORY}/blobs/uploads/")
    assert opened.status_code == 202, opened.text
    done = http.put(httpx.URL(opened.headers["location"]).copy_merge_params({"digest": _digest(blob)}),
                    content=blob, headers={"Content-Type": "application/octet-stream"})
    assert done.status_code == 201, done.text


def _hang_up_after(server: AuthgateServer, headers: dict[str, str], path: str, received: int) -> None:
    """GET `path` on a raw connection and close it once `received` bytes of the answer came."""
    parts = urlsplit(server.url)
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        lines = [f"GET {path} HTTP/1.1", f"Host: {parts.netloc}", *(f"{k}: {v}" for k, v in headers.items())]
        sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        got = b""
        while len(got) < received:
            piece = sock.recv(65536)
            assert piece, f"authgate closed the connection after {len(got)} bytes"
            got += piece
        assert got.startswith(b"HTTP/1.1 200 ")


def test_a_client_hanging_up_mid_blob_leaves_the_upstream_pool_usable(
        gateway: tuple[AuthgateServer, dict[str, str]]) -> None:
    server, headers = gateway
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        for _ in range(3):  # one upstream connection: a slot or connection left behind would be a 503 here
            _hang_up_after(server, headers, f"/v2/{REPOSITORY}/blobs/{_digest(BIG)}", 2 * MiB)
            pulled = http.get(f"/v2/{REPOSITORY}/blobs/{_digest(BIG)}")
            assert pulled.status_code == 200, pulled.text
            assert pulled.headers["content-length"] == str(len(BIG)) and pulled.content == BIG
        small = http.get(f"/v2/{REPOSITORY}/blobs/{_digest(SMALL)}")
        assert small.status_code == 200 and small.content == SMALL
    assert "Traceback" not in server.log_text()


def test_ranges_and_head_of_a_big_blob(gateway: tuple[AuthgateServer, dict[str, str]]) -> None:
    server, headers = gateway
    url = f"/v2/{REPOSITORY}/blobs/{_digest(BIG)}"
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        head = http.head(url)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-length"] == str(len(BIG))
        assert head.headers["docker-content-digest"] == _digest(BIG)
        tail = http.get(url, headers={"Range": f"bytes={5 * MiB}-"})
        assert tail.status_code == 206 and tail.content == BIG[5 * MiB:]
        assert tail.headers["content-range"] == f"bytes {5 * MiB}-{len(BIG) - 1}/{len(BIG)}"
        middle = http.get(url, headers={"Range": "bytes=1000-1999"})
        assert middle.status_code == 206 and middle.content == BIG[1000:2000]


def test_an_upstream_over_tls_with_its_own_ca(tmp_path: Path) -> None:
    """Blobs both ways through an HTTPS upstream whose certificate only `upstream_ca` vouches for;
    without it, authgate refuses the upstream rather than trusting it."""
    certs = tmp_path / "certs"
    run_cli(authgate_env(certs), "tls", "init", "--host", "127.0.0.1")
    tls = certs / "tls"
    registry = Distribution(tmp_path / "upstream", extra_config=(
        f"  tls:\n    certificate: {tls / 'server.crt'}\n    key: {tls / 'server.key'}\n"))
    upstream = f"https://127.0.0.1:{registry.port}"
    trusting = AuthgateServer(tmp_path / "trusting", upstream=upstream, upstream_ca=str(tls / "ca.crt"),
                              bcrypt_rounds="4")
    distrusting = AuthgateServer(tmp_path / "distrusting", upstream=upstream, bcrypt_rounds="4")
    try:
        for server in (trusting, distrusting):
            server.workdir.mkdir()
            server.start()
            server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
        headers = [{"Authorization": "Bearer " + httpx.get(f"{server.url}/token", auth=("alice", PASSWORD), params={
            "service": "authgate", "scope": f"repository:{REPOSITORY}:pull,push"}).json()["token"]}
            for server in (trusting, distrusting)]
        with httpx.Client(base_url=trusting.url, headers=headers[0], timeout=60) as http:
            _push(http, BIG)
            pulled = http.get(f"/v2/{REPOSITORY}/blobs/{_digest(BIG)}")
            assert pulled.status_code == 200 and pulled.content == BIG
            ranged = http.get(f"/v2/{REPOSITORY}/blobs/{_digest(BIG)}", headers={"Range": "bytes=7-99"})
            assert ranged.status_code == 206 and ranged.content == BIG[7:100]
        refused = httpx.get(f"{distrusting.url}/v2/{REPOSITORY}/blobs/{_digest(BIG)}", headers=headers[1], timeout=60)
        assert refused.status_code == 503 and refused.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert upstream not in refused.text  # the client is not told where the upstream is
        assert "CERTIFICATE_VERIFY_FAILED" in distrusting.log_text()  # the operator is told why
    finally:
        trusting.stop()
        distrusting.stop()
        registry.stop()
