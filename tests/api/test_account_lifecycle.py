"""Tokens belong to one incarnation of an account: removed and re-created, or disabled and enabled
again, the account does not get its old tokens back (each lives `token_ttl`, 5 minutes by default)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from authgate.auth import accounts
from tests.api.token_support import add_user, basic, token_app

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _token(client: httpx.AsyncClient, user: str, password: str) -> dict[str, str]:
    response = await client.get("/token", headers=basic(user, password))
    assert response.status_code == 200, response.text
    return {"Authorization": f"Bearer {response.json()['token']}"}


async def test_old_tokens_stay_dead(tmp_path: Path, database_url: str) -> None:
    async with token_app(tmp_path, database_url) as (client, resources, _):
        await add_user(resources, "alice", "alice-pw")
        old = await _token(client, "alice", "alice-pw")
        assert (await client.get("/v2/", headers=old)).status_code == 200
        await accounts.remove_user(resources.db, "alice")
        await add_user(resources, "alice", "alice-pw")  # someone else, same name and password
        response = await client.get("/v2/", headers=old)
        assert response.status_code == 401 and "log in again" in response.json()["errors"][0]["message"]

        current = await _token(client, "alice", "alice-pw")
        await accounts.set_disabled(resources.db, "alice", True)
        await accounts.set_disabled(resources.db, "alice", False)
        assert (await client.get("/v2/", headers=current)).status_code == 401, "disabled once, dead for good"
        fresh = await _token(client, "alice", "alice-pw")
        assert (await client.get("/v2/", headers=fresh)).status_code == 200

        secret = await accounts.create_robot(resources.db, "ci", None)
        robot = await _token(client, "robot+ci", secret)
        assert (await client.get("/v2/", headers=robot)).status_code == 200
        await accounts.remove_robot(resources.db, "ci")
        secret = await accounts.create_robot(resources.db, "ci", None)
        assert (await client.get("/v2/", headers=robot)).status_code == 401
        assert (await client.get("/v2/", headers=await _token(client, "robot+ci", secret))).status_code == 200


async def test_a_robot_disabled_then_enabled_does_not_get_its_old_tokens_back(tmp_path: Path,
                                                                            database_url: str) -> None:
    async with token_app(tmp_path, database_url) as (client, resources, _):
        secret = await accounts.create_robot(resources.db, "ci", None)
        old = await _token(client, "robot+ci", secret)
        assert (await client.get("/v2/", headers=old)).status_code == 200
        await accounts.set_robot_disabled(resources.db, "ci", True)
        await accounts.set_robot_disabled(resources.db, "ci", False)
        response = await client.get("/v2/", headers=old)
        assert response.status_code == 401 and "log in again" in response.json()["errors"][0]["message"]
        current = await _token(client, "robot+ci", secret)  # the same secret logs in again
        assert (await client.get("/v2/", headers=current)).status_code == 200

        await accounts.set_robot_expiry(resources.db, "ci", timedelta(days=30))
        assert (await client.get("/v2/", headers=current)).status_code == 200, "extending keeps live tokens"
        await accounts.set_robot_expiry(resources.db, "ci", timedelta(seconds=-1))  # expired now
        assert (await client.get("/v2/", headers=current)).status_code == 401
        await accounts.set_robot_expiry(resources.db, "ci", None)
        assert (await client.get("/v2/", headers=current)).status_code == 401, "expired once, dead for good"
        assert (await client.get("/v2/", headers=await _token(client, "robot+ci", secret))).status_code == 200
