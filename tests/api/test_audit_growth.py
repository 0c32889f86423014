"""An unauthenticated client can no longer grow the audit log without bound (the real recorder)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from authgate.app import create_app
from authgate.audit.bounds import MAX_DETAILS_BYTES
from authgate.db.models import AuditEvent as Row
from authgate.settings import Settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_anonymous_requests_write_bounded_rows(tmp_path: Path) -> None:
    app = create_app(Settings(data=tmp_path / "data", bcrypt_rounds=4))
    scopes = [("scope", f"repository:{'a' * 200}/r{i}:pull,push") for i in range(25)]
    async with app.router.lifespan_context(app):
        resources = app.state.resources
        transport = httpx.ASGITransport(app=app, client=("203.0.113.5", 40000))
        async with httpx.AsyncClient(transport=transport, base_url="http://localhost:5000") as client:
            for _ in range(60):
                assert (await client.get("/token", params=scopes)).status_code == 200
                refresh = {"grant_type": "refresh_token", "client_id": "x", "refresh_token": "nope"}
                assert (await client.post("/token", data=refresh)).status_code == 401
        await resources.audit.flush()
        async with resources.db.session() as session:
            counts = dict((await session.execute(select(Row.action, func.count()).group_by(Row.action))).all())
            largest = max(len(json.dumps(d)) for d in (await session.execute(select(Row.details))).scalars() if d)
    assert counts == {"token:issue": 10, "auth:login:failure": 10}
    assert largest <= MAX_DETAILS_BYTES
