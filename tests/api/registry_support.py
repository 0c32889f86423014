"""A stand-in for `authgate.auth.identity.identify` and an in-process app for the registry API tests.

The real `identify` verifies JWTs and passwords (auth/'s tests cover that); here the transport seam
is faked so these tests can state exactly what a token grants.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.requests import Request

from authgate.app import create_app
from authgate.audit.events import AuditEvent
from authgate.auth import identity as identity_module
from authgate.auth.challenge import unauthorized
from authgate.settings import Settings
from authgate.subject import ANONYMOUS, Identity, Subject

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
#: token -> (subject, access); access maps (type, name) to granted actions.
TOKENS: dict[str, Identity] = {}


def token_for(user: str | None, *access: tuple[str, str, str]) -> str:
    """Register a fake bearer token granting `access` ((type, name, "a,b")) and return it."""
    subject = Subject("user", user) if user else ANONYMOUS
    grants = {(t, n): frozenset(a for a in actions.split(",") if a) for t, n, actions in access}
    token = f"tok{len(TOKENS)}"
    TOKENS[token] = Identity(subject, grants)
    return token


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def fake_identify(request: Request) -> Identity:
    settings = request.app.state.resources.settings
    header = request.headers.get("authorization", "")
    if not header:
        return Identity(ANONYMOUS, None)
    kind, _, value = header.partition(" ")
    if kind.lower() == "bearer" and value in TOKENS:
        return TOKENS[value]
    if kind.lower() == "basic":
        user, _, password = base64.b64decode(value).decode().partition(":")
        if not user and not password:
            return Identity(ANONYMOUS, None)  # as the real identify: `Basic Og==` is anonymous
        if PASSWORDS.get(user) == password:
            return Identity(Subject("user", user), None)
    raise unauthorized(settings.realm, settings.service, error="invalid_token")


class RecordingAudit:
    def __init__(self) -> None:
        self.events: list[AuditEvent] = []

    async def record(self, event: AuditEvent) -> None:
        self.events.append(event)

    def actions(self) -> list[str]:
        return [e.action for e in self.events]


@asynccontextmanager
async def registry_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **settings: object
                          ) -> AsyncIterator[tuple[httpx.AsyncClient, RecordingAudit]]:
    """The whole app in-process (lifespan included) behind an httpx client, audit recorded."""
    monkeypatch.setattr(identity_module, "identify", fake_identify)
    audit = RecordingAudit()
    app = create_app(Settings(data=tmp_path / "data", **settings), audit)  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000") as client:
            yield client, audit
