"""The HTTP/1.1 protocol `authgate serve` runs: request headers are bounded, whatever their shape.

uvicorn's httptools protocol keeps a request line and headers in memory however long they grow
(h11 stops at 16 KiB): one unauthenticated connection sending a 200 MB header grew the server by
~275 MB (measured against `authgate serve`). The protocol is driven here with a fake transport.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from uvicorn.config import Config
from uvicorn.server import ServerState

from authgate import http_protocol
from authgate.http_protocol import MAX_HEADER_BYTES, protocol_class


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written = b""
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += bytes(data)

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"sockname": ("127.0.0.1", 5000), "peername": ("127.0.0.1", 40000)}.get(name, default)


async def _app(scope: dict[str, object], receive: object, send: object) -> None:  # never reached
    raise AssertionError("the request must not reach the app")


def _connect(app: Any = _app) -> tuple[asyncio.Protocol, FakeTransport]:
    cls = protocol_class()
    assert not isinstance(cls, str), "httptools is installed: the bounded protocol is used"
    protocol = cls(config=Config(app=app, log_config=None), server_state=ServerState(), app_state={})  # type: ignore[call-arg]
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


@pytest.mark.parametrize("start", [
    b"GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Big: ",  # one endless header value
    b"GET /v2/" ,  # an endless URL
])
def test_endless_headers_are_refused_and_the_connection_closed(start: bytes) -> None:
    async def main() -> None:
        protocol, transport = _connect()
        protocol.data_received(start)
        for _ in range(2 * MAX_HEADER_BYTES // 65536 + 2):
            if transport.closed:
                break
            protocol.data_received(b"a" * 65536)
        assert transport.closed and transport.written.startswith(b"HTTP/1.1 400 ")

    asyncio.run(main())


def test_many_small_headers_count_too() -> None:
    async def main() -> None:
        protocol, transport = _connect()
        protocol.data_received(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        for i in range(MAX_HEADER_BYTES // 10):
            if transport.closed:
                break
            protocol.data_received(b"X-%06d: a\r\n" % i)
        assert transport.closed and transport.written.startswith(b"HTTP/1.1 400 ")

    asyncio.run(main())


def test_a_body_larger_than_the_limit_is_not_counted() -> None:
    received: list[int] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        total = 0
        while True:
            message = await receive()
            total += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        received.append(total)
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        protocol, transport = _connect(app)
        size = 2 * MAX_HEADER_BYTES
        for _ in range(2):  # keep-alive: the second request's headers count from zero
            protocol.data_received(b"PATCH /v2/a/b/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                                   b"X-Pad: %s\r\n\r\n" % (size, b"p" * (MAX_HEADER_BYTES // 2)))
            for _ in range(size // 65536):
                protocol.data_received(b"b" * 65536)
                await asyncio.sleep(0)
            for _ in range(20):
                await asyncio.sleep(0)
        assert received == [size, size] and not transport.closed
        assert transport.written.count(b"HTTP/1.1 202 ") == 2

    asyncio.run(main())


def test_headers_sent_too_slowly_close_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # Slowloris: a connection that never finishes its headers held a socket forever.
    monkeypatch.setattr(http_protocol, "HEADER_TIMEOUT", 0.05)

    async def main() -> None:
        idle, idle_transport = _connect()
        slow, slow_transport = _connect()
        slow.data_received(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n")
        await asyncio.sleep(0.3)
        assert idle_transport.closed and slow_transport.closed

    asyncio.run(main())


def test_a_slow_body_is_not_timed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http_protocol, "HEADER_TIMEOUT", 0.05)

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        while (await receive()).get("more_body"):
            pass
        await send({"type": "http.response.start", "status": 202, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        protocol, transport = _connect(app)
        protocol.data_received(b"PATCH /v2/a/b/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n")
        await asyncio.sleep(0.3)
        protocol.data_received(b"b")
        await asyncio.sleep(0.3)
        protocol.data_received(b"b")
        for _ in range(20):
            await asyncio.sleep(0)
        assert not transport.closed and transport.written.startswith(b"HTTP/1.1 202 ")

    asyncio.run(main())


def test_answered_before_the_body_ended_closes_the_connection() -> None:
    # An unauthenticated PATCH declaring a huge body gets its 401 at once; trickling the rest
    # of the body then held the connection open for ever.
    async def refuse(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 401, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def main() -> None:
        protocol, transport = _connect(refuse)
        protocol.data_received(b"PATCH /v2/a/b/blobs/uploads/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\nab")
        for _ in range(20):
            await asyncio.sleep(0)
        assert transport.written.startswith(b"HTTP/1.1 401 ") and transport.closed

    asyncio.run(main())


async def _read_all_then_202(scope: dict[str, Any], receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect" or not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 202, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _connect_shared(state: ServerState, max_connections: int, app: Any = _read_all_then_202
                    ) -> tuple[asyncio.Protocol, FakeTransport]:
    cls = protocol_class(max_connections)
    assert not isinstance(cls, str)
    protocol = cls(config=Config(app=app, log_config=None), server_state=state, app_state={})  # type: ignore[call-arg]
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


async def _settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0)


def test_a_silent_body_closes_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    # A POST /token declaring 16,000 bytes and sending one now and then held its connection for ever.
    monkeypatch.setattr(http_protocol, "BODY_IDLE_TIMEOUT", 0.1)

    async def main() -> None:
        silent, silent_transport = _connect(_read_all_then_202)
        trickle, trickle_transport = _connect(_read_all_then_202)
        for protocol in (silent, trickle):
            protocol.data_received(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 16000\r\n\r\na")
        for _ in range(10):  # one byte every 0.04 s: slow, never silent for 0.1 s
            await asyncio.sleep(0.04)
            trickle.data_received(b"a")
        assert silent_transport.closed and not silent_transport.written, "closed, nothing to answer"
        assert not trickle_transport.closed

    asyncio.run(main())


def test_an_idle_keep_alive_connection_is_not_timed_as_slow_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    # Go clients keep idle connections 90 s: closing one they are about to reuse resets their request.
    monkeypatch.setattr(http_protocol, "HEADER_TIMEOUT", 0.05)

    async def main() -> None:
        protocol, transport = _connect(_read_all_then_202)
        protocol.data_received(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
        await asyncio.sleep(0.3)
        assert transport.written.startswith(b"HTTP/1.1 202 ") and not transport.closed
        protocol.data_received(b"GET /v2/ HTTP/1.1\r\n")  # the next request starts: its headers are timed
        await asyncio.sleep(0.3)
        assert transport.closed

    asyncio.run(main())


def test_past_max_connections_the_longest_idle_is_closed_else_503() -> None:
    async def main() -> None:
        state = ServerState()
        first, first_transport = _connect_shared(state, 2)
        second, second_transport = _connect_shared(state, 2)
        for protocol in (first, second):
            protocol.data_received(b"GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n")
            await _settle()
        assert not first_transport.closed and not second_transport.closed
        third, third_transport = _connect_shared(state, 2)
        assert first_transport.closed and not second_transport.closed and not third_transport.closed
        first.connection_lost(None)
        for protocol in (second, third):  # both busy: a body is on its way
            protocol.data_received(b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\na")
        fourth, fourth_transport = _connect_shared(state, 2)
        assert fourth_transport.closed and fourth_transport.written.startswith(b"HTTP/1.1 503 ")
        assert b"retry-after: 1" in fourth_transport.written
        assert not second_transport.closed and not third_transport.closed

    asyncio.run(main())


class CountingTransport(FakeTransport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        super().write(data)


def _responder(body: bytes) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app


@pytest.mark.parametrize("method, body", [("GET", b'{"token": "t"}'), ("HEAD", b"x" * 10)])
def test_a_small_response_is_one_write(method: str, body: bytes) -> None:
    # uvicorn wrote the head and the body separately: two syscalls and two packets per manifest or token.
    async def main() -> None:
        cls = protocol_class()
        assert not isinstance(cls, str)
        protocol = cls(config=Config(app=_responder(body), log_config=None), server_state=ServerState(),  # type: ignore[call-arg]
                       app_state={})
        transport = CountingTransport()
        protocol.connection_made(transport)
        for _ in range(2):  # keep-alive: each response of the connection
            transport.writes.clear()
            protocol.data_received(f"{method} /v2/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            for _ in range(10):
                await asyncio.sleep(0)
            assert len(transport.writes) == 1, transport.writes
            assert transport.writes[0].startswith(b"HTTP/1.1 200 ")
            assert transport.writes[0].endswith(b"\r\n\r\n" + (body if method == "GET" else b""))

    asyncio.run(main())


def test_a_held_head_goes_out_at_the_end_of_the_loop_step_and_100_continue_at_once() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        transport = CountingTransport()
        wrapped = http_protocol._OneWriteResponses(transport, loop)
        wrapped.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        assert transport.writes == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        wrapped.write(b"HTTP/1.1 200 OK\r\n\r\n")
        assert len(transport.writes) == 1  # held for the body
        await asyncio.sleep(0)
        assert transport.writes[-1] == b"HTTP/1.1 200 OK\r\n\r\n"  # no body came in this step: sent alone
        wrapped.write(b"body")
        assert transport.writes[-1] == b"body"

    asyncio.run(main())
