"""The wire to the upstream (authgate/gateway/wire.py): keep-alive connections are reused, the
connection bound holds with a clear answer, and header bytes reach the upstream as the client sent
them. Against a tiny HTTP/1.1 server on a loopback socket that counts its connections."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from tests.api.registry_support import basic
from tests.api.test_gateway_faults import gateway

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
BOB = basic("bob", "bob-pw")
BODY = b'{"name":"alice/app","tags":["v1"]}'


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Upstream:
    """Answers every request 200 with a small tag list and keeps the connection open; requests
    whose path contains `/slow/` are answered only once `release` is set."""

    def __init__(self) -> None:
        self.connections = 0
        self.heads: list[bytes] = []
        #: Which connection (1, 2, …) carried each head.
        self.carried_by: list[int] = []
        self.release = asyncio.Event()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        number = self.connections
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                self.heads.append(head)
                self.carried_by.append(number)
                if b"/slow/" in head.split(b"\r\n", 1)[0]:
                    await self.release.wait()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                             + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


@asynccontextmanager
async def upstream() -> AsyncIterator[tuple[Upstream, str]]:
    fake = Upstream()
    server = await asyncio.start_server(fake.serve, "127.0.0.1", 0)
    try:
        yield fake, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}"
    finally:
        fake.release.set()
        server.close()


async def test_requests_reuse_the_upstream_connection(tmp_path: Path) -> None:
    async with upstream() as (fake, url), gateway(tmp_path, upstream=url) as (http, _):
        for _ in range(20):
            response = await http.get("/v2/alice/app/tags/list", headers=ALICE)
            assert response.status_code == 200 and response.json()["tags"] == ["v1"]
        used = {number for head, number in zip(fake.heads, fake.carried_by) if b"/tags/list" in head}
        assert len(used) == 1  # one keep-alive connection, not one per request


async def test_a_full_pool_is_a_clear_503_and_readyz_stays_up(tmp_path: Path) -> None:
    async with upstream() as (fake, url), gateway(tmp_path, upstream=url, upstream_max_connections=1,
                                                 upstream_connect_timeout=0.3) as (http, backend):
        held = asyncio.create_task(http.get("/v2/alice/slow/tags/list", headers=ALICE))
        while not any(b"/slow/" in head for head in fake.heads):
            await asyncio.sleep(0.01)
        response = await asyncio.wait_for(http.get("/v2/bob/app/tags/list", headers=BOB), 10)
        assert response.status_code == 503 and response.json()["errors"][0]["code"] == "UNAVAILABLE"
        assert "saturated" in response.json()["errors"][0]["message"] and response.headers["retry-after"]
        assert await backend.upstream.check()  # the health check has a connection of its own
        fake.release.set()
        assert (await asyncio.wait_for(held, 10)).status_code == 200
        assert (await http.get("/v2/bob/app/tags/list", headers=BOB)).status_code == 200  # the slot came back


async def test_header_bytes_reach_the_upstream_unchanged(tmp_path: Path) -> None:
    agent = "docker/27.0 (é)".encode()
    async with upstream() as (fake, url), gateway(tmp_path, upstream=url) as (http, _):
        response = await http.get("/v2/alice/app/manifests/v1", headers=[*ALICE.items(), ("User-Agent", agent)])
        assert response.status_code == 200
    (head,) = [head for head in fake.heads if b"/manifests/" in head]
    assert b"\r\nuser-agent: " + agent + b"\r\n" in head.lower()  # (agent is lower case already)
    assert b"accept-encoding: identity" in head.lower()  # bodies are relayed raw: none may come compressed


async def test_credentials_in_the_upstream_url_are_sent_as_basic(tmp_path: Path) -> None:
    async with upstream() as (fake, url), gateway(tmp_path,
                                                 upstream=url.replace("http://", "http://gw:s3cret@")) as (http, _):
        response = await http.get("/v2/alice/app/tags/list", headers=ALICE)
        assert response.status_code == 200, response.text
    (head,) = [head for head in fake.heads if b"/tags/list" in head]
    assert b"authorization: basic z3c6cznjcmv0\r\n" in head.lower()  # base64("gw:s3cret")
