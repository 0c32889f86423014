"""A blob moves through the gateway in bounded pieces: authgate's memory does not grow with the
blob's size (docs/gateway.md, "Memory stays flat"). Real parts: `authgate serve` in gateway mode in
front of distribution 2.8; the blob is pushed as one streamed PATCH, as docker sends a layer, and
pulled back whole."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import AuthgateServer, Distribution

pytestmark = pytest.mark.e2e
PASSWORD = "alice-Pa55-word"
MiB = 1024 * 1024
#: Far larger than anything authgate may hold for one transfer (a few MiB of read-ahead).
BLOB_MIB = 256
#: What a gateway holding a whole blob, or even a quarter of one, would exceed.
ALLOWED_GROWTH_MIB = 48


def _peak_rss_mib(pid: int) -> float:
    """The largest peak resident set (VmHWM) of the server process and its children (workers)."""
    pids = [pid]
    for task in Path(f"/proc/{pid}/task").iterdir():
        pids += [int(child) for child in (task / "children").read_text().split()]
    peaks = []
    for each in pids:
        for line in Path(f"/proc/{each}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                peaks.append(int(line.split()[1]) / 1024)
    return max(peaks)


class _Blob:
    """`size_mib` MiB of one random MiB repeated, streamed without ever being held whole."""

    def __init__(self, size_mib: int) -> None:
        self.piece = os.urandom(MiB)
        self.size_mib = size_mib
        digest = hashlib.sha256()
        for _ in range(size_mib):
            digest.update(self.piece)
        self.digest = "sha256:" + digest.hexdigest()

    def chunks(self) -> Iterator[bytes]:
        for _ in range(self.size_mib):
            yield self.piece


def _push_and_pull(http: httpx.Client, repository: str, blob: _Blob) -> None:
    opened = http.post(f"/v2/{repository}/blobs/uploads/")
    assert opened.status_code == 202, opened.text
    patched = http.patch(opened.headers["location"], content=blob.chunks(), headers={
        "Content-Type": "application/octet-stream", "Content-Length": str(blob.size_mib * MiB)})
    assert patched.status_code == 202, patched.text
    committed = http.put(httpx.URL(patched.headers["location"]).copy_merge_params({"digest": blob.digest}))
    assert committed.status_code == 201, committed.text
    pulled = hashlib.sha256()
    size = 0
    with http.stream("GET", f"/v2/{repository}/blobs/{blob.digest}") as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            pulled.update(chunk)
            size += len(chunk)
    assert size == blob.size_mib * MiB and "sha256:" + pulled.hexdigest() == blob.digest


def test_a_large_blob_through_the_gateway_does_not_grow_memory(tmp_path: Path) -> None:
    registry = Distribution(tmp_path / "upstream")
    (tmp_path / "gateway").mkdir()
    server = AuthgateServer(tmp_path / "gateway", upstream=registry.url, bcrypt_rounds="4")
    try:
        server.start()
        assert server.daemon is not None
        server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
        token = httpx.get(f"{server.url}/token", auth=("alice", PASSWORD), params={
            "service": "authgate", "scope": "repository:alice/big:pull,push"}).json()["token"]
        with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {token}"}, timeout=300) as http:
            # A small blob first, both ways: pools, buffers and imports are in place before measuring.
            _push_and_pull(http, "alice/big", _Blob(16))
            before = _peak_rss_mib(server.daemon.process.pid)
            _push_and_pull(http, "alice/big", _Blob(BLOB_MIB))
            grown = _peak_rss_mib(server.daemon.process.pid) - before
        assert grown < ALLOWED_GROWTH_MIB, (
            f"authgate's peak RSS grew by {grown:.0f} MiB moving a {BLOB_MIB} MiB blob (from {before:.0f} MiB)")
    finally:
        server.stop()
        registry.stop()
