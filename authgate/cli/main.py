"""`authgate …`: one argparse tree; each subsystem registers its commands from its own module."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from authgate.cli import audit as audit_commands
from authgate.cli import db as db_commands
from authgate.cli import gc as gc_commands
from authgate.cli import identity as identity_commands
from authgate.cli import login as login_commands
from authgate.cli import policy as policy_commands
from authgate.cli import keys as keys_commands
from authgate.cli import robots as robot_commands
from authgate.cli import teams as team_commands
from authgate.cli import tokens as token_commands
from authgate.cli import users as user_commands
from authgate.cli.changes import record_cli_change
from authgate.cli import serve as serve_commands
from authgate.cli import tls as tls_commands
from authgate.cli.datadir import DataDirError, permission_message
from authgate.settings import SettingsError

#: Modules with `register(subparsers)`; each adds one command group.
COMMAND_MODULES = [serve_commands, db_commands, tls_commands, policy_commands, user_commands, team_commands,
                   robot_commands, keys_commands, token_commands, audit_commands,
                   gc_commands, identity_commands, login_commands]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="authgate",
        description="The front door of a private container registry: logins, per-team permissions, "
        "HTTPS and an audit log in front of /v2/.",
    )
    parser.add_argument("--config", metavar="FILE", help="YAML config file (default: $AUTHGATE_CONFIG)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMAND_MODULES:
        module.register(sub)
    _config_after_command(parser)
    return parser


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
    parser = build_parser()
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
