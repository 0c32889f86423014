"""A database that goes away mid-life: clients get a 503 they can retry, in the OCI format, not a 500."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from authgate.app import create_app
from authgate.auth import accounts
from authgate.auth.services import auth_of
from authgate.resources import Resources
from authgate.settings import Settings
from tests.api.token_support import basic
from tests.support.processes import Postgres

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_requests_after_the_database_is_dropped_are_503_unavailable(postgres: Postgres, tmp_path: Path) -> None:
    url = postgres.create_database()
    app: Starlette = create_app(Settings(data=tmp_path / "data", database_url=url, service="registry.test",
                                         issuer="authgate-test", bcrypt_rounds=4))
    async with app.router.lifespan_context(app):
        resources: Resources = app.state.resources
        await accounts.create_user(resources.db, "alice", auth_of(resources).verifier.hash("alice-password"))
        transport = httpx.ASGITransport(app=app, client=("192.0.2.7", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000") as client:
            assert (await client.get("/token", params={"service": "registry.test"},
                                     headers=basic("alice", "alice-password"))).status_code == 200

            name = url.rsplit("/", 1)[1]
            subprocess.run([str(postgres._bindir / "dropdb"), "-h", "127.0.0.1", "-p", str(postgres.port),
                            "-U", "postgres", "--force", name], check=True, capture_output=True)
            await asyncio.sleep(1.5)  # past the account cache's bound on how stale it may answer

            for path in ("/token?service=registry.test", "/v2/", "/v2/_catalog"):
                response = await client.get(path, headers=basic("alice", "alice-password"))
                assert response.status_code == 503, (path, response.status_code, response.text)
                assert response.json()["errors"][0]["code"] == "UNAVAILABLE"
                assert "Traceback" not in response.text
