"""The admin commands as a newcomer meets them in the first hour: where they wrote, what address to log
in to, what "admin" means, passwords typed at a terminal, and token-server mode's own answers."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

import anyio
import pytest

from tests.api.test_accounts_cli import Cli, cli  # noqa: F401 - the fixture
from tests.api.token_support import basic, token_app
from tests.support.processes import REPO_ROOT


def test_a_command_that_creates_the_database_says_so_and_every_change_names_where(cli: Cli, tmp_path: Path) -> None:
    data = (tmp_path / "data").resolve()
    out, err = cli("user", "add", "frank", "--password-stdin", input="frank-password\n")
    assert f"no database in {data}: creating a new, empty one" in err
    assert "AUTHGATE_DATA" in err
    assert out.startswith(f"created user frank in {data}; log in with: docker login localhost:5000 -u frank")
    out, err = cli("team", "create", "web")
    assert "creating" not in err, "only the command that created the database says so"
    assert out == f"created team web in {data}\n"
    assert f"in {data}" in cli("team", "add", "web", "frank")[0]
    assert f"password changed for frank in {data}" in cli("user", "passwd", "frank", "--password-stdin",
                                                          input="frank-password-2\n")[0]
    assert f"removed user frank from {data}" in cli("user", "remove", "frank")[0]


def test_user_add_prints_the_address_clients_use(cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTHGATE_PORT", "5003")
    assert "docker login localhost:5003 -u ann" in cli("user", "add", "ann", "--password-stdin", input="ann-password\n")[0]
    (tmp_path / "data" / "served-url").write_text("https://registry.lan:5443\n")  # what `authgate serve` announced
    assert "docker login registry.lan:5443 -u bea" in cli("user", "add", "bea", "--password-stdin",
                                                           input="bea-password\n")[0]
    monkeypatch.setenv("AUTHGATE_PUBLIC_URL", "https://registry.example.com")
    out = cli("robot", "create", "ci")[0]
    assert "docker login registry.example.com -u robot+ci" in out


def test_a_server_on_every_address_without_public_url_is_not_passed_off_as_reachable(
        cli: Cli, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`serve --host 0.0.0.0` with no public_url: its token realm says localhost, so `docker login`
    from another machine fails whatever address it uses; the login lines say so instead of
    handing a CI runner `localhost:5000`. Nothing listens here: `serve`'s start checks run alone."""
    from authgate.cli.serve_checks import prepare_to_serve
    from authgate.settings import load_settings

    monkeypatch.setenv("AUTHGATE_PORT", "5004")
    with caplog.at_level("WARNING", logger="authgate"):
        prepare_to_serve(load_settings(host="0.0.0.0"))  # what `authgate serve --host 0.0.0.0` records and says
    assert any("listens on every address (0.0.0.0) but has no public_url: the token realm "
               "http://localhost:5004/token reaches this machine only" in r.getMessage() for r in caplog.records)
    out = cli("user", "add", "ann", "--password-stdin", input="ann-password\n")[0]
    assert "docker login localhost:5004 -u ann" in out
    hostname = __import__("socket").gethostname()
    assert ("localhost:5004 works on this machine only. authgate listens on every address (0.0.0.0) but has no "
            "public_url, so the token realm docker is sent to is http://localhost:5004/token") in " ".join(out.split())
    assert f"AUTHGATE_PUBLIC_URL=http://{hostname}:5004" in out
    robot = cli("robot", "create", "ci")[0]
    assert "docker login localhost:5004 -u robot+ci" in robot and "works on this machine only" in robot

    # The same settings in the admin's environment (a container's AUTHGATE_HOST), before any serve ran.
    (tmp_path / "data" / "served-url").unlink()
    monkeypatch.setenv("AUTHGATE_HOST", "::")
    assert "listens on every address (::)" in cli("user", "add", "bea", "--password-stdin",
                                                  input="bea-password\n")[0]
    # Served on loopback only, localhost is the whole truth: no caveat.
    monkeypatch.setenv("AUTHGATE_HOST", "127.0.0.1")
    prepare_to_serve(load_settings())
    assert "works on this machine only" not in cli("user", "add", "cid", "--password-stdin",
                                                   input="cid-password\n")[0]
    # With public_url, that address, and no caveat.
    monkeypatch.setenv("AUTHGATE_HOST", "0.0.0.0")
    monkeypatch.setenv("AUTHGATE_PUBLIC_URL", "http://registry.lan:5004")
    prepare_to_serve(load_settings())
    out = cli("user", "add", "dee", "--password-stdin", input="dee-password\n")[0]
    assert "docker login registry.lan:5004 -u dee" in out and "this machine only" not in out


def test_admin_is_explained_where_it_is_granted(cli: Cli, capsys: pytest.CaptureFixture[str]) -> None:
    out = cli("user", "add", "root", "--admin", "--password-stdin", input="root-password\n")[0]
    assert "root is an authgate administrator (admin API, full catalog); repository rights come from policies" in out
    with pytest.raises(SystemExit):
        cli("user", "add", "--help")
    help_text = " ".join(capsys.readouterr().out.split())
    assert "It grants no repository rights: policies do" in help_text
    assert "At least 8 characters" in help_text


def test_a_short_password_is_refused_with_the_minimum(cli: Cli) -> None:
    err = cli("user", "add", "tim", "--password-stdin", input="2short\n", code=1)[1]
    assert err == "authgate: the password is too short: at least 8 characters\n"
    assert "no user named 'tim'" in cli("user", "disable", "tim", code=1)[1], "nothing was created"


def test_disable_says_the_sessions_ended_and_what_a_stock_registry_still_honours(
        cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    cli("user", "add", "eve", "--password-stdin", input="eve-password\n")
    out = cli("user", "disable", "eve")[0]
    assert "their docker sessions (refresh tokens) were ended" in out
    assert "token_ttl" not in out, "authgate's own /v2/ checks the account on every request"
    monkeypatch.setenv("AUTHGATE_REGISTRY_URL", "https://registry.example:5000")
    out = cli("user", "disable", "eve")[0]
    assert ("the registry at https://registry.example:5000 checks tokens itself and keeps honouring access tokens "
            "already issued until they expire (token_ttl: 300 s)") in out


def _read_until(fd: int, text: bytes, seen: bytearray) -> None:
    deadline = time.monotonic() + 60
    while text not in seen:
        assert time.monotonic() < deadline, f"no {text!r} in {bytes(seen)!r}"
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            try:
                chunk = os.read(fd, 1024)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            seen += chunk


def test_ctrl_d_at_the_second_prompt_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTHGATE_")}
    env.update(AUTHGATE_DATA=str(tmp_path / "data"), PYTHONPATH=str(REPO_ROOT))
    pid, fd = pty.fork()
    if pid == 0:  # the child: authgate on a real terminal, as a person runs it
        os.execve(sys.executable, [sys.executable, "-m", "authgate", "user", "add", "ann"], env)
    seen = bytearray()
    try:
        _read_until(fd, b"Password: ", seen)
        os.write(fd, b"ann-password\n")
        _read_until(fd, b"Again: ", seen)
        os.write(fd, b"\x04")  # Ctrl-D
        _read_until(fd, b"nothing was changed", seen)
        _read_until(fd, b"\n", seen)
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    assert b"no password entered; nothing was changed" in seen
    assert b"Traceback" not in seen and b"EOFError" not in seen
    assert os.waitstatus_to_exitcode(status) == 1


def test_token_server_mode_serves_no_registry_of_its_own(tmp_path: Path, database_url: str) -> None:
    async def scenario() -> None:
        async with token_app(tmp_path, database_url, registry_url="https://registry.example:5000") as (client, _, _):
            for method, path in (("GET", "/v2/"), ("PUT", "/v2/alice/app/manifests/1"), ("GET", "/v2/_catalog")):
                response = await client.request(method, path, headers=basic("alice", "whatever-pw"))
                assert response.status_code == 404, path
                error = response.json()["errors"][0]
                assert error["code"] == "UNSUPPORTED"
                assert error["message"] == ("authgate here is only the token server of the registry at "
                                            "https://registry.example:5000: push and pull there "
                                            "(docker login registry.example:5000)")
            assert (await client.get("/token", params={"service": "registry.test"})).status_code == 200
        assert not (tmp_path / "data" / "blobs").exists(), "no hidden embedded store"

    anyio.run(scenario)
