"""An upstream that is down, slow or answering garbage: the client gets a clear 503/504 in the OCI
format (no upstream address, no trace), the log names the upstream, `/readyz` fails until it
answers again. Faults are made at the transport seam (httpx MockTransport) or by tiny sockets."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from authgate.app import create_app
from authgate.settings import Settings
from authgate.gateway.backend import GatewayBackend, open_upstream
from tests.api.registry_support import add_test_users, basic

pytestmark = pytest.mark.anyio
ALICE = basic("alice", "alice-pw")
DIGEST = "sha256:" + "a" * 64
Handler = Callable[[httpx.Request], httpx.Response]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def gateway(tmp_path: Path, upstream: str = "http://127.0.0.1:9",
                  handler: Handler | None = None, **settings: object
                  ) -> AsyncIterator[tuple[httpx.AsyncClient, GatewayBackend]]:
    """The app in gateway mode; with `handler`, its upstream is an httpx MockTransport."""
    app = create_app(Settings(data=tmp_path / "data", upstream=upstream,  # type: ignore[arg-type]
                              upstream_health_interval=3600, bcrypt_rounds=4, **settings))
    async with app.router.lifespan_context(app):
        resources = app.state.resources
        await add_test_users(resources)
        transport = httpx.MockTransport(handler) if handler else None
        async with open_upstream(resources.settings, resources.auth.tokens, resources.readiness, resources.policy,
                                 resources.audit, resources.db, transport=transport) as backend:
            resources.backend = backend
            asgi = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
            async with httpx.AsyncClient(transport=asgi, base_url="http://localhost:5000") as client:
                yield client, backend


def _raises(exc: Exception) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc
    return handler


def _error(response: httpx.Response) -> str:
    code: str = response.json()["errors"][0]["code"]
    return code


@pytest.mark.parametrize(("fault", "status", "code"), [
    (_raises(httpx.ConnectError("connection refused")), 503, "UNAVAILABLE"),
    (_raises(httpx.ConnectTimeout("connect timed out")), 503, "UNAVAILABLE"),
    (_raises(httpx.ReadTimeout("read timed out")), 504, "UPSTREAM_TIMEOUT"),
    (_raises(httpx.RemoteProtocolError("illegal status line")), 503, "UNAVAILABLE"),
    # The upstream's own failure is relayed as one (502), not as authgate being unavailable.
    (lambda request: httpx.Response(500, text="<html>Internal Server Error</html>"), 502, "UNKNOWN"),
    (lambda request: httpx.Response(502, text="bad gateway"), 502, "UNKNOWN"),
    (lambda request: httpx.Response(503, text="maintenance"), 503, "UNAVAILABLE"),
    (lambda request: httpx.Response(401, text="{}"), 503, "UNAVAILABLE"),
])
async def test_upstream_faults_are_clear_oci_errors(tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture, fault: Handler, status: int,
                                                    code: str) -> None:
    caplog.set_level(logging.WARNING)
    async with gateway(tmp_path, upstream="http://10.9.8.7:5000", handler=fault) as (http, _):
        for method, path in [("GET", f"/v2/alice/app/manifests/latest"), ("GET", f"/v2/alice/app/blobs/{DIGEST}"),
                             ("POST", "/v2/alice/app/blobs/uploads/"), ("GET", "/v2/_catalog")]:
            response = await http.request(method, path, headers=ALICE)
            assert response.status_code == status, (method, path, response.text)
            assert _error(response) == code
            assert "10.9.8.7" not in response.text and "Traceback" not in response.text
            assert status == 502 or response.headers["retry-after"]
    assert "http://10.9.8.7:5000" in caplog.text


async def test_readyz_follows_the_upstream(tmp_path: Path) -> None:
    state = {"up": False}

    def handler(request: httpx.Request) -> httpx.Response:
        if not state["up"]:
            raise httpx.ConnectError("connection refused")
        return httpx.Response(200, json={})

    async with gateway(tmp_path, handler=handler) as (http, backend):
        assert (await http.get("/v2/alice/app/tags/list", headers=ALICE)).status_code == 503
        ready = await http.get("/readyz")
        assert ready.status_code == 503 and "unreachable" in ready.json()["reasons"]["upstream"]
        state["up"] = True
        await backend.upstream.check()
        assert (await http.get("/readyz")).status_code == 200


async def test_garbage_catalog_is_unavailable_not_a_crash(tmp_path: Path) -> None:
    answers = iter([httpx.Response(200, text="not json at all"), httpx.Response(200, json={"repositories": 7})])

    def handler(request: httpx.Request) -> httpx.Response:  # the health check's `GET /v2/` finds it up
        return httpx.Response(200, json={}) if request.url.path == "/v2/" else next(answers)

    async with gateway(tmp_path, handler=handler) as (http, _):
        for _ in range(2):
            response = await http.get("/v2/_catalog", headers=ALICE)
            assert response.status_code == 503 and _error(response) == "UNAVAILABLE"


async def test_a_silent_upstream_times_out(tmp_path: Path) -> None:
    """A real socket that accepts and never answers: 504 after `upstream_timeout`, not a hung client."""
    accepted: list[asyncio.StreamWriter] = []

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with gateway(tmp_path, upstream=f"http://127.0.0.1:{port}",
                           upstream_timeout=0.5) as (http, _):
            response = await asyncio.wait_for(http.get(f"/v2/alice/app/blobs/{DIGEST}", headers=ALICE), 10)
            assert response.status_code == 504 and _error(response) == "UPSTREAM_TIMEOUT"
    finally:
        for writer in accepted:
            writer.close()
        server.close()


async def test_a_stopped_upstream_is_unavailable(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    async with gateway(tmp_path, upstream="http://127.0.0.1:9") as (http, _):
        # The operator learns at start where /v2/ goes (and with which credentials mode).
        assert "gateway mode: /v2/ goes to the upstream registry http://127.0.0.1:9 (upstream_auth none)" in caplog.text
        response = await http.put("/v2/alice/app/manifests/latest", content=b"{}", headers=ALICE)
        assert response.status_code == 503 and _error(response) == "UNAVAILABLE"
        assert "upstream registry is unreachable" in response.json()["errors"][0]["message"]
        assert "127.0.0.1:9" not in response.text
        assert (await http.get("/readyz")).status_code == 503


def _storage_redirect(seen: list[httpx.Request]) -> Handler:
    """An upstream whose blobs live in object storage: GET answers 307 to a signed storage URL."""
    async def body() -> AsyncIterator[bytes]:
        yield b"blob from storage"

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v2/":
            return httpx.Response(200, json={})
        seen.append(request)
        if request.url.host == "storage.example.test":
            return httpx.Response(200, content=body(), headers={"Content-Type": "application/octet-stream"})
        return httpx.Response(307, headers={"Location": "https://storage.example.test/b?X-Signature=s"})
    return handler


@pytest.mark.parametrize("mode", ["follow", "pass"])
async def test_storage_redirects_are_followed_or_passed(tmp_path: Path,
                                                        mode: str) -> None:
    seen: list[httpx.Request] = []
    async with gateway(tmp_path, handler=_storage_redirect(seen), upstream_auth="basic",
                       upstream_username="gw", upstream_password="gw-secret", upstream_redirects=mode) as (http, _):
        response = await http.get(f"/v2/alice/app/blobs/{DIGEST}", headers=ALICE)
    if mode == "follow":
        assert response.status_code == 200 and response.content == b"blob from storage"
        upstream_request, storage_request = seen
        assert upstream_request.headers["authorization"].startswith("Basic ")
        assert "authorization" not in storage_request.headers  # credentials never go to another host
    else:
        assert response.status_code == 307
        assert response.headers["location"] == "https://storage.example.test/b?X-Signature=s"
        assert len(seen) == 1


async def test_blob_wire_faults(tmp_path: Path) -> None:
    """The lean blob-download wire against real sockets: a garbage status line, a Content-Length
    that is not a number, and a body cut short of its Content-Length (the client's connection is then closed, never completed)."""
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"SSH-2.0-OpenSSH_9.2\r\n\r\n")
        await writer.drain()
        writer.close()

    async def short(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 1000000\r\n\r\n" + b"x" * 1000)
        await writer.drain()
        writer.close()

    async def superscript(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")  # "²" passes str.isdigit(), int() refuses it
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: \xc2\xb2\r\n\r\nxx")
        await writer.drain()
        writer.close()

    for serve, expected in [(garbage, 503), (superscript, 503), (short, None)]:
        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        try:
            async with gateway(tmp_path, upstream=f"http://127.0.0.1:{port}") as (http, _):
                if expected is not None:
                    response = await http.get(f"/v2/alice/app/blobs/{DIGEST}", headers=ALICE)
                    assert response.status_code == expected and _error(response) == "UNAVAILABLE"
                else:
                    try:
                        response = await http.get(f"/v2/alice/app/blobs/{DIGEST}", headers=ALICE)
                    except AssertionError:
                        pass  # httpx's ASGITransport: the app ended the response unfinished (uvicorn closes)
                    else:
                        pytest.fail(f"a short upstream body was answered as complete ({len(response.content)} B)")
        finally:
            server.close()


async def test_an_upstream_error_is_relayed_as_502_with_its_oci_error(tmp_path: Path) -> None:
    """distribution answers 500 UNKNOWN to a manifest with foreign layers: the client sees why."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "HEAD":
            return httpx.Response(404)
        if request.url.path == "/v2/":  # the health check
            return httpx.Response(200, json={})
        return httpx.Response(500, json={"errors": [{
            "code": "UNKNOWN", "message": "unknown error at http://10.9.8.7:5000",
            "detail": {"reason": "invalid URL on layer", "at": "10.9.8.7:5000"}}]})

    async with gateway(tmp_path, upstream="http://10.9.8.7:5000", handler=handler) as (http, _):
        response = await http.put("/v2/alice/app/manifests/v1", content=b"{}", headers=ALICE)
        assert response.status_code == 502
        error = response.json()["errors"][0]
        assert error["code"] == "UNKNOWN" and error["detail"]["reason"] == "invalid URL on layer"
        assert "10.9.8.7" not in response.text and "saturated" not in response.text
        assert (await http.get("/readyz")).status_code == 200  # the upstream answered: it is up


async def test_an_upload_range_that_is_not_a_number(tmp_path: Path) -> None:
    """`"²".isdigit()` is true and `int("²")` raises: an upstream's `Range: 0-²` was a 500."""
    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            return httpx.Response(202, headers={"Location": "/v2/alice/app/blobs/uploads/u1", "Range": "0-0",
                                                "Docker-Upload-UUID": "u1"})
        if request.method == "PATCH":
            return httpx.Response(202, headers=[(b"Location", b"/v2/alice/app/blobs/uploads/u1"),
                                                (b"Range", "0-\u00b2".encode())])
        return httpx.Response(204)

    async with gateway(tmp_path, handler=handler) as (http, _):
        start = await http.post("/v2/alice/app/blobs/uploads/", headers=ALICE)
        response = await http.patch(start.headers["location"], content=b"abc", headers=ALICE)
        assert response.status_code == 400 and _error(response) == "BLOB_UPLOAD_INVALID"
