"""The connections to the upstream: an httpx transport whose wire is aiohttp's client.

httpx stays the API the gateway is written against (requests, responses, `MockTransport` at the
fault-test seam); only the bytes on the wire move to aiohttp. Why: httpx's own transport (httpcore
over h11 and anyio) cost ~3 ms of CPU per small request on a 2-core machine (it scans the whole pool,
polling each socket, on every request and re-imports a missing `sniffio` each time) and copies
every blob byte several times in pure Python; aiohttp parses HTTP in C (llhttp), reuses keep-alive
connections at ~0.3 ms a request, and hands a body on as the kernel gave it. `bench/gateway_bench.py`
measures both ends.

What httpx's transport gave and this one keeps: a bound on connections with a pool timeout
(`httpx.PoolTimeout`, which `Upstream.failure` words differently from a connect timeout), connect
and read timeouts per request, httpx's exception classes, bodies streamed both ways with flow
control (memory flat whatever the blob size), the upstream's own CA for its host only, and no
proxy from the environment, no cookies, no redirect following, no content decoding.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Callable

import aiohttp
import httpx
from yarl import URL

#: Bytes aiohttp buffers from a response before it stops reading the socket (its flow control):
#: reading pauses past twice this, so a download holds at most ~2 MiB per connection. Receives stay
#: asyncio's 256 KiB: 1 MiB receives measured no cheaper per GiB (each copy then leaves the CPU
#: cache), 128 KiB ones dearer.
_READ_BUFFER = 1024 * 1024
#: Hop-by-hop headers httpx adds that aiohttp manages itself.
_HOP_BY_HOP = frozenset({b"connection", b"keep-alive", b"transfer-encoding", b"te", b"upgrade"})
#: Defaults aiohttp would add on its own; httpx already decided these headers.
_NO_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")


class AiohttpTransport(httpx.AsyncBaseTransport):
    """At most `max_connections` requests in flight (a response holds its connection until it is
    closed); one more waits up to the request's pool timeout."""

    def __init__(self, max_connections: int, upstream_ssl: ssl.SSLContext | None = None,
                 upstream_netloc: bytes = b"", keepalive: float = 30.0) -> None:
        self._slots = asyncio.Semaphore(max_connections)
        self._max_connections = max_connections
        self._keepalive = keepalive
        #: The upstream's own CA (`upstream_ca`); other hosts (object storage) use httpx's default store.
        self._upstream_ssl = upstream_ssl
        self._upstream_netloc = upstream_netloc
        self._default_ssl: ssl.SSLContext | None = None
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[tuple[float | None, float | None], aiohttp.ClientTimeout] = {}

    def _client(self) -> aiohttp.ClientSession:
        # Made on first use: aiohttp binds a session to the running event loop.
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self._max_connections, limit_per_host=0,
                                             keepalive_timeout=self._keepalive)
            self._session = aiohttp.ClientSession(
                connector=connector, cookie_jar=aiohttp.DummyCookieJar(), auto_decompress=False,
                read_bufsize=_READ_BUFFER, trust_env=False, timeout=aiohttp.ClientTimeout(total=None),
                skip_auto_headers=_NO_AUTO_HEADERS,
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        try:
            async with asyncio.timeout(timeouts.get("pool")):
                await self._slots.acquire()
        except TimeoutError:
            raise httpx.PoolTimeout("no connection to the upstream came free in time", request=request) from None
        try:
            response = await self._send(request, timeouts)
        except BaseException:
            self._slots.release()
            raise
        body = _Body(response, self._slots.release)
        return httpx.Response(response.status, headers=response.raw_headers, stream=body, request=request,
                              extensions={"http_version": b"HTTP/1.1",
                                          "reason_phrase": (response.reason or "").encode("latin-1", "replace")})

    async def _send(self, request: httpx.Request, timeouts: dict[str, float | None]) -> aiohttp.ClientResponse:
        headers = [(name.decode("latin-1"), _header_text(value))
                   for name, value in request.headers.raw if name.lower() not in _HOP_BY_HOP]
        data: bytes | _Source | None = None
        if isinstance(request.stream, httpx.ByteStream):
            data = b"".join(request.stream) or None
        else:
            assert isinstance(request.stream, httpx.AsyncByteStream)
            data = _Source(request.stream)
        key = (timeouts.get("connect"), timeouts.get("read"))
        timeout = self._timeouts.get(key)
        if timeout is None:
            timeout = self._timeouts[key] = aiohttp.ClientTimeout(total=None, sock_connect=key[0], sock_read=key[1])
        url = URL(str(request.url), encoded=True)
        if request.url.userinfo:
            # httpx already made credentials in the URL an Authorization header, as it always did;
            # aiohttp would refuse a URL with credentials beside that header.
            url = url.with_user(None)
        try:
            response = await self._client().request(
                request.method, url, headers=headers, data=data,
                allow_redirects=False, timeout=timeout, ssl=self._ssl_for(request.url),
            )
        except ValueError as exc:
            # A header value aiohttp will not write (a line break): h11 refused those too.
            raise httpx.LocalProtocolError(str(exc), request=request) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            if isinstance(data, _Source) and data.error is not None:
                # The body's own source failed (the client went silent or away, the blob grew too
                # large): the caller must see that, not the connection aiohttp gave up on.
                raise data.error from None
            if isinstance(exc, aiohttp.ClientError):
                raise _translated(exc, request) from None
            raise httpx.ConnectTimeout("connecting to the upstream timed out", request=request) from None
        return response

    def _ssl_for(self, url: httpx.URL) -> ssl.SSLContext | bool:
        if url.scheme != "https":
            return True
        if self._upstream_ssl is not None and url.netloc == self._upstream_netloc:
            return self._upstream_ssl
        if self._default_ssl is None:
            # httpx's store (certifi), as the gateway used before it moved to aiohttp.
            self._default_ssl = httpx.create_ssl_context(trust_env=False)
        return self._default_ssl


class _Source:
    """A request body aiohttp sends from another task; keeps what ended it early, if anything."""

    def __init__(self, stream: httpx.AsyncByteStream) -> None:
        self._stream = stream
        self.error: Exception | None = None

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._stream:
                yield chunk
        except Exception as exc:
            self.error = exc
            raise


class _Body(httpx.AsyncByteStream):
    """A response body chunk by chunk as aiohttp received it; closing gives the connection back
    (kept alive when the body was read to its end, closed otherwise)."""

    def __init__(self, response: aiohttp.ClientResponse, release: Callable[[], None]) -> None:
        self._response = response
        self._release: Callable[[], None] | None = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        try:
            while True:
                chunk, _ = await content.readchunk()
                if not chunk:
                    if content.at_eof():
                        return
                    continue
                yield chunk
        except aiohttp.ClientError as exc:
            raise _translated(exc, self._response.request_info.url) from None
        except TimeoutError:
            raise httpx.ReadTimeout("the upstream sent nothing in time") from None

    async def aclose(self) -> None:
        if self._release is None:
            return
        release, self._release = self._release, None
        try:
            if self._response.content.at_eof():
                self._response.release()
            else:
                self._response.close()
        finally:
            release()


def _translated(exc: aiohttp.ClientError, where: object) -> httpx.TransportError:
    """aiohttp's failure as the httpx exception `Upstream.failure` maps to an OCI error."""
    request = where if isinstance(where, httpx.Request) else None
    message = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return httpx.ConnectTimeout(message, request=request)
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return httpx.ReadTimeout(message, request=request)
    if isinstance(exc, aiohttp.ClientConnectorError):
        return httpx.ConnectError(message, request=request)
    if isinstance(exc, (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError)):
        # Garbage instead of HTTP, a body cut short of its Content-Length, a connection dropped.
        return httpx.RemoteProtocolError(message, request=request)
    if isinstance(exc, aiohttp.ClientOSError):
        return httpx.ReadError(message, request=request)
    return httpx.TransportError(message, request=request)


def _header_text(value: bytes) -> str:
    """aiohttp writes header values as UTF-8: a client's UTF-8 bytes pass unchanged, other bytes
    (read as latin-1) pass as their UTF-8 spelling rather than failing the request."""
    try:
        return value.decode("utf-8")
    except UnicodeDecodeError:
        return value.decode("latin-1")
