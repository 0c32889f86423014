"""`authgate serve` on a real socket: idle keep-alive connections and bodies the client abandons."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.processes import AuthgateServer


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AuthgateServer]:
    started = AuthgateServer(tmp_path_factory.mktemp("connections")).start()
    yield started
    started.stop()


def _request(sock: socket.socket, raw: bytes) -> bytes:
    """Send one request and read its whole (small, Content-Length) response."""
    sock.sendall(raw)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")), 0)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head


def test_a_client_idling_between_requests_keeps_its_connection(server: AuthgateServer) -> None:
    # Go's transport keeps idle connections 90 s; uvicorn closed them after 5 s, and a manifest PUT
    # sent on a connection the server was closing failed with "connection reset by peer".
    ping = b"GET /v2/ HTTP/1.1\r\nHost: localhost\r\n\r\n"
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        assert _request(sock, ping).startswith(b"HTTP/1.1 401 ")
        for idle in (6, 8):
            time.sleep(idle)
            assert _request(sock, ping).startswith(b"HTTP/1.1 401 "), f"the connection died idling {idle} s"


def test_an_abandoned_body_leaves_no_traceback(server: AuthgateServer) -> None:
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(b"POST /token HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/x-www-form-urlencoded"
                         b"\r\nContent-Length: 16000\r\n\r\ngrant_type=pass")
            time.sleep(0.2)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        assert _request(sock, b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n").startswith(b"HTTP/1.1 200 ")
    log = server.log_text()
    assert "ClientDisconnect" not in log and "Traceback" not in log
