"""The whole app in-process for the registry API tests: real accounts, real tokens, the real audit log.

Users `alice` and `bob` (passwords `alice-pw`, `bob-pw`) exist in the test database, so Basic
credentials go through the real login. `Registry.token_for` has the app's own token service sign a
token granting exactly what a test states: a token that claims more than the live policy allows is
how the guard's "token AND policy" rule is shown. Audit events are read back from the hash-chained
log on the temporary SQLite database, as `authgate audit list` reads them.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from authgate.app import create_app
from authgate.audit.bounds import UnauthenticatedThrottle
from authgate.audit.query import AuditFilter, iter_events
from authgate.audit.recorder import AuditRecorder
from authgate.auth import accounts
from authgate.resources import Resources
from authgate.scope import Scope
from authgate.settings import Settings
from authgate.subject import ANONYMOUS, Subject

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


async def add_test_users(resources: Resources) -> None:
    """The accounts the registry tests log in with; no login delay, so wrong passwords cost nothing."""
    resources.auth.limiter.delay = 0
    for name, password in PASSWORDS.items():
        if await accounts.find_user(resources.db, name) is None:  # a data dir started again
            await accounts.create_user(resources.db, name, resources.auth.verifier.hash(password))


@dataclass
class AuditLog:
    """The app's audit log, read back from its database."""

    resources: Resources

    async def events(self) -> list[dict[str, Any]]:
        """Every event, oldest first, in its public form (what `authgate audit list --json` shows)."""
        assert isinstance(self.resources.audit, AuditRecorder), "the real recorder, writing to the test database"
        await self.resources.audit.flush()
        return [event async for event in iter_events(self.resources.db, AuditFilter())]

    async def actions(self) -> list[str]:
        return [event["action"] for event in await self.events()]

    def record_every_failure(self) -> None:
        """Lift the log's cap on failures from one address (10 a minute, `audit.bounds`) for tests
        that count how many failures the endpoints report."""
        assert isinstance(self.resources.audit, AuditRecorder)
        self.resources.audit.throttle = UnauthenticatedThrottle(per_key=1000)


@dataclass
class Registry:
    http: httpx.AsyncClient
    resources: Resources

    async def token_for(self, user: str | None, *access: tuple[str, str, str]) -> str:
        """A token signed by the app's token service for `user` (None: anonymous) granting `access`
        ((type, name, "a,b")), bound to the user's current account as a `/token` one would be."""
        subject, epoch = ANONYMOUS, ""
        if user is not None:
            account = await accounts.find_user(self.resources.db, user)
            assert account is not None, f"no test user {user}"
            subject, epoch = Subject("user", user), accounts.account_epoch(account)
        scopes = [Scope(kind, name, frozenset(a for a in actions.split(",") if a)) for kind, name, actions in access]
        return self.resources.auth.tokens.issue(subject, scopes, epoch=epoch).token

    async def events(self) -> list[dict[str, Any]]:
        return await AuditLog(self.resources).events()

    async def actions(self) -> list[str]:
        return await AuditLog(self.resources).actions()


@asynccontextmanager
async def registry_client(tmp_path: Path, **settings: object) -> AsyncIterator[Registry]:
    """The whole app in-process (lifespan included) behind an httpx client."""
    settings.setdefault("bcrypt_rounds", 4)
    app = create_app(Settings(data=tmp_path / "data", **settings))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        resources: Resources = app.state.resources
        await add_test_users(resources)
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000") as client:
            yield Registry(client, resources)
