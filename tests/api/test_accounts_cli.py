"""The account commands as an operator types them, then a login through `/token` with the result."""

from __future__ import annotations

import json
from pathlib import Path

import bcrypt
import pytest

from authgate.auth.services import auth_of
from tests.api.token_support import basic, token_app
from tests.support.processes import authgate_env, run_cli

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_cli_accounts_then_login(tmp_path: Path) -> None:
    env = authgate_env(tmp_path / "data", bcrypt_rounds="4", service="registry.test")
    htpasswd = tmp_path / "htpasswd"
    legacy = bcrypt.hashpw(b"carol-pw", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$")
    htpasswd.write_text(f"carol:{legacy}\nmallory:{{SHA}}abc=\n")

    run_cli(env, "user", "add", "alice", "--password-stdin", "--admin", input="alice-pw\n")
    imported = run_cli(env, "user", "import-htpasswd", str(htpasswd))
    assert "imported 1 user" in imported.stdout and "line 2" in imported.stderr
    assert run_cli(env, "user", "add", "Alice$", "--password-stdin", input="x\n", check=False).returncode == 1
    run_cli(env, "team", "create", "devs")
    assert run_cli(env, "team", "add", "devs", "alice", "nobody", check=False).returncode == 1
    run_cli(env, "team", "add", "devs", "alice", "carol")
    teams = [json.loads(line) for line in run_cli(env, "team", "list", "--json").stdout.splitlines()]
    assert teams == [{"name": "devs", "members": ["alice", "carol"]}], "the failed add left nothing half-written"
    created = run_cli(env, "robot", "create", "ci", "--expires", "30d").stdout
    secret = next(word for word in created.split() if word.startswith("agr_"))
    users = {u["name"]: u for u in map(json.loads, run_cli(env, "user", "list", "--json").stdout.splitlines())}
    assert users["alice"]["admin"] and users["carol"]["teams"] == ["devs"]

    database = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'authgate.db'}"
    async with token_app(tmp_path, database) as (client, resources, _):
        for user, password, sub in (("carol", "carol-pw", "carol"), ("robot+ci", secret, "robot:ci")):
            response = await client.get("/token", headers=basic(user, password), params={"offline_token": "true"})
            assert response.status_code == 200, response.text
            assert auth_of(resources).tokens.verify(response.json()["token"]).subject == sub

    tokens = [json.loads(line) for line in run_cli(env, "token", "list", "--json").stdout.splitlines()]
    assert [t["user"] for t in tokens] == ["carol"], "robots get no refresh token"
    run_cli(env, "token", "revoke", str(tokens[0]["id"]))
    assert run_cli(env, "token", "list", "--json").stdout == ""
    assert secret not in run_cli(env, "robot", "list", "--json").stdout
