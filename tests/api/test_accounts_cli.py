"""The account commands as an operator types them (`authgate.cli.main.main`, in-process for speed),
then a login through `/token` with the result."""

from __future__ import annotations

import io
import json
from pathlib import Path

import anyio
import bcrypt
import pytest

from authgate.auth.services import auth_of
from authgate.cli.main import main
from tests.api.token_support import basic, token_app


class Cli:
    def __init__(self, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *argv: str, input: str = "", code: int = 0) -> tuple[str, str]:
        self.monkeypatch.setattr("sys.stdin", io.StringIO(input))
        self.capsys.readouterr()
        assert main(list(argv)) == code, self.capsys.readouterr()
        captured = self.capsys.readouterr()
        return captured.out, captured.err


@pytest.fixture
def cli(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> Cli:
    for name in [n for n in __import__("os").environ if n.startswith("AUTHGATE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AUTHGATE_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("AUTHGATE_BCRYPT_ROUNDS", "4")
    monkeypatch.setenv("AUTHGATE_SERVICE", "registry.test")
    return Cli(capsys, monkeypatch)


def test_cli_accounts_then_login(cli: Cli, tmp_path: Path) -> None:
    htpasswd = tmp_path / "htpasswd"
    legacy = bcrypt.hashpw(b"carol-pw", bcrypt.gensalt(5)).decode().replace("$2b$", "$2y$")
    htpasswd.write_text(f"carol:{legacy}\nmallory:{{SHA}}abc=\n")

    cli("user", "add", "alice", "--password-stdin", "--admin", input="alice-pw\n")
    out, err = cli("user", "import-htpasswd", str(htpasswd))
    assert "imported 1 user" in out and "line 2" in err
    assert "invalid user name" in cli("user", "add", "Alice$", "--password-stdin", input="long-enough-pw\n", code=1)[1]
    assert "--password-stdin" in cli("user", "add", "dave", code=1)[1], "no terminal: say how to pipe it"
    cli("team", "create", "devs")
    assert "is a team" in cli("user", "add", "devs", "--password-stdin", input="long-enough-pw\n", code=1)[1], \
        "a user named like a team would own the team's namespace"
    assert "is a user" in cli("team", "create", "alice", code=1)[1]
    assert "no user named 'nobody'" in cli("team", "add", "devs", "alice", "nobody", code=1)[1]
    cli("team", "add", "devs", "alice", "carol")
    teams = [json.loads(line) for line in cli("team", "list", "--json")[0].splitlines()]
    assert teams == [{"name": "devs", "members": ["alice", "carol"]}], "the failed add left nothing half-written"
    created = cli("robot", "create", "ci", "--expires", "30d")[0]
    secret = next(word for word in created.split() if word.startswith("agr_"))
    assert "invalid robot name" in cli("robot", "create", "ci$x", code=1)[1]
    users = {u["name"]: u for u in map(json.loads, cli("user", "list", "--json")[0].splitlines())}
    assert users["alice"]["admin"] and users["carol"]["teams"] == ["devs"]

    async def login() -> None:
        database = f"sqlite+aiosqlite:///{tmp_path / 'data' / 'authgate.db'}"
        async with token_app(tmp_path, database) as (client, resources, _):
            for user, password, sub in (("carol", "carol-pw", "carol"), ("robot+ci", secret, "robot:ci")):
                response = await client.get("/token", headers=basic(user, password), params={"offline_token": "true"})
                assert response.status_code == 200, response.text
                assert auth_of(resources).tokens.verify(response.json()["token"]).subject == sub

    anyio.run(login)
    tokens = [json.loads(line) for line in cli("token", "list", "--json")[0].splitlines()]
    assert [t["user"] for t in tokens] == ["carol"], "robots get no refresh token"
    cli("token", "revoke", str(tokens[0]["id"]))
    assert cli("token", "list", "--json")[0] == ""
    assert secret not in cli("robot", "list", "--json")[0]
    cli("user", "passwd", "carol", "--password-stdin", input="carol-new-pw\n")
    cli("user", "disable", "carol")
    users = {u["name"]: u for u in map(json.loads, cli("user", "list", "--json")[0].splitlines())}
    assert users["carol"]["disabled"] and not users["alice"]["disabled"]
    assert "DISABLED" in cli("user", "list")[0].splitlines()[0]


def test_keys_commands(cli: Cli) -> None:
    first = json.loads(cli("keys", "list", "--json")[0])
    assert first["role"] == "signing"
    assert "added signing key" in cli("keys", "rotate")[0]
    listed = [json.loads(line) for line in cli("keys", "list", "--json")[0].splitlines()]
    assert [k["role"] for k in listed] == ["verifying", "signing"]
    assert cli("keys", "export-cert")[0].count("BEGIN CERTIFICATE") == 2
    assert {k["kid"] for k in json.loads(cli("keys", "jwks")[0])["keys"]} == {k["kid"] for k in listed}
    cli("keys", "remove", first["kid"])
    assert "only" in cli("keys", "remove", listed[1]["kid"], code=1)[1]


def test_robot_expire_changes_an_existing_robots_lifetime(cli: Cli) -> None:
    cli("robot", "create", "ci", "--expires", "7d")
    before = json.loads(cli("robot", "list", "--json")[0])["expires_at"]
    out = cli("robot", "expire", "ci", "--expires", "365d")[0]
    after = json.loads(cli("robot", "list", "--json")[0])
    assert after["expires_at"] > before and after["expires_at"][:10] in out and after["state"] == "active"
    assert "expires never" in cli("robot", "expire", "ci", "--expires", "never")[0]
    assert json.loads(cli("robot", "list", "--json")[0])["expires_at"] is None
    assert "'soon' is not a duration" in cli("robot", "expire", "ci", "--expires", "soon", code=1)[1]
    assert "no robot named 'ghost'" in cli("robot", "expire", "ghost", "--expires", "30d", code=1)[1]
    events = [json.loads(line) for line in cli("audit", "list", "--json", "--action", "robot:expire")[0].splitlines()]
    done = [(e["reference"], e["details"]["expires"]) for e in events if e["outcome"] == "success"]
    assert done == [("ci", "never"), ("ci", "365d")]


def test_robot_create_says_when_its_login_line_only_works_here(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTHGATE_HOST", "0.0.0.0")
    out = cli("robot", "create", "ci")[0]
    assert "docker login localhost:5000 -u robot+ci --password-stdin" in out
    assert "localhost:5000 works on this machine only" in out and "set public_url" in out
    monkeypatch.setenv("AUTHGATE_PUBLIC_URL", "https://registry.example.com")
    out = cli("robot", "create", "deploy")[0]
    assert "docker login registry.example.com -u robot+deploy" in out and "this machine only" not in out
