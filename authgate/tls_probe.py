"""Quiet the log line docker's HTTPS probe causes on a plain-HTTP port.

docker (and podman) try HTTPS first even for a registry they may reach over plain HTTP (127.0.0.0/8,
`insecure-registries`), then fall back. On a plain-HTTP authgate every docker command therefore
logged `WARNING uvicorn.error: Invalid HTTP request received.`, which looks like a fault. The probe is
recognisable (a TLS record starts with byte 0x16, a handshake, then version 0x03): the client still
gets exactly the answer it got before (the fallback depends on it), the warning is dropped, and the
first probe is explained once at INFO. Other garbage still logs the warning.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

log = logging.getLogger("authgate.http")
#: uvicorn logs the parse failure through `self.logger`; during a probe it points here (warnings dropped).
_quiet = logging.getLogger("authgate.http.tls_probe")
_quiet.setLevel(logging.ERROR)
_explained = False


def _looks_like_tls(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x16 and data[1] == 0x03


def _explain_once() -> None:
    global _explained
    if not _explained:
        _explained = True
        log.info("a client tried HTTPS on this plain-HTTP port (docker and podman try HTTPS first, then fall back "
                 "to HTTP for 127.0.0.0/8 and insecure registries); such probes are answered and not logged. Other "
                 "hosts need HTTPS: `authgate tls init --host NAME`")


def quiet_tls_probes(protocol: type[asyncio.Protocol] | str) -> type[asyncio.Protocol]:
    """`protocol` (a uvicorn HTTP protocol class, or "h11") with docker's TLS probe recognised."""
    if isinstance(protocol, str):
        from uvicorn.protocols.http.h11_impl import H11Protocol

        protocol = H11Protocol
    base: Any = protocol

    class TlsProbeQuiet(base):  # type: ignore[misc]
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self._first_data = True
            super().connection_made(transport)

        def data_received(self, data: bytes) -> None:
            if not (self._first_data and _looks_like_tls(data)):
                self._first_data = False
                super().data_received(data)
                return
            self._first_data = False
            _explain_once()
            loud: logging.Logger = getattr(self, "logger")  # set by uvicorn's protocol __init__
            setattr(self, "logger", _quiet)
            try:
                super().data_received(data)
            finally:
                setattr(self, "logger", loud)

    result: type[asyncio.Protocol] = TlsProbeQuiet
    return result
