"""`authgate …`: one argparse tree; each subsystem registers its commands from its own module."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from authgate.cli.changes import record_cli_change
from authgate.cli.datadir import DataDirError, permission_message
from authgate.settings import SettingsError

#: Each command and the module of `authgate.cli` that registers it (`register(subparsers)`), in the
#: order `--help` lists them. Only the module of the command being run is imported: importing every
#: one (the server, the gateway, aiohttp) cost each `authgate user add` half a second.
COMMANDS = {"serve": "serve", "db": "db", "tls": "tls", "policy": "policy", "user": "users", "team": "teams",
            "robot": "robots", "keys": "keys", "token": "tokens", "audit": "audit", "gc": "gc",
            "identity": "identity", "login": "login"}


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv`: with every command when it names none it knows (`--help`, a typo)."""
    parser = argparse.ArgumentParser(
        prog="authgate",
        description="The front door of a private container registry: logins, per-team permissions, "
        "HTTPS and an audit log in front of /v2/.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config file (default: $AUTHGATE_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = _command_in(sys.argv[1:] if argv is None else argv)
    for command, module in COMMANDS.items():
        if chosen in (None, command):
            importlib.import_module(f"authgate.cli.{module}").register(sub)
    _config_after_command(parser)
    return parser


def _command_in(argv: Sequence[str]) -> str | None:
    """The command `argv` runs: its first word that is not an option (nor `--config`'s value); None
    after a `-h` (the help of `authgate` itself, which lists every command)."""
    words = iter(argv)
    for word in words:
        if word in ("-h", "--help"):
            return None
        if word == "--config":
            next(words, None)
        elif not word.startswith("-"):
            return word if word in COMMANDS else None
    return None


def _config_after_command(parser: argparse.ArgumentParser) -> None:
    """Accept `--config FILE` after the command too (`authgate serve --config x.yaml`), as people type
    it; SUPPRESS keeps a subcommand from resetting a `--config` given before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                if not any("--config" in a.option_strings for a in child._actions):
                    child.add_argument("--config", metavar="FILE", default=argparse.SUPPRESS,
                                       help="YAML config file (default: $AUTHGATE_CONFIG)")
                _config_after_command(child)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    try:
        result: int = args.handler(args)
        record_cli_change(args, result)
        return result
    except SettingsError as exc:
        print(f"authgate: configuration error: {exc}", file=sys.stderr)
        return 2
    except DataDirError as exc:
        print(f"authgate: {exc}", file=sys.stderr)
        return 1
    except PermissionError as exc:  # a file the preflight check could not foresee: still one line, not a traceback
        print(f"authgate: {permission_message(exc.filename)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `authgate audit list | head`: the reader has all it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # so the interpreter's final flush does not raise again
        return 0
