"""The HTTP/1.1 protocol `authgate serve` hands uvicorn: its httptools one, with request headers bounded.

uvicorn's httptools protocol keeps the request line and headers in memory however long they grow
(its h11 protocol stops at 16 KiB), so one unauthenticated connection could make the process hold
hundreds of megabytes. Here every byte received while a request's headers are incomplete is
counted, and past `MAX_HEADER_BYTES` the connection is answered 400 and closed. Bodies (blobs)
are not counted: they stream as before. Nor did anything bound the time a new connection may take
to send its headers (slowloris: idle connections held until file descriptors run out): past
`HEADER_TIMEOUT` seconds it is closed. And a request answered before its body ended (a 401 to an
unauthenticated PATCH) closes the connection, as h11 does: else the rest of a huge declared body,
trickled, held it open for ever.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

#: Far above what docker, containerd or podman send (a few KiB: a bearer token is the largest part).
MAX_HEADER_BYTES = 1024 * 1024
#: Seconds a connection may take to send one request's line and headers (bodies are not timed).
HEADER_TIMEOUT = 60.0


def protocol_class() -> type[asyncio.Protocol] | str:
    """What to pass as `uvicorn.run(http=...)`: the bounded httptools protocol, or h11 (bounded itself)."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_bytes: int | None = 0  # None once the current request's headers are complete
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)  # type: ignore[arg-type]
            self._arm()

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._header_timer = self.loop.call_later(HEADER_TIMEOUT, self._headers_too_slow)

        def _disarm(self) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None

        def _headers_too_slow(self) -> None:
            if self._header_bytes is not None and not self.transport.is_closing():
                self.transport.close()

        def data_received(self, data: bytes) -> None:
            if self._header_bytes is not None:
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES:
                    if not self.transport.is_closing():
                        self.send_400_response("Request line and headers too large.")
                    return
            super().data_received(data)

        def on_headers_complete(self) -> None:
            self._header_bytes = None
            self._disarm()
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._header_bytes = 0  # a pipelined or keep-alive request starts counting afresh
            super().on_message_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.transport.is_closing():
                return
            if self._header_bytes is None:
                self.transport.close()  # answered before the body ended: nobody will read the rest
            else:
                self._arm()  # the next request's headers are timed from here

    return BoundedHttpToolsProtocol
