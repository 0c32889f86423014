"""Admin changes made with the CLI (`authgate user add`, `team add`, `robot create`, `keys rotate`, …)
go into the audit log too: `cli/main.py` calls `record_cli_change` after each command.

The actor is the operator, as `cli:<OS user>`: the CLI acts on the database directly, without an
authgate login. The command's arguments are kept, except anything that looks like a secret (the
CLI reads passwords from stdin, so none should be there). Recording never changes the command's
outcome: if it fails, a warning goes to stderr.
"""

from __future__ import annotations

import argparse
import getpass
import socket
import sys
from pathlib import Path
from typing import Any

from authgate.audit.chain import record_now
from authgate.audit.events import AuditEvent
from authgate.subject import Subject

#: Command groups whose subcommands change authgate's state, and the subcommands that only read.
_GROUPS = ("user", "team", "robot", "keys", "token", "tls")
_READ_ONLY = frozenset({"list", "show", "export-cert", "jwks"})
_TARGET_ARGS = ("name", "team", "kid", "id", "user")
_SKIPPED = frozenset({"handler", "config", "command", "password_stdin", "json"})


def admin_action(args: argparse.Namespace) -> str | None:
    """`user:add`, `team:remove`, `audit:prune`, …; None for commands that change nothing."""
    group = getattr(args, "command", None)
    sub = getattr(args, f"{group}_command", None)
    if group == "audit" and sub == "prune":
        return "audit:prune"
    if group in _GROUPS and isinstance(sub, str) and sub not in _READ_ONLY:
        return f"{group}:{sub}"
    return None


def _details(args: argparse.Namespace) -> dict[str, Any]:
    details: dict[str, Any] = {}
    for key, value in vars(args).items():
        lowered = key.lower()
        if key in _SKIPPED or key.endswith("_command") or "password" in lowered or "secret" in lowered:
            continue
        if isinstance(value, Path):
            value = str(value)
        if isinstance(value, list):
            value = [str(v) for v in value]
        if value is None or isinstance(value, (str, int, bool, list)):
            details[key] = value
        else:
            details[key] = str(value)
    return details


def _operator() -> str:
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): the uid still says who
        import os

        user = f"uid{os.getuid()}"
    return f"{user}@{socket.gethostname()}"


def cli_event(args: argparse.Namespace, exit_code: int) -> AuditEvent | None:
    action = admin_action(args)
    if action is None:
        return None
    target = next((str(getattr(args, a)) for a in _TARGET_ARGS if getattr(args, a, None) is not None), None)
    return AuditEvent(
        action=action if exit_code == 0 else f"{action}:failure",
        actor=Subject("user", _operator()),
        actor_type="cli",
        reference=target,
        outcome="success" if exit_code == 0 else "failure",
        reason=None if exit_code == 0 else f"exit status {exit_code}",
        details=_details(args),
    )


def record_cli_change(args: argparse.Namespace, exit_code: int) -> None:
    """Record an admin command's change; warn (never fail) when the log cannot be written."""
    try:
        event = cli_event(args, exit_code)
        if event is None:
            return
        from authgate.cli.common import settings_from, with_database
        from authgate.cli.datadir import DataDirError, database_missing

        settings = settings_from(args)
        if exit_code != 0 and database_missing(settings):
            return  # a refused command in a directory without a database: creating one to log it would mislead
        try:
            with_database(settings, lambda db: record_now(db, event))
        except DataDirError:
            return  # the command failed on the same unusable data directory and said so already
    except Exception as exc:  # the change itself is done; say so rather than hide it
        print(f"authgate: warning: this change was not recorded in the audit log: {exc}", file=sys.stderr)
