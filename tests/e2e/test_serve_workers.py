"""`authgate serve --workers 2`: two processes on one port, one database, one data dir. The audit
chain every worker appends to stays one gap-free chain (SQLite and PostgreSQL), a push and a pull
work whichever worker answers, and a killed worker is replaced without disturbing the store."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.support.processes import AuthgateServer, Daemon, http_ok, wait_for

pytestmark = pytest.mark.e2e
PASSWORD = "alice-secret-pw"
AUTH = ("alice", PASSWORD)


def workers_of(daemon: Daemon) -> list[int]:
    """PIDs of the worker processes uvicorn spawned under `daemon`."""
    pid = daemon.process.pid
    children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    return [int(c) for c in children if b"spawn_main" in Path(f"/proc/{c}/cmdline").read_bytes()]


def start_workers(tmp_path: Path, database_url: str, count: int) -> tuple[AuthgateServer, Daemon]:
    server = AuthgateServer(tmp_path, database_url=database_url, bcrypt_rounds="4")
    server.cli("user", "add", "alice", "--password-stdin", input=PASSWORD + "\n")
    daemon = Daemon([sys.executable, "-m", "authgate", "serve", "--workers", str(count)], tmp_path / "authgate.log",
                    env=server.env)
    server.daemon = daemon
    daemon.wait_until(http_ok(f"{server.url}/readyz"), "authgate workers", 60)
    wait_for(lambda: len(workers_of(daemon)) == count, f"{count} workers", 30, daemon.log)
    return server, daemon


def token(server: AuthgateServer, n: int) -> int:
    with httpx.Client(timeout=60) as client:  # a new connection each: the kernel hands them to either worker
        response = client.get(f"{server.url}/token", auth=AUTH,
                              params={"service": "authgate", "scope": f"repository:alice/app{n}:pull"})
    return response.status_code


def push_and_pull(server: AuthgateServer, data: bytes) -> bytes:
    digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
    with httpx.Client(auth=AUTH, timeout=60) as client:
        pushed = client.post(f"{server.url}/v2/alice/app/blobs/uploads/", params={"digest": digest}, content=data)
        assert pushed.status_code == 201, pushed.text
    with httpx.Client(auth=AUTH, timeout=60) as client:
        return client.get(f"{server.url}/v2/alice/app/blobs/{digest}").content


def test_workers_share_one_audit_chain_and_one_store(tmp_path: Path, database_url: str) -> None:
    server, daemon = start_workers(tmp_path, database_url, 2)
    try:
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda n: token(server, n), range(60))) == {200}
        for n in range(6):
            assert push_and_pull(server, f"blob {n}".encode() * 1000) == f"blob {n}".encode() * 1000

        first, second = workers_of(daemon)
        os.kill(first, signal.SIGKILL)  # a crashed worker: uvicorn starts another beside the survivor
        wait_for(lambda: len(workers_of(daemon)) == 2 and first not in workers_of(daemon), "a new worker", 30,
                 daemon.log)
        assert second in workers_of(daemon)
        wait_for(http_ok(f"{server.url}/readyz"), "ready again", 30)
        with ThreadPoolExecutor(8) as pool:
            assert set(pool.map(lambda n: token(server, n), range(20))) == {200}
        assert push_and_pull(server, b"after the crash" * 1000) == b"after the crash" * 1000
    finally:
        daemon.stop()

    events = [json.loads(line) for line in server.cli(
        "audit", "list", "--action", "token:issue", "--limit", "1000", "--json").stdout.splitlines()]
    assert len(events) == 80
    verify = server.cli("audit", "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    seqs = sorted(int(e["seq"]) for e in (json.loads(line) for line in server.cli(
        "audit", "list", "--limit", "1000", "--json").stdout.splitlines()))
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))  # one chain: no gap, no fork


def test_workers_must_be_positive(tmp_path: Path) -> None:
    server = AuthgateServer(tmp_path)
    result = server.cli("serve", "--workers", "0", check=False)
    assert result.returncode == 2 and "--workers must be at least 1" in result.stderr


def test_the_default_is_one_worker_per_core(tmp_path: Path) -> None:
    from authgate.cli.workers import default_workers

    expected = default_workers()
    server = AuthgateServer(tmp_path, bcrypt_rounds="4")
    daemon = Daemon([sys.executable, "-m", "authgate", "serve"], tmp_path / "authgate.log", env=server.env)
    server.daemon = daemon
    try:
        daemon.wait_until(http_ok(f"{server.url}/readyz"), "authgate", 60)
        wait_for(lambda: f"serving with {expected} worker process" in daemon.output(), "the workers line", 30,
                 daemon.log)
        if expected > 1:
            wait_for(lambda: len(workers_of(daemon)) == expected, f"{expected} workers", 30, daemon.log)
    finally:
        daemon.stop()
