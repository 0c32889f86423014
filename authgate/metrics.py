"""Prometheus metrics: plain ASGI middleware counting requests, plus the `/metrics` endpoint.

Labels use a route *kind* (`blob`, `manifest`, `token`, …), never the repository name, so the
number of series stays fixed however many repositories there are.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from authgate.readiness import Readiness
from authgate.registry.routes import Kind, path_kind

#: Route labels of the paths outside `/v2/` (those are labelled by `routes.path_kind`).
_OTHER_ROUTES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^/token$"), "token"),
    (re.compile(r"^/(healthz|readyz|metrics)$"), "probe"),
    (re.compile(r"^/admin/"), "admin"),
]
#: Both upload kinds (the session and one upload in it) share a label, as they always have.
_V2_LABELS = {kind: kind.value for kind in Kind} | {Kind.UPLOADS: "upload"}


#: Methods counted under their own name; any other (clients may invent them) is `other`, so a
#: caller cannot add series, which live for the life of the process, one request at a time.
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_kind(path: str) -> str:
    """The route label of `path`: the `/v2/` table's own kinds, so the two never disagree."""
    if path.startswith("/v2/") or path == "/v2":
        kind = path_kind(path[4:])
        return _V2_LABELS[kind] if kind is not None else "other"
    for pattern, label in _OTHER_ROUTES:
        if pattern.match(path):
            return label
    return "other"


class Metrics:
    """The process's collectors, in a registry of their own (one per app, so tests can build many)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "authgate_http_requests", "HTTP requests answered", ["method", "route", "status"], registry=self.registry
        )
        self.duration = Histogram(
            "authgate_http_request_duration_seconds", "Time to answer, body included", ["method", "route"],
            registry=self.registry, buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
        )
        self.in_flight = Gauge("authgate_http_requests_in_flight", "Requests being answered", registry=self.registry)
        self.bytes_in = Counter("authgate_http_received_bytes", "Request body bytes", ["route"], registry=self.registry)
        self.bytes_out = Counter("authgate_http_sent_bytes", "Response body bytes", ["route"], registry=self.registry)
        self._answered: dict[tuple[str, str], tuple[Counter, Histogram, Counter, Counter]] = {}

    def answered(self, method: str, kind: str, bytes_in: int, bytes_out: int, seconds: float) -> None:
        """Count a 200 answered outside the middleware (`/token` from memory) as `MetricsMiddleware`
        would have counted it: request, duration, bytes in and out."""
        series = self._answered.get((method, kind))
        if series is None:  # bounded: the callers' methods and kinds are fixed
            series = self._answered[(method, kind)] = (
                self.requests.labels(method, kind, "200"), self.duration.labels(method, kind),
                self.bytes_in.labels(kind), self.bytes_out.labels(kind))
        requests, duration, received, sent = series
        requests.inc()
        duration.observe(seconds)
        if bytes_in:
            received.inc(bytes_in)
        sent.inc(bytes_out)

    def watch_policy(self, readiness: Readiness) -> None:
        """`authgate_policy_stale`: 1 while broken policy files leave the last good policy deciding."""
        gauge = Gauge("authgate_policy_stale", "1 while the policy files are broken and the last good policy "
                      "keeps deciding", registry=self.registry)
        gauge.set_function(lambda: 1.0 if "policy" in readiness.degraded else 0.0)

    def count_repeated_answers(self, hits: Callable[[], int]) -> None:
        """`authgate_token_answers_repeated_total`: `/token` answers sent again from memory
        (authgate.auth.token_answers); beside `authgate_http_requests_total{route="token"}`, the hit rate."""
        self.registry.register(_Repeated(hits))

    async def endpoint(self, request: Request) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class _Repeated(Collector):
    def __init__(self, hits: Callable[[], int]) -> None:
        self.hits = hits

    def collect(self) -> Iterable[Metric]:
        yield CounterMetricFamily("authgate_token_answers_repeated", "/token answers sent again from memory",
                                  value=self.hits())


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics
        #: The labelled series of each (method, route) and (method, route, status), looked up once:
        #: four `labels()` calls per request were ~10 us of every manifest and token request.
        #: Bounded: methods, route kinds and statuses are small fixed sets.
        self._series: dict[tuple[str, str], tuple[Counter, Counter, Histogram]] = {}
        self._counters: dict[tuple[str, str, int], Counter] = {}

    def _route_series(self, method: str, kind: str) -> tuple[Counter, Counter, Histogram]:
        series = self._series.get((method, kind))
        if series is None:
            metrics = self.metrics
            series = (metrics.bytes_in.labels(kind), metrics.bytes_out.labels(kind),
                      metrics.duration.labels(method, kind))
            self._series[(method, kind)] = series
        return series

    def _requests(self, method: str, kind: str, status: int) -> Counter:
        counter = self._counters.get((method, kind, status))
        if counter is None:
            counter = self._counters[(method, kind, status)] = self.metrics.requests.labels(method, kind, str(status))
        return counter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method = scope["method"] if scope["method"] in _METHODS else "other"
        kind = route_kind(scope["path"])
        status = 500
        started = time.perf_counter()
        metrics = self.metrics
        bytes_in, bytes_out, duration = self._route_series(method, kind)

        async def counting_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                bytes_in.inc(len(message.get("body", b"")))
            return message

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            elif message["type"] == "http.response.body":
                bytes_out.inc(len(message.get("body", b"")))
            await send(message)

        metrics.in_flight.inc()
        try:
            await self.app(scope, counting_receive, counting_send)
        finally:
            metrics.in_flight.dec()
            self._requests(method, kind, status).inc()
            duration.observe(time.perf_counter() - started)
