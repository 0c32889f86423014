"""The admin audit API, the registry-notifications endpoint and the webhook, in-process (real auth, real DB)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from authgate.app import create_app
from authgate.audit.events import AuditEvent
from authgate.audit.recorder import AuditRecorder
from authgate.audit.webhook import WebhookSender
from authgate.auth import accounts
from authgate.auth.services import auth_of
from authgate.settings import Settings
from authgate.subject import Subject

SECRET = "s3cret-notify"
EVENTS_TYPE = "application/vnd.docker.distribution.events.v2+json"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


ADMIN = basic("root", "root-pw")
ALICE = basic("alice", "alice-pw")


@asynccontextmanager
async def client(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[httpx.AsyncClient, AuditRecorder]]:
    app = create_app(Settings(data=tmp_path / "data", bcrypt_rounds=4, **settings))
    async with app.router.lifespan_context(app):
        resources = app.state.resources
        verifier = auth_of(resources).verifier
        await accounts.create_user(resources.db, "root", verifier.hash("root-pw"), admin=True)
        await accounts.create_user(resources.db, "alice", verifier.hash("alice-pw"))
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000") as http:
            yield http, resources.audit


async def _seed(audit: AuditRecorder) -> None:
    for i in range(5):
        await audit.record(AuditEvent("manifest:push", Subject("user", "alice"), "alice/app", f"v{i}",
                                      "sha256:" + f"{i:064x}", 100 + i))
    await audit.record(AuditEvent("manifest:push", Subject("user", "bob"), "bob/tool", "latest"))
    await audit.record(AuditEvent("auth:login:failure", Subject("user", "mallory"), outcome="failure",
                                  reason="invalid password"))
    await audit.flush()


def test_admin_audit_requires_an_admin(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path) as (http, _):
            anonymous = await http.get("/admin/audit")
            assert anonymous.status_code == 401
            assert anonymous.headers["www-authenticate"].startswith('Bearer realm="')
            assert anonymous.json()["errors"][0]["code"] == "UNAUTHORIZED"
            wrong = await http.get("/admin/audit", headers=basic("root", "nope"))
            assert wrong.status_code == 401
            user = await http.get("/admin/audit", headers=ALICE)
            assert user.status_code == 403 and user.json()["errors"][0]["code"] == "DENIED"
            assert (await http.get("/admin/audit", headers=ADMIN)).status_code == 200
            # A bearer token from authgate's /token works as well, and carries the admin flag live.
            for user, password, status in (("root", "root-pw", 200), ("alice", "alice-pw", 403)):
                issued = await http.get("/token", params={"service": "authgate"}, headers=basic(user, password))
                token = issued.json()["token"]
                answer = await http.get("/admin/audit", headers={"Authorization": f"Bearer {token}"})
                assert answer.status_code == status, (user, answer.text)

    asyncio.run(body())


def test_admin_audit_filters_and_pages(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path) as (http, audit):
            await _seed(audit)
            page = (await http.get("/admin/audit", params={"repository": "alice/app", "limit": 3},
                                   headers=ADMIN))
            data = page.json()
            assert [e["reference"] for e in data["events"]] == ["v4", "v3", "v2"]
            assert data["next"] and page.headers["link"].endswith('rel="next"')
            rest = (await http.get(data["next"], headers=ADMIN)).json()
            assert [e["reference"] for e in rest["events"]] == ["v1", "v0"] and rest["next"] is None
            by_actor = (await http.get("/admin/audit", params={"actor": "user:bob"}, headers=ADMIN)).json()
            assert [e["repository"] for e in by_actor["events"]] == ["bob/tool"]
            by_action = (await http.get("/admin/audit", params={"action": "auth"}, headers=ADMIN)).json()
            assert [(e["actor"], e["reason"]) for e in by_action["events"]] == [("user:mallory", "invalid password")]
            future = (await http.get("/admin/audit", params={"since": "2999-01-01"}, headers=ADMIN)).json()
            assert future["events"] == []
            for bad in ({"since": "yesterday"}, {"limit": "0"}, {"limit": "x"}, {"colour": "red"}):
                response = await http.get("/admin/audit", params=bad, headers=ADMIN)
                assert response.status_code == 400, bad
                assert response.json()["errors"][0]["code"] == "INVALID_REQUEST"

    asyncio.run(body())


def test_openapi_document_describes_the_audit_api(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path) as (http, _):
            doc = (await http.get("/admin/openapi.json")).json()
            operation = doc["paths"]["/admin/audit"]["get"]
            assert {p["name"] for p in operation["parameters"]} == {
                "repository", "actor", "action", "since", "until", "limit", "before"}
            assert set(operation["responses"]) == {"200", "400", "401", "403"}
            assert doc["openapi"].startswith("3.")

    asyncio.run(body())


def _envelope(*events: dict[str, Any]) -> bytes:
    return json.dumps({"events": list(events)}).encode()


def _push(event_id: str, media_type: str = "application/vnd.docker.distribution.manifest.v2+json",
          action: str = "push", tag: str | None = "v1") -> dict[str, Any]:
    target: dict[str, Any] = {"mediaType": media_type, "size": 525, "digest": "sha256:" + "c" * 64,
                              "length": 525, "repository": "team/app", "url": "http://r/v2/team/app/manifests/x"}
    if tag:
        target["tag"] = tag
    return {"id": event_id, "timestamp": "2026-11-28T10:00:00.123456789Z", "action": action, "target": target,
            "request": {"id": "req-1", "addr": "10.1.2.3:45678", "method": "PUT", "useragent": "docker/20.10"},
            "actor": {"name": "alice"}, "source": {"addr": "registry:5000"}}


def test_notifications_are_recorded_once_and_need_the_secret(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path, notification_secret=SECRET, audit_pulls="manifests") as (http, audit):
            headers = {"Content-Type": EVENTS_TYPE, "Authorization": f"Bearer {SECRET}"}
            envelope = _envelope(
                _push("e1"),
                _push("e2", media_type="application/octet-stream", tag=None),
                _push("e3", action="pull"),
                _push("e4", media_type="application/octet-stream", action="pull", tag=None),
            )
            assert (await http.post("/notifications", content=envelope,
                                    headers={**headers, "Authorization": "Bearer wrong"})).status_code == 401
            assert (await http.post("/notifications", content=envelope,
                                    headers={"Content-Type": EVENTS_TYPE})).status_code == 401
            response = await http.post("/notifications", content=envelope, headers=headers)
            assert response.status_code == 200 and response.json() == {"recorded": 3, "ignored": 1}
            # The registry retries an envelope it thinks failed: nothing is recorded twice.
            assert (await http.post("/notifications", content=envelope, headers=headers)).status_code == 200
            assert (await http.post("/notifications", content=b"{", headers=headers)).status_code == 400
            assert (await http.post("/notifications", content=envelope,
                                    headers={**headers, "Content-Type": "text/plain"})).status_code == 415
            await audit.flush()
            events = (await http.get("/admin/audit", headers=ADMIN)).json()["events"]
            assert [(e["action"], e["actor"], e["repository"], e["reference"], e["size"], e["address"])
                    for e in reversed(events)] == [
                ("manifest:push", "user:alice", "team/app", "v1", 525, "10.1.2.3"),
                ("blob:push", "user:alice", "team/app", "sha256:" + "c" * 64, 525, "10.1.2.3"),
                ("manifest:pull", "user:alice", "team/app", "v1", 525, "10.1.2.3"),
            ]
            assert events[-1]["digest"] == "sha256:" + "c" * 64
            assert events[-1]["time"] == "2026-11-28T10:00:00.123456Z"

    asyncio.run(body())


def test_notifications_are_off_without_a_secret(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path) as (http, _):
            response = await http.post("/notifications", content=_envelope(_push("e1")),
                                       headers={"Content-Type": EVENTS_TYPE, "Authorization": "Bearer "})
            assert response.status_code == 404

    asyncio.run(body())


def test_request_id_is_echoed_or_made(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path / "direct") as (http, _):
            planted = await http.get("/healthz", headers={"X-Request-ID": "abc-123"})
            assert planted.headers["x-request-id"] != "abc-123", "only a trusted proxy names requests"
        async with client(tmp_path, trusted_proxies=("127.0.0.1",)) as (http, audit):
            given = await http.get("/healthz", headers={"X-Request-ID": "abc-123"})
            assert given.headers["x-request-id"] == "abc-123"
            made = await http.get("/healthz", headers={"X-Request-ID": "bad id with spaces"})
            assert len(made.headers["x-request-id"]) == 32
            # An event a registry route records carries the id the client got back.
            refused = await http.put("/v2/alice/app/manifests/v1", content=b"{not json", headers={
                **ALICE, "Content-Type": "application/vnd.oci.image.manifest.v1+json"})
            assert refused.status_code == 400
            await audit.flush()
            events = (await http.get("/admin/audit", params={"action": "manifest:push"}, headers=ADMIN)).json()
            assert [e["request_id"] for e in events["events"]] == [refused.headers["x-request-id"]]

    asyncio.run(body())


def test_webhook_retries_then_delivers_signed_push_events() -> None:
    received: list[httpx.Request] = []
    answers = iter([503, 500, 200])

    def handler(request: httpx.Request) -> httpx.Response:
        received.append(request)
        return httpx.Response(next(answers))

    async def body() -> None:
        sender = WebhookSender("http://hooks.invalid/audit", "hook-key", first_delay=0.01,
                               transport=httpx.MockTransport(handler))
        sender.start()
        row: dict[str, Any] = {"seq": 1, "time": datetime(2026, 1, 1, tzinfo=timezone.utc), "actor_type": "user",
                               "actor_name": "alice", "action": "manifest:push", "outcome": "success",
                               "repository": "alice/app", "prev_hash": "0" * 64, "hash": "1" * 64}
        await sender([row, {**row, "seq": 2, "action": "token:issue"}])
        await sender.stop(timeout=5)
        assert sender.delivered == 1 and len(received) == 3
        body_bytes = received[-1].content
        assert [e["action"] for e in json.loads(body_bytes)["events"]] == ["manifest:push"]
        expected = hmac.new(b"hook-key", body_bytes, hashlib.sha256).hexdigest()
        assert received[-1].headers["x-authgate-signature"] == f"sha256={expected}"

    asyncio.run(body())


@pytest.mark.parametrize(("peer", "forwarded", "proxies", "expected"), [
    ("203.0.113.9", "1.1.1.1", (), "203.0.113.9"),
    ("203.0.113.9", "1.1.1.1", ("10.0.0.0/8",), "203.0.113.9"),
    ("10.0.0.5", "1.1.1.1", ("10.0.0.0/8",), "1.1.1.1"),
    ("10.0.0.5", "6.6.6.6, 1.1.1.1, 10.0.0.7", ("10.0.0.0/8",), "1.1.1.1"),
    ("10.0.0.5", "", ("10.0.0.0/8",), "10.0.0.5"),
    ("10.0.0.5", "not-an-ip", ("10.0.0.0/8",), "10.0.0.5"),
])
def test_client_address_trusts_only_configured_proxies(peer: str, forwarded: str, proxies: tuple[str, ...],
                                                       expected: str) -> None:
    from starlette.requests import Request

    from authgate.audit.context import client_address

    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    request = Request({"type": "http", "headers": headers, "client": (peer, 1234)})
    assert client_address(request, Settings(trusted_proxies=proxies)) == expected


def test_the_app_sends_recorded_pushes_to_the_webhook(tmp_path: Path) -> None:
    """Wired through create_app: a loopback receiver gets the push once it is in the log."""
    import http.server
    import threading

    received: list[dict[str, Any]] = []

    class Receiver(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's naming
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append({"body": json.loads(body), "signature": self.headers.get("X-Authgate-Signature")})
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"

    async def body() -> None:
        async with client(tmp_path, webhook_url=url, webhook_secret="k") as (_, audit):
            await audit.record(AuditEvent("manifest:push", Subject("user", "alice"), "alice/app", "v1",
                                          "sha256:" + "d" * 64, 42))
            await audit.record(AuditEvent("token:issue", Subject("user", "alice")))
            await audit.flush()
            for _ in range(100):
                if received:
                    break
                await asyncio.sleep(0.05)

    try:
        asyncio.run(body())
    finally:
        server.shutdown()
        server.server_close()
    assert len(received) == 1
    events = received[0]["body"]["events"]
    assert [(e["action"], e["actor"], e["repository"], e["seq"]) for e in events] == [
        ("manifest:push", "user:alice", "alice/app", 1)]
    assert received[0]["signature"].startswith("sha256=")


def test_hostile_input_to_notifications_and_admin_is_a_4xx(tmp_path: Path) -> None:
    async def body() -> None:
        async with client(tmp_path, notification_secret=SECRET) as (http, _):
            headers = {"Content-Type": EVENTS_TYPE, "Authorization": f"Bearer {SECRET}"}
            deep = b'{"events": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
            assert (await http.post("/notifications", content=deep, headers=headers)).status_code == 400
            # Larger than the database's 64-bit integers: refused, not an OverflowError (500).
            response = await http.get("/admin/audit", params={"before": "9" * 30}, headers=ADMIN)
            assert response.status_code == 400 and response.json()["errors"][0]["code"] == "INVALID_REQUEST"
            response = await http.get("/admin/audit", params={"limit": "9" * 5000}, headers=ADMIN)
            assert response.status_code == 400 and len(response.text) < 500  # the input is not echoed whole
            for since in ("99999999999d", "0001-01-01T00:00:00+01:00"):  # before year 1: OverflowError
                response = await http.get("/admin/audit", params={"since": since}, headers=ADMIN)
                assert response.status_code == 400, since

    asyncio.run(body())
