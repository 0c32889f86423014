"""The HTTP/1.1 protocol `authgate serve` hands uvicorn: its httptools one, with request headers bounded.

uvicorn's httptools protocol keeps the request line and headers in memory however long they grow
(its h11 protocol stops at 16 KiB), so one unauthenticated connection could make the process hold
hundreds of megabytes. Here every byte received while a request's headers are incomplete is
counted, and past `MAX_HEADER_BYTES` the connection is answered 400 and closed. Bodies (blobs)
are not counted: they stream as before.
"""

from __future__ import annotations

import asyncio
import importlib.util
from typing import Any

#: Far above what docker, containerd or podman send (a few KiB: a bearer token is the largest part).
MAX_HEADER_BYTES = 1024 * 1024


def protocol_class() -> type[asyncio.Protocol] | str:
    """What to pass as `uvicorn.run(http=...)`: the bounded httptools protocol, or h11 (bounded itself)."""
    if importlib.util.find_spec("httptools") is None:
        return "h11"
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._header_bytes: int | None = 0  # None once the current request's headers are complete

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
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._header_bytes = 0  # a pipelined or keep-alive request starts counting afresh
            super().on_message_complete()

    return BoundedHttpToolsProtocol
