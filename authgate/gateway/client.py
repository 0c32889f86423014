"""The pooled HTTP client to the upstream registry, and the one place its failures become OCI errors.

Clients never see the upstream: a failure is answered 503 `UNAVAILABLE` or 504 `UPSTREAM_TIMEOUT`
with a message naming no address, while the log line names the upstream so an operator can act,
and `/readyz` fails until the upstream answers again.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from authgate.errors import ErrorCode, RegistryError
from authgate.gateway.credentials import UpstreamAuth
from authgate.gateway.failures import MAX_ERROR_BODY, relayed_failure
from authgate.gateway.wire import AiohttpTransport
from authgate.readiness import Readiness
from authgate.scope import Scope
from authgate.settings import Settings

log = logging.getLogger(__name__)

#: The name the gateway reports under in `Readiness`.
NOT_READY_KEY = "upstream"
#: Request headers a client may send through to the upstream (never `Authorization`, cookies or
#: `X-Forwarded-*`: the upstream must see authgate's credentials and nothing a client can forge).
REQUEST_HEADERS = frozenset(
    {"accept", "content-type", "content-length", "content-range", "range", "if-none-match", "user-agent"}
)
#: Response headers passed back (OCI distribution spec; `Location` and `Link` are rewritten).
RESPONSE_HEADERS = frozenset(
    {
        "content-type", "content-length", "content-range", "range", "accept-ranges", "etag",
        "cache-control", "last-modified", "docker-content-digest", "docker-distribution-api-version",
        "docker-upload-uuid", "oci-subject", "oci-filters-applied", "link", "location",
    }
)
_RETRY_AFTER = {"Retry-After": "5"}
#: Bodies are relayed as the upstream sent them (`aiter_raw`), so none may come compressed.
_IDENTITY = {"Accept-Encoding": "identity"}


class Upstream:
    """One upstream registry: base URL, connection pool, credentials and health."""

    def __init__(
        self,
        settings: Settings,
        auth: UpstreamAuth,
        readiness: Readiness,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base = settings.upstream.rstrip("/")
        parts = urlsplit(self.base)
        self._origin = (parts.scheme, parts.netloc)
        self._prefix = parts.path.rstrip("/")
        # With `public_url` set, Locations are absolute on it; otherwise they are paths, which
        # clients resolve against the address they used (as the embedded store answers), so a
        # client that reached authgate as 127.0.0.1 is not sent to "localhost" without credentials.
        self.public = settings.public_url.rstrip("/")
        self.auth = auth
        self.readiness = readiness
        self.redirects = settings.upstream_redirects
        self.health_interval = settings.upstream_health_interval
        upstream_ssl = ssl.create_default_context(cafile=str(settings.upstream_ca)) if settings.upstream_ca else None
        netloc = httpx.URL(self.base).netloc
        timeout = httpx.Timeout(settings.upstream_timeout, connect=settings.upstream_connect_timeout,
                                pool=settings.upstream_connect_timeout)
        self.client = httpx.AsyncClient(
            transport=transport or AiohttpTransport(settings.upstream_max_connections, upstream_ssl, netloc),
            timeout=timeout, headers=_IDENTITY, follow_redirects=False,
            # Never route upstream traffic through a proxy named in the environment.
            trust_env=False,
        )
        # The health check has a connection of its own: `/readyz` tells whether the upstream
        # answers, not whether clients hold every pooled connection (a balancer would drop the
        # replica because of one user's load).
        self._health = self.client
        if transport is None:
            self._health = httpx.AsyncClient(transport=AiohttpTransport(1, upstream_ssl, netloc), timeout=timeout,
                                             headers=_IDENTITY, follow_redirects=False, trust_env=False)

    async def aclose(self) -> None:
        await self.client.aclose()
        if self._health is not self.client:
            await self._health.aclose()

    def describe(self) -> str:
        """The upstream as the start-up log names it (no credentials in it)."""
        parts = urlsplit(self.base)
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}"

    # -- requests -----------------------------------------------------------------------------

    async def send(
        self,
        method: str,
        path: str,
        *,
        scopes: Sequence[Scope] = (),
        params: Any = None,
        headers: Sequence[tuple[str, str]] | Mapping[str, str] = (),
        content: Any = None,
        url: str | None = None,
        authenticate: bool = True,
        health: bool = False,
    ) -> httpx.Response:
        """Send one request and return the response with its body unread; the caller closes it.

        `path` is the registry path (`/v2/…`); `url` overrides it with a full URL (a redirect
        target), sent without credentials unless it is on the upstream itself.
        """
        target = url or self.base + path
        # Values pass as bytes: Starlette reads header bytes as latin-1, and httpx would encode
        # str values as ASCII (a `User-Agent: é` was a UnicodeEncodeError, so a 500).
        items = headers.items() if isinstance(headers, Mapping) else headers
        request_headers = httpx.Headers([(name.encode("latin-1"), value.encode("latin-1", "replace"))
                                        for name, value in items])
        if authenticate and (url is None or self.is_upstream(url)):
            authorization = await self.auth.authorization(scopes)
            if authorization:
                request_headers["Authorization"] = authorization
        client = self._health if health else self.client
        request = client.build_request(method, target, params=params, headers=request_headers, content=content)
        try:
            response = await client.send(request, stream=True)
        except httpx.HTTPError as exc:
            raise self.failure(method, path or target, exc) from None
        if response.status_code == 401 or response.status_code >= 500:
            await self._reject(method, path or target, response)
        return response

    async def _reject(self, method: str, what: str, response: httpx.Response) -> None:
        """An upstream 401 means authgate's own credentials were refused: "try again later", and
        `/readyz` says why. A 5xx is the upstream's own failure, relayed as one (`failures`)."""
        try:
            body = await _read_bounded(response, MAX_ERROR_BODY)
        except httpx.HTTPError:
            body = b""
        finally:
            await response.aclose()
        status = response.status_code
        log.error(
            "upstream %s answered %s to %s %s: %s", self.base, status, method, what,
            body.decode("utf-8", "replace")[:500], extra={"upstream": self.base},
        )
        if status != 401:
            raise relayed_failure(status, body, self.base)
        reason = "the upstream registry refused authgate's credentials (check upstream_auth)"
        self.readiness.block(NOT_READY_KEY, reason)
        raise RegistryError(ErrorCode.UNAVAILABLE, f"{reason}; try again later", headers=_RETRY_AFTER)

    def failure(self, method: str, what: str, exc: Exception) -> RegistryError:
        """Map a transport failure to the OCI error the client gets, and log it naming the upstream."""
        if isinstance(exc, httpx.PoolTimeout) and NOT_READY_KEY in self.readiness.not_ready:
            # Waiting for a connection because connecting fails: say what the operator must fix.
            message, code, down = "the upstream registry is unreachable", ErrorCode.UNAVAILABLE, False
        elif isinstance(exc, httpx.PoolTimeout):
            message, code, down = "the upstream registry is saturated", ErrorCode.UNAVAILABLE, False
        elif isinstance(exc, httpx.ConnectTimeout):
            message, code, down = "the upstream registry is unreachable", ErrorCode.UNAVAILABLE, True
        elif isinstance(exc, httpx.TimeoutException):
            message, code, down = "the upstream registry did not answer in time", ErrorCode.UPSTREAM_TIMEOUT, False
        elif isinstance(exc, httpx.ConnectError):
            message, code, down = "the upstream registry is unreachable", ErrorCode.UNAVAILABLE, True
        elif isinstance(exc, (httpx.RemoteProtocolError, httpx.DecodingError, httpx.LocalProtocolError)):
            message, code, down = "the upstream registry answered garbage", ErrorCode.UNAVAILABLE, False
        else:
            message, code, down = "the connection to the upstream registry failed", ErrorCode.UNAVAILABLE, False
        log.warning(
            "upstream %s: %s %s failed: %s: %s", self.base, method, what, type(exc).__name__, exc,
            extra={"upstream": self.base},
        )
        if down:
            self.readiness.block(NOT_READY_KEY, f"{message} ({self.base})")
        return RegistryError(code, f"{message}; try again later", headers=_RETRY_AFTER)

    async def read_json(self, response: httpx.Response, limit: int = 16 * 1024**2) -> Any:
        """The body of a JSON response (catalog, tag list), bounded; garbage is a 503."""
        try:
            body = await _read_bounded(response, limit)
            return json.loads(body)
        except httpx.HTTPError as exc:
            raise self.failure("GET", str(response.request.url.path), exc) from None
        except ValueError as exc:
            log.warning("upstream %s: %s is not JSON: %s", self.base, response.request.url.path, exc,
                        extra={"upstream": self.base})
            raise RegistryError(ErrorCode.UNAVAILABLE, "the upstream registry answered garbage; try again later",
                                headers=_RETRY_AFTER) from None
        finally:
            await response.aclose()

    # -- addresses -----------------------------------------------------------------------------

    def is_upstream(self, url: str) -> bool:
        parts = urlsplit(url)
        return not parts.netloc or (parts.scheme, parts.netloc) == self._origin

    def public_url(self, value: str) -> str:
        """An upstream URL or path rewritten onto authgate's public URL (or made a path); other hosts
        (object storage) unchanged."""
        parts = urlsplit(value)
        if parts.netloc and (parts.scheme, parts.netloc) != self._origin:
            return value
        path = parts.path
        if self._prefix and path.startswith(self._prefix + "/"):
            path = path[len(self._prefix):]
        return self.public + path + (f"?{parts.query}" if parts.query else "")

    def public_link(self, value: str) -> str:
        """A `Link: <url>; rel="next"` header with its URL rewritten (only paths and query kept)."""
        start, end = value.find("<"), value.find(">")
        if start < 0 or end < start:
            return value
        parts = urlsplit(value[start + 1:end])
        relative = parts.path + (f"?{parts.query}" if parts.query else "")
        if self._prefix and relative.startswith(self._prefix + "/"):
            relative = relative[len(self._prefix):]
        return value[:start + 1] + relative + value[end:]

    def response_headers(self, response: httpx.Response) -> dict[str, str]:
        """The upstream's headers a client may see (lower-case names), with addresses rewritten."""
        headers: dict[str, str] = {}
        for name, value in response.headers.multi_items():
            lower = name.lower()
            if lower not in RESPONSE_HEADERS:
                continue
            if lower == "location":
                value = self.public_url(value)
            elif lower == "link":
                value = self.public_link(value)
            headers[lower] = value
        headers.setdefault("docker-distribution-api-version", "registry/2.0")
        return headers

    # -- health --------------------------------------------------------------------------------

    async def check(self) -> bool:
        """Ping `GET /v2/` once; set or clear `/readyz`'s upstream reason."""
        try:
            response = await self.send("GET", "/v2/", health=True)
            await response.aclose()
        except RegistryError as exc:
            if NOT_READY_KEY not in self.readiness.not_ready:
                self.readiness.block(NOT_READY_KEY, exc.message)
            return False
        if response.status_code != 200:
            self.readiness.block(NOT_READY_KEY, f"the upstream registry answered {response.status_code} to GET /v2/")
            log.warning("upstream %s answered %s to GET /v2/", self.base, response.status_code,
                        extra={"upstream": self.base})
            return False
        if self.readiness.unblock(NOT_READY_KEY):
            log.info("upstream %s is answering again", self.base, extra={"upstream": self.base})
        return True


async def _read_bounded(response: httpx.Response, limit: int) -> bytes:
    """A small body (error document, catalog page), refused past `limit` decoded bytes."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > limit:
            raise httpx.DecodingError(f"response body larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
