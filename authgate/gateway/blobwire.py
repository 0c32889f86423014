"""A lean wire for blob downloads, as an httpx transport: the client API, errors and pooling of
everything else stay httpx's.

Why: httpcore parses bodies with h11, which copies every byte about four times on its way through;
on a pull that doubles authgate's CPU per byte. A blob `GET` is the largest and simplest exchange
(a `Content-Length` body), so it gets its own connection (setup costs ~0.1 ms on a LAN against a
multi-MiB transfer) whose bytes are handed on exactly as the kernel gave them, with flow control.
Anything unusual (no `Content-Length`, chunked) is closed and repeated on the pooled transport: a
GET is safe to repeat.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from collections.abc import AsyncIterator
from typing import cast

import httpx

from authgate.registry.numbers import decimal

_HEAD_LIMIT = 64 * 1024
_READ_SIZE = 1024 * 1024
#: Bytes buffered from the upstream before reading pauses (flow control; memory stays flat).
_HIGH_WATER = 4 * 1024 * 1024
#: Marks a response whose body comes from the lean wire, which already reads ahead (flow-controlled
#: up to `_HIGH_WATER`): a second read-ahead stage would only add a task hop per chunk.
LEAN_WIRE = "authgate.lean_wire"
_SKIP_HEADERS = frozenset({b"host", b"connection", b"keep-alive", b"accept-encoding", b"transfer-encoding", b"te"})


class _Wire(asyncio.Protocol):
    """Received chunks in a queue, reading paused past `_HIGH_WATER`."""

    def __init__(self) -> None:
        self.chunks: collections.deque[bytes] = collections.deque()
        self.buffered = 0
        self.closed: Exception | None = None
        self.eof = False
        self._waiter: asyncio.Future[None] | None = None
        self._paused = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same methods
        self.transport = cast(asyncio.Transport, transport)
        if hasattr(transport, "max_size"):
            # asyncio's selector transport reads at most 256 KiB per recv: 4 times the per-chunk
            # work (wake-ups, awaits, sends) of 1 MiB reads for the same bytes.
            transport.max_size = _READ_SIZE

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.buffered += len(data)
        if self.buffered > _HIGH_WATER and self.transport and not self._paused:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool | None:
        self.eof = True
        self._wake()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.closed = exc
        self._wake()

    def _wake(self) -> None:
        if self._waiter and not self._waiter.done():
            self._waiter.set_result(None)

    async def next_chunk(self, timeout: float) -> bytes:
        """The next received bytes; b"" at end of stream."""
        while not self.chunks:
            if self.eof:
                if self.closed is not None:
                    raise httpx.ReadError(str(self.closed))
                return b""
            loop = asyncio.get_running_loop()
            waiter = self._waiter = loop.create_future()
            # A timer on the waiter itself: asyncio.wait_for costs a task-like wrapper per chunk.
            timer = loop.call_later(timeout, _expire, waiter)
            try:
                await waiter
            finally:
                timer.cancel()
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self._paused and self.buffered < _HIGH_WATER // 2 and self.transport:
            self._paused = False
            self.transport.resume_reading()
        return chunk


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(httpx.ReadTimeout("the upstream sent nothing in time"))


class _Body(httpx.AsyncByteStream):
    def __init__(self, wire: _Wire, first: bytes, length: int, timeout: float) -> None:
        self._wire, self._first, self._left, self._timeout = wire, first, length, timeout

    async def __aiter__(self) -> AsyncIterator[bytes]:
        chunk, self._first = self._first, b""
        while self._left > 0:
            if not chunk:
                chunk = await self._wire.next_chunk(self._timeout)
                if not chunk:
                    raise httpx.RemoteProtocolError(f"upstream closed the connection {self._left} bytes early")
            if len(chunk) > self._left:
                raise httpx.RemoteProtocolError("upstream sent more than its Content-Length")
            self._left -= len(chunk)
            yield chunk
            chunk = b""

    async def aclose(self) -> None:
        if self._wire.transport is not None:
            self._wire.transport.close()


class BlobTransport(httpx.AsyncBaseTransport):
    """Blob GETs on the lean wire; every other request on `inner` (httpx's pooled transport)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, connect_timeout: float, read_timeout: float,
                 upstream_ssl: ssl.SSLContext | None = None, upstream_netloc: bytes = b"") -> None:
        self.inner = inner
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        #: The upstream's own CA (`upstream_ca`); other hosts (object storage) use the system store.
        self.upstream_ssl = upstream_ssl
        self.upstream_netloc = upstream_netloc

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method != "GET" or "/blobs/" not in path or "/blobs/uploads" in path:
            return await self.inner.handle_async_request(request)
        wire = await self._connect(request.url)
        try:
            wire_request = self._request_head(request)
            assert wire.transport is not None
            wire.transport.write(wire_request)
            status, headers, rest = await self._response_head(wire)
        except BaseException:
            assert wire.transport is not None
            wire.transport.close()
            raise
        if status in (204, 304, 416):
            # No body to relay; Go's http.ServeContent announces the blob's length on a 416 and
            # sends nothing, which would read as a connection cut short.
            assert wire.transport is not None
            wire.transport.close()
            kept = [(name, value) for name, value in headers if name.lower() != "content-length"]
            return httpx.Response(status, headers=[*kept, ("Content-Length", "0")], content=b"", request=request)
        framing = {name.lower(): value for name, value in headers}
        length = decimal(framing.get("content-length", "").strip())
        if "transfer-encoding" in framing or length is None:
            assert wire.transport is not None
            wire.transport.close()
            return await self.inner.handle_async_request(request)
        return httpx.Response(status, headers=headers, stream=_Body(wire, rest, length, self.read_timeout),
                              request=request, extensions={LEAN_WIRE: True})

    async def _connect(self, url: httpx.URL) -> _Wire:
        https = url.scheme == "https"
        custom = self.upstream_ssl if url.netloc == self.upstream_netloc else None
        context = (custom or ssl.create_default_context()) if https else None
        wire = _Wire()
        try:
            await asyncio.wait_for(asyncio.get_running_loop().create_connection(
                lambda: wire, url.host, url.port or (443 if https else 80), ssl=context,
                server_hostname=url.host if https else None), self.connect_timeout)
        except TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {url.host} timed out") from None
        except OSError as exc:
            raise httpx.ConnectError(str(exc)) from None
        return wire

    def _request_head(self, request: httpx.Request) -> bytes:
        """The request head as bytes; header values pass as the client sent them (a latin-1 or
        UTF-8 `User-Agent` is no reason to fail a pull)."""
        lines = [b"GET " + request.url.raw_path + b" HTTP/1.1", b"Host: " + request.url.netloc]
        lines += [name + b": " + value for name, value in request.headers.raw if name.lower() not in _SKIP_HEADERS]
        lines.append(b"Connection: close")
        return b"\r\n".join(lines) + b"\r\n\r\n"

    async def _response_head(self, wire: _Wire) -> tuple[int, list[tuple[str, str]], bytes]:
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = await wire.next_chunk(self.read_timeout)
            if not chunk:
                raise httpx.RemoteProtocolError("upstream closed the connection before answering")
            received += chunk
            if len(received) > _HEAD_LIMIT and b"\r\n\r\n" not in received[:_HEAD_LIMIT]:
                raise httpx.RemoteProtocolError("upstream response head is too large")
        head, _, rest = received.partition(b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        parts = status_line.split(" ", 2)
        status = decimal(parts[1]) if len(parts) >= 2 and len(parts[1]) == 3 else None
        if status is None or not parts[0].startswith("HTTP/1."):
            raise httpx.RemoteProtocolError(f"illegal status line from upstream: {status_line[:80]!r}")
        headers = []
        for line in header_lines:
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                raise httpx.RemoteProtocolError("malformed header line from upstream")
            headers.append((name, value.strip()))
        return status, headers, rest
