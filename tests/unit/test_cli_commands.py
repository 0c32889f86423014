"""`authgate COMMAND`: the parser loads only the module of the command being run, and still knows
every command when asked for help or given one it does not know."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.support.processes import REPO_ROOT

COMMANDS = ("serve", "db", "tls", "policy", "user", "team", "robot", "keys", "token", "audit", "gc", "identity",
            "login")
#: Modules `authgate user …` has no use for: the server and the gateway's HTTP client.
HEAVY = ("authgate.app", "authgate.cli.serve", "authgate.gateway.wire", "aiohttp")


def _loaded_after(argv: list[str]) -> set[str]:
    """Which of HEAVY and authgate.cli.users a fresh interpreter holds once `argv` is parsed."""
    code = ("import sys; from authgate.cli.main import build_parser; build_parser(sys.argv[1:]); "
            f"print(' '.join(m for m in {HEAVY + ('authgate.cli.users',)!r} if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, timeout=60,
                            cwd=REPO_ROOT, check=True)
    return set(result.stdout.split())


@pytest.mark.parametrize("argv", [["user", "add", "alice"], ["--config", "user", "user", "list"],
                                  ["--config=x.yaml", "user", "disable", "bob"]])
def test_a_command_loads_its_own_module_only(argv: list[str]) -> None:
    # Each command used to import every command's module: half a second per `authgate user add`.
    assert _loaded_after(argv) == {"authgate.cli.users"}


@pytest.mark.parametrize("argv", [["--help"], ["-h", "user"], ["frob"]])
def test_help_and_unknown_commands_know_every_command(argv: list[str]) -> None:
    result = subprocess.run([sys.executable, "-m", "authgate", *argv], capture_output=True, text=True, timeout=60,
                            cwd=REPO_ROOT)
    listed = result.stderr if argv == ["frob"] else result.stdout
    assert all(f" {command} " in listed or f"'{command}'" in listed for command in COMMANDS), listed
    if argv == ["frob"]:
        assert "invalid choice: 'frob'" in listed and result.returncode == 2


def test_the_app_loads_the_gateway_only_in_gateway_mode() -> None:
    """`authgate serve` in the embedded default starts without the upstream client (aiohttp and the
    gateway: ~0.3 s of every start); `backends.open_backend` imports the mode it opens."""
    code = "import sys, authgate.app; print(' '.join(m for m in ('aiohttp', 'authgate.gateway.backend') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=REPO_ROOT,
                            check=True)
    assert result.stdout.split() == []
