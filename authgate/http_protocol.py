"""The HTTP/1.1 protocol `authgate serve` hands uvicorn: its httptools one, with every wait bounded.

- **Headers.** uvicorn's httptools protocol keeps the request line and headers in memory however
  long they grow (its h11 protocol stops at 16 KiB): every byte received while a request's headers
  are incomplete is counted, and past `MAX_HEADER_BYTES` the connection is answered 400 and closed.
  A request that has begun must send its headers within `HEADER_TIMEOUT` (slowloris).
- **Bodies.** A body may be slow (a blob over a poor link) but not silent: after
  `BODY_IDLE_TIMEOUT` seconds without a byte, while authgate was ready to read, the connection is
  closed (a POST /token declaring 16,000 bytes and sending one every 8 s held a connection for ever;
  220 of them exhausted file descriptors). Time the app spends not reading, or a client spends
  waiting for `100 Continue`, is not the client's silence. A request answered before its body ended
  (a 401 to an unauthenticated PATCH) closes the connection, as h11 does.
- **Idle keep-alive.** uvicorn closes an idle connection after 5 s by default, but Go's transport
  (docker, containerd, skopeo, the OCI conformance suite) keeps idle connections 90 s and reuses one
  without knowing the server is closing it at that moment: a request that is not safe to retry, a
  manifest PUT, then fails with "connection reset by peer". The server must outlast its clients:
  `KEEP_ALIVE_TIMEOUT` is longer than any of theirs, so the client always closes first.
- **One write per small response.** uvicorn writes a response's status line and headers, then its
  body, as two `send` calls; a manifest or a token is then two packets and two syscalls, where Go's
  server sends one. The head is held until the body's first write (or the end of the event-loop
  step, whichever comes first) and sent with it.
- **Connections.** At most `max_connections` per process: a new connection past it first closes the
  longest-idle keep-alive connection (its client reconnects when it needs to), and is answered
  503 with `Retry-After` only when every connection is busy.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

#: Far above what docker, containerd or podman send (a few KiB: a bearer token is the largest part).
MAX_HEADER_BYTES = 1024 * 1024
#: Seconds a request may take to send its line and headers once its first byte arrived (or the
#: connection opened): bodies are timed by `BODY_IDLE_TIMEOUT`, idle keep-alive by `KEEP_ALIVE_TIMEOUT`.
HEADER_TIMEOUT = 60.0
#: Seconds a request body may go without a byte while authgate is ready to read it.
BODY_IDLE_TIMEOUT = 60.0
#: Longer than Go's `http.DefaultTransport` IdleConnTimeout (90 s), nginx's keepalive_timeout (75 s).
KEEP_ALIVE_TIMEOUT = 120
DEFAULT_MAX_CONNECTIONS = 1000

_BUSY_TEXT = b"too many connections; try again in a moment"
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain; charset=utf-8\r\nretry-after: 1\r\n"
         b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(_BUSY_TEXT), _BUSY_TEXT))


#: A first body write larger than this goes out separately instead of being copied behind the head.
_COALESCE_LIMIT = 64 * 1024


class _OneWriteResponses:
    """The transport one request-response cycle writes to: its head waits for its first body bytes.

    Held at most until the end of the current event-loop step (`call_soon`): a response whose body
    is slow to come (a gateway pull waiting on its upstream) still shows its head at once. `100
    Continue` is never held: the client waits for it before it sends the body.
    """

    __slots__ = ("_transport", "_loop", "_head", "_started")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._head: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        if not self._started and not data.startswith(b"HTTP/1.1 100 "):
            self._started = True
            self._head = data
            self._loop.call_soon(self.flush)
            return
        head, self._head = self._head, None
        if head is not None:
            if len(data) <= _COALESCE_LIMIT:
                data = head + data
            else:
                self._transport.write(head)
        self._transport.write(data)

    def flush(self) -> None:
        head, self._head = self._head, None
        if head is not None and not self._transport.is_closing():
            self._transport.write(head)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def fit_open_files(max_connections: int, spare: int = 256) -> tuple[int, str | None]:
    """Raise the soft open-files limit so `max_connections` fit beside the database, blobs and upstream
    connections (`spare`); where the hard limit forbids it, fewer connections and a warning to show."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = max_connections + spare
    if soft != resource.RLIM_INFINITY and soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft != resource.RLIM_INFINITY and soft < wanted:
        fitted = max(16, soft - spare)
        return fitted, (f"max_connections {max_connections} does not fit the open-files limit {soft} "
                        f"(ulimit -n): serving at most {fitted} connections; raise the limit to serve more")
    return max_connections, None


def protocol_class(max_connections: int = DEFAULT_MAX_CONNECTIONS) -> type[asyncio.Protocol] | str:
    """What to pass as `uvicorn.run(http=...)`: the bounded httptools protocol, or h11 (bounded itself)."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_bytes: int | None = 0  # None once the current request's headers are complete
            self._header_timer: asyncio.TimerHandle | None = None
            self._body_timer: asyncio.TimerHandle | None = None
            self._body_seen = 0.0  # loop time of the last body byte
            self._idle_since: float | None = None  # between requests on a keep-alive connection

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            if len(self.connections) > max_connections and not self._close_an_idle_connection():
                transport.write(_BUSY)  # type: ignore[attr-defined]
                transport.close()
                return
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

        def _close_an_idle_connection(self) -> bool:
            idle = [(since, c) for c in self.connections
                    if c is not self and (since := getattr(c, "_idle_since", None)) is not None]
            if not idle:
                return False
            _, oldest = min(idle, key=lambda pair: pair[0])
            oldest._idle_since = None  # type: ignore[union-attr]
            oldest.transport.close()
            return True

        def connection_lost(self, exc: Exception | None) -> None:
            self._cancel_timers()
            super().connection_lost(exc)

        def _cancel_timers(self) -> None:
            for timer in (self._header_timer, self._body_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._body_timer = None

        def _headers_too_slow(self) -> None:
            self._header_timer = None
            if self._header_bytes is not None and not self.transport.is_closing():
                self.transport.close()

        def _body_check(self) -> None:
            self._body_timer = None
            if self._header_bytes is not None or self.transport.is_closing():
                return  # the body is complete, or the connection gone
            now = self.loop.time()
            cycle = self.cycle
            if self.flow.read_paused or (cycle is not None and cycle.waiting_for_100_continue):
                self._body_seen = now  # authgate is not reading: the client's silence does not count
            if now - self._body_seen >= BODY_IDLE_TIMEOUT:
                self.transport.close()  # the app's receive() sees a disconnect
                return
            self._body_timer = self.loop.call_later(BODY_IDLE_TIMEOUT - (now - self._body_seen), self._body_check)

        def data_received(self, data: bytes) -> None:
            self._idle_since = None
            if self._header_bytes is None:
                self._body_seen = self.loop.time()
            else:
                if self._header_bytes == 0 and self._header_timer is None:
                    self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    if not self.transport.is_closing():
                        self.send_400_response("Request line and headers too large.")
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._header_bytes = None
            self._cancel_timers()
            self._body_seen = self.loop.time()
            self._body_timer = self.loop.call_later(BODY_IDLE_TIMEOUT, self._body_check)
            super().on_headers_complete()
            if self.cycle is not None and isinstance(self.cycle.transport, asyncio.Transport):
                self.cycle.transport = _OneWriteResponses(self.cycle.transport, self.loop)  # type: ignore[assignment]

        def on_message_complete(self) -> None:
            self._header_bytes = 0  # a pipelined or keep-alive request starts counting afresh
            if self._body_timer is not None:
                self._body_timer.cancel()
                self._body_timer = None
            super().on_message_complete()

        def on_response_complete(self) -> None:
            if self.cycle is not None and isinstance(self.cycle.transport, _OneWriteResponses):
                self.cycle.transport.flush()  # a HEAD answer has no body write to carry its head
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if self._header_bytes is None:
                self.transport.close()  # answered before the body ended: nobody will read the rest
            elif not self.pipeline:
                self._idle_since = self.loop.time()  # the keep-alive timer (uvicorn's) runs from here

    return BoundedHttpToolsProtocol
