"""The real app in-process (lifespan included) with accounts made through `authgate.auth.accounts`,
and its audit log read back from the test database."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from starlette.applications import Starlette

from authgate.app import create_app
from authgate.auth import accounts
from authgate.auth.services import auth_of
from authgate.resources import Resources
from authgate.settings import Settings
from tests.api.registry_support import AuditLog

SERVICE = "registry.test"


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


@asynccontextmanager
async def token_app(tmp_path: Path, database_url: str, **settings: object
                    ) -> AsyncIterator[tuple[httpx.AsyncClient, Resources, AuditLog]]:
    app: Starlette = create_app(Settings(data=tmp_path / "data", database_url=database_url, service=SERVICE,
                                         issuer="authgate-test", bcrypt_rounds=4, **settings))  # type: ignore[arg-type]
    async with app.router.lifespan_context(app):
        resources: Resources = app.state.resources
        auth_of(resources).limiter.delay = 0
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000") as client:
            yield client, resources, AuditLog(resources)


async def add_user(resources: Resources, name: str, password: str, admin: bool = False) -> None:
    await accounts.create_user(resources.db, name, auth_of(resources).verifier.hash(password), admin)
