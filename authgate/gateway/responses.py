"""Upstream responses handed to the client: bodies streamed chunk by chunk, headers filtered.

Memory stays flat whatever the blob size: the wire reads ahead of the client only up to its
buffer bound (`authgate.gateway.wire`), and each chunk is written to the client before the next is
taken (uvicorn's flow control pauses us while the client is slow).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import httpx
from starlette.responses import Response, StreamingResponse
from starlette.types import Receive, Scope, Send

from authgate.gateway.client import Upstream
from authgate.registry.numbers import decimal

#: Bodies up to this size (manifests, tag lists, error documents) are read whole and answered in
#: one piece: Starlette streams a response inside a task group of its own (ASGI spec 2.3), which
#: cost about a tenth of a proxied manifest GET's CPU. Memory stays bounded per request.
WHOLE_BODY_LIMIT = 256 * 1024


class ProxiedBody(StreamingResponse):
    """Streams an upstream body to the client and closes the upstream response on every exit.

    When the upstream breaks off mid-body, the client's connection is closed (its body is then
    shorter than the announced Content-Length, which every client detects) rather than an
    exception reaching the server with a trace; the log line names the upstream.
    """

    def __init__(self, upstream: Upstream, response: httpx.Response, status_code: int,
                 headers: Mapping[str, str]) -> None:
        super().__init__(response.aiter_raw(), status_code=status_code, headers=headers)
        self._upstream = upstream
        self._response = response
        #: Called once the response is over, however it ended (the caller's upstream slot).
        self.on_close: list[Callable[[], None]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Also when the client left before streaming began (stream_response never ran).
            await self._response.aclose()
            for callback in self.on_close:
                callback()

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError as exc:
            self._upstream.failure("GET", self._response.request.url.path, exc)
            return
        finally:
            await self._response.aclose()
        await send({"type": "http.response.body", "body": b"", "more_body": False})


async def relay(upstream: Upstream, response: httpx.Response, *, head: bool = False,
                headers: Mapping[str, str] | None = None) -> Response:
    """The upstream response as the client's: status and allowed headers, body streamed.

    `headers` add to (or override) what the upstream sent.
    """
    merged = upstream.response_headers(response)
    merged.update(headers or {})
    if head or response.status_code in (204, 304) or response.request.method == "HEAD":
        await response.aclose()
        return Response(status_code=response.status_code, headers=merged)
    length = decimal(response.headers.get("content-length", "").strip())
    if length is not None and length <= WHOLE_BODY_LIMIT:
        try:
            body = b"".join([chunk async for chunk in response.aiter_raw()])
        except httpx.HTTPError as exc:
            raise upstream.failure(response.request.method, response.request.url.path, exc) from None
        finally:
            await response.aclose()
        return Response(body, status_code=response.status_code, headers=merged)
    return ProxiedBody(upstream, response, response.status_code, merged)


async def empty(upstream: Upstream, response: httpx.Response, status_code: int | None = None) -> Response:
    """The upstream's status and headers with no body (upload steps answer `Content-Length: 0`)."""
    await response.aclose()
    headers = upstream.response_headers(response)
    headers["content-length"] = "0"
    headers.pop("content-type", None)
    return Response(status_code=status_code or response.status_code, headers=headers)
